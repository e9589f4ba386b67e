/**
 * Per-tenant secrets in the example: `send_email` reads the calling tenant's mail API key through
 * `ctx.secrets` (tenantscope's secrets injector over AWS Secrets Manager) and calls a small local
 * mail API that records which key each request used.
 *
 * Secrets Manager: `SECRETS_MANAGER_ENDPOINT` (+ `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
 * `AWS_SECRET_ACCESS_KEY`) when set, else the testkit's SecretsManagerProtocolDouble on loopback
 * (a strict protocol double, not AWS), so the demo runs with nothing installed.
 *
 * The mail API is in-process, so each server process seeds its own keys. On a shared endpoint the
 * secrets go under `<TENANTSCOPE_SECRETS_NAMESPACE>/tenants/<tenant>/<name>`; the namespace defaults
 * to a random one per process, so two servers on one Secrets Manager never overwrite each other's
 * keys. Set it to the empty string for the plain `tenants/<tenant>/<name>` names.
 */
import { createHash, randomBytes } from 'node:crypto';
import { defineTool, type Tenant, ToolError } from '@tenantscope/core';
import { type SecretsInjector, secretsInjector, type TenantSecrets } from '@tenantscope/secrets';
import { awsSecretsManager } from '@tenantscope/secrets/aws';
import { createTestIssuer, SecretsManagerProtocolDouble } from '@tenantscope/testkit';
import { z } from 'zod';
import { type MailApi, startMailApi } from '../mail-api.ts';
import type { CrmPlugin, StartedPlugin } from '../plugin.ts';

/** Tenants that get a mail key (the ones tenants.json grants `send_email`). */
export const MAIL_TENANTS = ['acme', 'globex'] as const;

/** A short, non-reversible fingerprint of a key, for printing instead of the key. */
export function fingerprint(key: string): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 12);
}

export interface SecretsExample extends StartedPlugin {
  mail: MailApi;
  injector: SecretsInjector;
  /** The current mail key of each seeded tenant (for checks; never printed). */
  keys: Map<string, string>;
  /** Stores a new key for `tenant` in Secrets Manager and revokes the old one at the mail API. */
  rotate(tenantId: string): Promise<string>;
  /** Where the secrets live, for the log. */
  describe: string;
}

const sendEmail = defineTool<{ secrets: TenantSecrets }>();

function makeTools(mailUrl: string) {
  return [
    sendEmail({
      name: 'send_email',
      description: "Sends an email through the mail API with the calling tenant's own API key.",
      input: {
        to: z.string().email().max(254),
        subject: z.string().min(1).max(200),
        body: z.string().max(10_000),
      },
      secrets: ['mail_api_key'],
      handler: async ({ to, subject, body }, ctx) => {
        const post = (key: string) =>
          fetch(`${mailUrl}/v1/send`, {
            method: 'POST',
            headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
            body: JSON.stringify({ to, subject, body }),
            signal: ctx.signal,
          });
        let res = await post(await ctx.secrets.get('mail_api_key'));
        let rotated = false;
        if (res.status === 401) {
          // The key may have been rotated since it was cached: fetch the current one, once.
          rotated = true;
          res = await post(await ctx.secrets.refresh('mail_api_key'));
        }
        if (!res.ok) throw new ToolError(`the mail API refused the message (${res.status})`, { code: 'MAIL_REFUSED' });
        const out = (await res.json()) as { id: string };
        return { tenant_id: ctx.tenant.id, message_id: out.id, key_refreshed: rotated };
      },
    }),
  ];
}

