/**
 * `tenantscope tenant export|delete` and `verify-export` against the running example server, when it
 * was started with `DATABASE_URL` (the shared CRM database; in dev mode each process has a private
 * database that nobody else can reach). Run from the repository root with the same environment:
 *
 *   DATABASE_URL=… TENANTSCOPE_AUDIT_DIR=… npm run tenantscope -- tenant delete acme --config examples/crm-server/tenantscope.config.ts
 *
 * The CLI connects as the CRM database's owner role (row-level security is forced on its tables),
 * never as the superuser (refused: it bypasses row-level security).
 */
import { crmDatabaseNames } from './src/services.ts';

/** The CRM database as its owner (DSAR commands) or as the server's app role (what `doctor` checks). */
function crmUrl(role: 'ownerRole' | 'appRole'): string | undefined {
  const su = process.env.DATABASE_URL;
  if (!su) return undefined;
  const names = crmDatabaseNames(su, process.env);
  const u = new URL(su);
  u.username = names[role];
  u.password = names.password;
  u.pathname = `/${names.dbName}`;
  return u.toString();
}

const url = crmUrl('ownerRole');
const appUrl = crmUrl('appRole');

export default {
  dsar: {
    tenants: { file: 'tenants.json' },
    postgres: {
      ...(url ? { url } : { urlEnv: 'DATABASE_URL' }),
      // Behind PgBouncer in transaction mode (TENANTSCOPE_PG_POOLER, as for the server) the CLI's pool must say so.
      pooler: process.env.TENANTSCOPE_PG_POOLER === 'transaction' ? 'transaction' : 'none',
      // Children before parents: notes reference customers.
      tables: [
        { name: 'notes' },
        { name: 'customers', subjectColumn: 'email', erase: { pseudonymise: { name: 'erased', email: null } } },
      ],
    },
    // The server's hash-chained JSONL streams (TENANTSCOPE_AUDIT_DIR). Halt the tenant first: one writer per stream.
    audit: { jsonlDir: process.env.TENANTSCOPE_AUDIT_DIR ?? '../../.tmp/demo-audit' },
    // `npm run tenantscope -- keygen .tmp/dsar --alg EdDSA` writes it.
    signingKey: '../../.tmp/dsar/private.jwk.json',
    actor: 'dpo@example.test',
  },
  // `tenantscope doctor --config …` checks the role the server connects as, not the owner above.
  ...(appUrl ? { doctor: { postgres: { url: appUrl } } } : {}),
  // `tenantscope keys create acme --tools whoami --config …`: API keys for a server started with
  // TENANTSCOPE_API_KEYS=1 (the key table sits in its replica-state schema, in DATABASE_URL's database).
  keys: {
    postgres: { urlEnv: 'DATABASE_URL' },
    schema: process.env.TENANTSCOPE_STATE_SCHEMA || 'tenantscope_state',
    revocationSchema: process.env.TENANTSCOPE_STATE_SCHEMA || 'tenantscope_state',
    tenants: { file: 'tenants.json' },
  },
};
