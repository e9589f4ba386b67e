import { TenantScopeError } from '@tenantscope/core';
import type { Pool, PoolClient } from 'pg';

/** Default schema of the audit tables. */
export const DEFAULT_AUDIT_SCHEMA = 'tenantscope_audit';

/** First key of the two-key advisory locks serialising one stream's appends (second key: hashtext(stream)). */
export const STREAM_LOCK_CLASS = 0x7473_6175; // 'tsau'

export interface AuditSchemaOptions {
  /** Schema for the tables. Default `tenantscope_audit`. */
  schema?: string;
  /**
   * The writer role (what the sink's pool connects as, or SET ROLEs to). It gets INSERT on the
   * `event` column of the events table and nothing else: sequence number, stream and hash chain are
   * assigned by the database, so a writer cannot forge a link, and it cannot UPDATE, DELETE,
   * TRUNCATE or read anything.
   */
  writer?: string;
  /**
   * The auditor role (verify and anchoring): SELECT on every stream and INSERT on the anchors
   * table. The writer has no access to the anchors, so it cannot rewrite a checkpointed head.
   */
  auditor?: string;
  /**
   * Tenants' scoped role (e.g. the role `@tenantscope/postgres` connects as). It gets SELECT on the
   * events table under a row-level security policy that shows only the stream of the tenant
   * returned by `tenantIdSql`.
   */
  tenantReader?: {
    role: string;
    /** SQL expression giving the current tenant id. Default `tenantscope.current_tenant_id()`. */
    tenantIdSql?: string;
  };
}

const IDENT = /^[a-z_][a-z0-9_]{0,62}$/;

/** Quotes a lower-case identifier after checking it; refuses anything else. */
export function ident(name: string, what = 'identifier'): string {
  if (!IDENT.test(name)) {
    throw new TenantScopeError('INVALID_CONFIG', `${what} must match ${IDENT} (got an invalid name)`);
  }
  return `"${name}"`;
}

/**
 * @internal The statements that start every transaction of a pool whose sessions are not the role
 * (behind a pooler): the role and durable commits, both undone by the transaction's end.
 */
export function roleSql(quotedRole: string): string {
  return `SET LOCAL ROLE ${quotedRole}; SET LOCAL synchronous_commit = on`;
}