/** Starts the secrets part of the example; `plugin.start` is this. */
export async function startSecretsExample(env: NodeJS.ProcessEnv): Promise<SecretsExample> {
  let double: SecretsManagerProtocolDouble | undefined;
  let endpoint = env.SECRETS_MANAGER_ENDPOINT;
  const region = env.AWS_REGION || 'us-east-1';
  let credentials = {
    accessKeyId: env.AWS_ACCESS_KEY_ID || 'test',
    secretAccessKey: env.AWS_SECRET_ACCESS_KEY || 'test',
  };
  let describe = `Secrets Manager at ${endpoint}`;
  if (!endpoint) {
    credentials = { accessKeyId: 'example', secretAccessKey: randomBytes(16).toString('hex') };
    double = new SecretsManagerProtocolDouble({ region, credentials: [credentials] });
    endpoint = await double.start();
    describe = `SecretsManagerProtocolDouble (testkit protocol double, not AWS) at ${endpoint}`;
  }
  const sm = awsSecretsManager({ clientConfig: { endpoint, region, credentials, maxAttempts: 2 } });
  const namespace = env.TENANTSCOPE_SECRETS_NAMESPACE ?? (double ? '' : `crm-${randomBytes(4).toString('hex')}`);
  if (namespace !== '' && !/^[a-z0-9][a-z0-9_-]{0,63}$/.test(namespace)) {
    throw new Error('TENANTSCOPE_SECRETS_NAMESPACE must be empty or match [a-z0-9][a-z0-9_-]{0,63}');
  }
  if (namespace !== '') describe += `, names under ${namespace}/`;
  const injector = secretsInjector(
    namespace === ''
      ? { provider: sm }
      : {
          provider: sm,
          naming: (t, name) => `${namespace}/tenants/${t.id}/${name}`,
          tenantPrefix: (t) => `${namespace}/tenants/${t.id}/`,
        },
  );
  const mail = await startMailApi();

  // Seeding needs verified tenants; the example mints them with a throwaway local issuer
  // (operator tooling, not the request path).
  const seeder = await createTestIssuer({ issuer: 'https://seed.tenantscope.local' });
  const tenants = new Map<string, Tenant>();
  const keys = new Map<string, string>();
  const rotate = async (tenantId: string): Promise<string> => {
    let t = tenants.get(tenantId);
    if (!t) {
      t = await seeder.tenant(tenantId, { subject: 'secrets-seeder' });
      tenants.set(tenantId, t);
    }
    const key = `mk_${tenantId}_${randomBytes(12).toString('hex')}`;
    await injector.unscopedAdmin(t).put('mail_api_key', key);
    const old = keys.get(tenantId);
    if (old) mail.revokeKey(old);
    mail.allowKey(tenantId, key);
    keys.set(tenantId, key);
    return key;
  };
  try {
    for (const t of MAIL_TENANTS) await rotate(t);
  } catch (err) {
    await mail.stop();
    await double?.stop();
    throw err;
  }

  return {
    mail,
    injector,
    keys,
    rotate,
    describe,
    providers: { secrets: injector.provider() },
    tools: makeTools(mail.url),
    async demo({ call, check, say }) {
      say("\nSecrets: send_email reads each tenant's own mail API key at call time");
      say(`  secrets: ${describe}; mail API: ${mail.url}`);
      const before = mail.requests.length;
      for (const t of MAIL_TENANTS) {
        const r = await call(t, 'send_email', { to: `ops@${t}.example`, subject: 'hello', body: 'from the demo' });
        check(`${t} send_email succeeds`, !r.isError, r.isError ? r.text : undefined);
        const key = keys.get(t) as string;
        check(`${t}'s result does not contain its key`, !r.text.includes(key));
      }
      const seen = mail.requests.slice(before);
      for (const req of seen) say(`  mail API saw a request with key ${fingerprint(req.key)} (owner ${req.owner})`);
      for (const t of MAIL_TENANTS) {
        say(`  ${t}'s key fingerprint: ${fingerprint(keys.get(t) as string)}`);
      }
      check(
        "each tenant's call carried its own key",
        seen.length === MAIL_TENANTS.length &&
          MAIL_TENANTS.every((t, i) => seen[i]?.key === keys.get(t) && seen[i]?.owner === t),
      );
      const other = await call('initech', 'send_email', { to: 'x@initech.example', subject: 's', body: 'b' });
      check('initech (no send_email grant) is refused', other.isError);

      say("  rotating acme's key (old one revoked at the mail API)...");
      await rotate('acme');
      const r = await call('acme', 'send_email', { to: 'ops@acme.example', subject: 'after rotation', body: '.' });
      const last = mail.requests.at(-1);
      check(
        'after rotation acme refreshes once and sends with the new key',
        !r.isError && r.text.includes('"key_refreshed":true') && last?.key === keys.get('acme'),
        r.isError ? r.text : undefined,
      );
    },
    async stop() {
      await mail.stop();
      await double?.stop();
      sm.unscopedClient.destroy();
    },
  };
}

export const plugin: CrmPlugin = {
  name: 'secrets',
  order: 50,
  start: (env) => startSecretsExample(env),
};
