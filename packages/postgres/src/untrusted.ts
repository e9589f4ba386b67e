import { pgError } from './errors.ts';

/** Default byte limit of one `queryUntrusted` result: 1 MiB. */
export const DEFAULT_UNTRUSTED_MAX_BYTES = 1024 * 1024;

/**
 * Statement kinds `queryUntrusted` runs: queries, and DML (which a read-only call leaves to the
 * database to refuse). Everything else is refused before it is sent: EXPLAIN (its row estimates
 * come from statistics over every tenant's rows), DO (plpgsql could run EXPLAIN and signal the
 * estimate back), SHOW, SET, COPY, DECLARE, CALL, LOCK, PREPARE, …
 */
const ALLOWED = new Set(['select', 'with', 'values', 'table', 'insert', 'update', 'delete', 'merge']);

/** The first keyword of `text`, after whitespace, `--` and (nested) `/* *\/` comments and `(`. */
export function leadingKeyword(text: string): string {
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i] as string;
    if (/\s|\(/.test(c)) {
      i++;
    } else if (text.startsWith('--', i)) {
      const nl = text.indexOf('\n', i);
      i = nl < 0 ? n : nl + 1;
    } else if (text.startsWith('/*', i)) {
      let depth = 0;
      while (i < n) {
        if (text.startsWith('/*', i)) {
          depth++;
          i += 2;
        } else if (text.startsWith('*/', i)) {
          depth--;
          i += 2;
          if (depth === 0) break;
        } else i++;
      }
    } else break;
  }
  return (/^[A-Za-z_]+/.exec(text.slice(i))?.[0] ?? '').toLowerCase();
}

/**
 * Advisory locks are shared by every tenant of the database: trying one that the secrets provider
 * or the audit sink takes for another tenant tells whether that tenant is writing (and waiting on
 * it delays them). A call must spell the function's name (the guards revoke the functions that run
 * SQL from a string), so the name, or a Unicode-escaped identifier that could hide it, is refused.
 */
const FORBIDDEN = /pg_(try_)?advisory_|\bU&['"]/i;

/** Throws PG_STATEMENT_REFUSED unless `text` starts like a query or DML statement. */
export function assertUntrustedStatement(text: string): void {
  if (FORBIDDEN.test(text)) {
    throw pgError('PG_STATEMENT_REFUSED', 'queryUntrusted does not take advisory locks or Unicode-escaped names');
  }
  const kw = leadingKeyword(text);
  if (!ALLOWED.has(kw)) {
    throw pgError(
      'PG_STATEMENT_REFUSED',
      `queryUntrusted runs SELECT, WITH, VALUES, TABLE, INSERT, UPDATE, DELETE and MERGE only${kw === 'explain' ? ' (EXPLAIN shows estimates from every tenant)' : ''}`,
    );
  }
}

/** Validates a `maxBytes` option: an integer from 1 KiB to 1 GiB. */
export function checkMaxBytes(maxBytes: number, what = 'maxBytes'): number {
  if (!Number.isInteger(maxBytes) || maxBytes < 1024 || maxBytes > 1024 ** 3) {
    throw pgError('PG_IDENTIFIER_INVALID', `${what} must be an integer from 1024 to 1073741824`);
  }
  return maxBytes;
}

interface Readable {
  prependListener(event: 'data', fn: (chunk: Buffer) => void): unknown;
  removeListener(event: 'data', fn: (chunk: Buffer) => void): unknown;
  destroy(): unknown;
}

/** A byte counter on one connection's socket. */
export interface ByteCap {
  /** True once the server sent more than the limit (and the socket was destroyed). */
  readonly exceeded: boolean;
  detach(): void;
}

/**
 * Counts every byte the server sends on `client`'s socket from now on, before the driver parses
 * it. Past `maxBytes` it destroys the socket: the driver stops reading, the pending query fails,
 * and at most the limit plus one socket read (64 KiB) was ever held. The connection is lost, so
 * use it only on connections that are discarded afterwards.
 */
export function capSocketBytes(client: unknown, maxBytes: number): ByteCap {
  const c = client as { connection?: { stream?: Readable }; on?: (event: 'error', fn: () => void) => unknown };
  const stream = c.connection?.stream;
  if (!stream || typeof stream.prependListener !== 'function') {
    throw pgError('PG_UNAVAILABLE', 'cannot limit the result size on this connection (no socket)');
  }
  let seen = 0;
  const state = { exceeded: false };
  const onData = (chunk: Buffer) => {
    if (state.exceeded) return;
    seen += chunk.length;
    if (seen > maxBytes) {
      state.exceeded = true;
      // The client reports the dropped socket as an 'error' event too; the pending query carries it.
      c.on?.('error', () => undefined);
      stream.destroy();
    }
  };
  stream.prependListener('data', onData);
  return {
    get exceeded() {
      return state.exceeded;
    },
    detach: () => {
      stream.removeListener('data', onData);
    },
  };
}

/** The error for a result past the limit. No row data in it. */
export function resultTooLarge(maxBytes: number, cause?: unknown) {
  return pgError(
    'PG_RESULT_TOO_LARGE',
    `the result passed the ${maxBytes}-byte limit; reading stopped and nothing was returned`,
    { cause, details: { maxBytes } },
  );
}