/** The DDL for the audit tables (idempotent). Run as the role that will own them. */
export function auditSchemaSql(options: AuditSchemaOptions = {}): string {
  const s = ident(options.schema ?? DEFAULT_AUDIT_SCHEMA, 'schema');
  const lines: string[] = [
    `CREATE SCHEMA IF NOT EXISTS ${s}`,
    `CREATE TABLE IF NOT EXISTS ${s}.events (
      stream    text COLLATE "C" NOT NULL,
      seq       bigint      NOT NULL,
      prev_hash bytea       NOT NULL,
      hash      bytea       NOT NULL,
      ts        timestamptz NOT NULL,
      event     text        NOT NULL,
      PRIMARY KEY (stream, seq)
    )`,
    `CREATE TABLE IF NOT EXISTS ${s}.anchors (
      id          bigserial   PRIMARY KEY,
      stream      text        NOT NULL,
      seq         bigint      NOT NULL,
      hash        bytea       NOT NULL,
      kind        text        NOT NULL CHECK (kind IN ('head', 'purge')),
      recorded_at timestamptz NOT NULL DEFAULT now()
    )`,
    `CREATE INDEX IF NOT EXISTS anchors_stream_seq ON ${s}.anchors (stream, seq)`,
    // The chain is assigned here, under a per-stream advisory lock held to commit, so any number
    // of writers in any number of processes append one gap-free, correctly linked chain per stream.
    // Volatile plpgsql takes a fresh snapshot per query under READ COMMITTED, so after the lock it
    // sees the previous holder's committed rows, and rows earlier in the same INSERT.
    `CREATE OR REPLACE FUNCTION ${s}.assign_chain() RETURNS trigger
      LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
      DECLARE
        j jsonb;
        st text;
        last_seq bigint;
        last_hash bytea;
      BEGIN
        IF current_setting('tenantscope_audit.append', true) = 'on' THEN
          -- Rows from append(), which assigned the chain itself. A writer that sets this flag and
          -- inserts directly can only supply "event" (column grant), so the NOT NULLs refuse the row.
          RETURN NEW;
        END IF;
        j := NEW.event::jsonb;
        IF jsonb_typeof(j) <> 'object' THEN
          RAISE EXCEPTION 'audit event must be a JSON object' USING ERRCODE = '22023';
        END IF;
        st := coalesce(j->>'tenant_id', '_unauthenticated');
        NEW.stream := st;
        NEW.ts := (j->>'timestamp')::timestamptz;
        PERFORM pg_advisory_xact_lock(${STREAM_LOCK_CLASS}, hashtext(st));
        SELECT e.seq, e.hash INTO last_seq, last_hash FROM ${s}.events e
          WHERE e.stream = st ORDER BY e.seq DESC LIMIT 1;
        IF NOT FOUND THEN
          SELECT a.seq, a.hash INTO last_seq, last_hash FROM ${s}.anchors a
            WHERE a.stream = st AND a.kind = 'purge' ORDER BY a.seq DESC LIMIT 1;
          IF NOT FOUND THEN
            last_seq := 0;
            last_hash := '\\x${'00'.repeat(32)}'::bytea;
          END IF;
        END IF;
        NEW.seq := last_seq + 1;
        NEW.prev_hash := last_hash;
        NEW.hash := sha256(last_hash || convert_to(NEW.event, 'UTF8'));
        RETURN NEW;
      END $fn$`,
    // The sink's fast path: one call appends a batch. The caller passes each event's stream and
    // timestamp alongside (sorted by stream, so concurrent batches take the stream locks in one
    // order and cannot deadlock). Per stream it takes the lock once and reads the head once, then
    // chains the batch in a loop and inserts every row in one statement. The stream label is
    // checked against the event's tenant_id; the hash always covers the exact event text stored.
    `CREATE OR REPLACE FUNCTION ${s}.append(p_streams text[], p_ts timestamptz[], p_events text[]) RETURNS integer
      LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
      DECLARE
        n integer := coalesce(cardinality(p_events), 0);
        i integer := 0;
        e text;
        st text;
        cur text := NULL;
        last_seq bigint;
        last_hash bytea;
        o_seq bigint[] := '{}';
        o_prev bytea[] := '{}';
        o_hash bytea[] := '{}';
      BEGIN
        IF coalesce(cardinality(p_streams), 0) <> n OR coalesce(cardinality(p_ts), 0) <> n THEN
          RAISE EXCEPTION 'append: arrays differ in length' USING ERRCODE = '22023';
        END IF;
        FOREACH e IN ARRAY p_events LOOP
          i := i + 1;
          st := p_streams[i];
          IF cur IS NULL OR st <> cur THEN
            IF cur IS NOT NULL AND st COLLATE "C" < cur COLLATE "C" THEN
              RAISE EXCEPTION 'append: events must be sorted by stream' USING ERRCODE = '22023';
            END IF;
            cur := st;
            PERFORM pg_advisory_xact_lock(${STREAM_LOCK_CLASS}, hashtext(cur));
            SELECT x.seq, x.hash INTO last_seq, last_hash FROM ${s}.events x
              WHERE x.stream = cur ORDER BY x.seq DESC LIMIT 1;
            IF NOT FOUND THEN
              SELECT a.seq, a.hash INTO last_seq, last_hash FROM ${s}.anchors a
                WHERE a.stream = cur AND a.kind = 'purge' ORDER BY a.seq DESC LIMIT 1;
              IF NOT FOUND THEN
                last_seq := 0;
                last_hash := '\\x${'00'.repeat(32)}'::bytea;
              END IF;
            END IF;
          END IF;
          IF position((CASE WHEN cur = '_unauthenticated' THEN '"tenant_id":null'
                            ELSE '"tenant_id":"' || cur || '"' END) IN e) = 0 THEN
            RAISE EXCEPTION 'append: an event is labelled with another stream' USING ERRCODE = '22023';
          END IF;
          o_prev[i] := last_hash;
          last_seq := last_seq + 1;
          last_hash := sha256(last_hash || convert_to(e, 'UTF8'));
          o_seq[i] := last_seq;
          o_hash[i] := last_hash;
        END LOOP;
        PERFORM set_config('tenantscope_audit.append', 'on', true);
        INSERT INTO ${s}.events (stream, seq, prev_hash, hash, ts, event)
          SELECT * FROM unnest(p_streams, o_seq, o_prev, o_hash, p_ts, p_events);
        PERFORM set_config('tenantscope_audit.append', 'off', true);
        RETURN n;
      END $fn$`,
    `CREATE OR REPLACE FUNCTION ${s}.refuse_change() RETURNS trigger
      LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
      BEGIN
        IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'events'
           AND current_setting('tenantscope_audit.purge', true) = 'on' THEN
          RETURN OLD;
        END IF;
        RAISE EXCEPTION 'tenantscope audit: % on %.% is refused (append-only)', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
          USING ERRCODE = '42501';
      END $fn$`,
    `DROP TRIGGER IF EXISTS assign_chain ON ${s}.events`,
    `CREATE TRIGGER assign_chain BEFORE INSERT ON ${s}.events FOR EACH ROW EXECUTE FUNCTION ${s}.assign_chain()`,
  ];
  for (const t of ['events', 'anchors']) {
    lines.push(
      `DROP TRIGGER IF EXISTS refuse_update_delete ON ${s}.${t}`,
      `CREATE TRIGGER refuse_update_delete BEFORE UPDATE OR DELETE ON ${s}.${t} FOR EACH ROW EXECUTE FUNCTION ${s}.refuse_change()`,
      `DROP TRIGGER IF EXISTS refuse_truncate ON ${s}.${t}`,
      `CREATE TRIGGER refuse_truncate BEFORE TRUNCATE ON ${s}.${t} FOR EACH STATEMENT EXECUTE FUNCTION ${s}.refuse_change()`,
      `REVOKE ALL ON ${s}.${t} FROM PUBLIC`,
    );
  }
  lines.push(
    `REVOKE ALL ON FUNCTION ${s}.assign_chain() FROM PUBLIC`,
    `REVOKE ALL ON FUNCTION ${s}.append(text[], timestamptz[], text[]) FROM PUBLIC`,
    `ALTER TABLE ${s}.events ENABLE ROW LEVEL SECURITY`,
    `ALTER TABLE ${s}.anchors ENABLE ROW LEVEL SECURITY`,
  );
  if (options.writer) {
    const w = ident(options.writer, 'writer role');
    lines.push(
      `GRANT USAGE ON SCHEMA ${s} TO ${w}`,
      `GRANT INSERT (event) ON ${s}.events TO ${w}`,
      `GRANT EXECUTE ON FUNCTION ${s}.append(text[], timestamptz[], text[]) TO ${w}`,
      `DROP POLICY IF EXISTS writer_append ON ${s}.events`,
      `CREATE POLICY writer_append ON ${s}.events FOR INSERT TO ${w} WITH CHECK (true)`,
    );
  }
  if (options.auditor) {
    const a = ident(options.auditor, 'auditor role');
    lines.push(
      `GRANT USAGE ON SCHEMA ${s} TO ${a}`,
      `GRANT SELECT ON ${s}.events TO ${a}`,
      `GRANT SELECT, INSERT ON ${s}.anchors TO ${a}`,
      `GRANT USAGE ON SEQUENCE ${s}.anchors_id_seq TO ${a}`,
      `DROP POLICY IF EXISTS auditor_read ON ${s}.events`,
      `CREATE POLICY auditor_read ON ${s}.events FOR SELECT TO ${a} USING (true)`,
      `DROP POLICY IF EXISTS auditor_all ON ${s}.anchors`,
      `CREATE POLICY auditor_all ON ${s}.anchors FOR ALL TO ${a} USING (true) WITH CHECK (kind = 'head')`,
    );
  }
  if (options.tenantReader) {
    const r = ident(options.tenantReader.role, 'tenant reader role');
    const expr = options.tenantReader.tenantIdSql ?? 'tenantscope.current_tenant_id()';
    lines.push(
      `GRANT USAGE ON SCHEMA ${s} TO ${r}`,
      `GRANT SELECT ON ${s}.events TO ${r}`,
      `DROP POLICY IF EXISTS tenant_read ON ${s}.events`,
      `CREATE POLICY tenant_read ON ${s}.events FOR SELECT TO ${r} USING (stream = (${expr})::text)`,
    );
  }
  return lines.join(';\n');
}

/**
 * Creates or updates the audit tables, triggers, grants and policies in one transaction,
 * serialised against concurrent migrations. Run with a pool connected as the owning role, or pass
 * `run.role` (a pool behind a pooler that logs in as another role, see `setupPostgresAudit`).
 */
export async function migrateAuditSchema(
  pool: Pool,
  options: AuditSchemaOptions = {},
  run: { role?: string } = {},
): Promise<void> {
  const role = run.role === undefined ? undefined : ident(run.role, 'role');
  const client: PoolClient = await pool.connect();
  try {
    await client.query(role === undefined ? 'BEGIN' : `BEGIN; ${roleSql(role)}`);
    await client.query('SELECT pg_advisory_xact_lock($1, 0)', [STREAM_LOCK_CLASS - 1]);
    await client.query(auditSchemaSql(options));
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw new TenantScopeError('INVALID_CONFIG', 'audit schema migration failed', { cause: err });
  } finally {
    client.release();
  }
}
