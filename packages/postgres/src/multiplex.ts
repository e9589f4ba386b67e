import pg from 'pg';
import { boundQuery } from './bound-query.ts';
import { wrapDriverError } from './errors.ts';

interface Conn {
  client: pg.Client;
  ready: Promise<void>;
  inflight: number;
  retired: boolean;
}

/**
 * Shared pipelined connections that carry many tenants' bound statements at once, without an
 * exclusive checkout. Safe because each unit (`tenantscope.bind(token)` + statement + Sync, see
 * BoundQuery) is its own implicit transaction: the binding is set with is_local inside it and
 * ends at its Sync, before the next unit on the wire starts, and every unit binds itself. Only
 * statements that cannot touch session state are sent here (the caller gates them). A connection
 * whose unit fails, or that is not idle after one, is retired: it takes no new units and is
 * closed once the ones already on the wire have answered; it never returns to any pool.
 * @internal
 */
export class Multiplexer {
  readonly #config: pg.ClientConfig;
  readonly #size: number;
  readonly #named: boolean;
  readonly #conns: Conn[] = [];
  #ended = false;
  #units = 0;

  /** `named`: the bind call may be a named prepared statement (false behind a transaction pooler). */
  constructor(config: pg.PoolConfig, size: number, named = true) {
    const { max: _m, idleTimeoutMillis: _i, connectionTimeoutMillis: _c, ...clientConfig } = config;
    this.#config = { ...clientConfig, pipeline: true } as pg.ClientConfig;
    this.#size = size;
    this.#named = named;
  }

  get units(): number {
    return this.#units;
  }

  async run<R extends pg.QueryResultRow>(token: string, text: string, params?: unknown[]): Promise<pg.QueryResult<R>> {
    const conn = this.#pick();
    conn.inflight++;
    this.#units++;
    try {
      await conn.ready;
      const r = await boundQuery<R>(conn.client, token, text, params, this.#named);
      if (conn.client.getTransactionStatus() !== 'I') this.#retire(conn);
      return r;
    } catch (err) {
      this.#retire(conn);
      throw wrapDriverError(err, 'query');
    } finally {
      conn.inflight--;
      if (conn.retired && conn.inflight === 0) void conn.client.end().catch(() => undefined);
    }
  }

  #pick(): Conn {
    if (this.#ended) throw wrapDriverError(new Error('Client was closed'), 'query');
    let best: Conn | undefined;
    for (const c of this.#conns) if (!best || c.inflight < best.inflight) best = c;
    if (best && (best.inflight === 0 || this.#conns.length >= this.#size)) return best;
    const client = new pg.Client(this.#config);
    const conn: Conn = { client, inflight: 0, retired: false, ready: Promise.resolve() };
    conn.ready = client.connect().then(
      () => undefined,
      (err) => {
        this.#retire(conn);
        throw err;
      },
    );
    client.on('error', () => this.#retire(conn));
    this.#conns.push(conn);
    return conn;
  }

  #retire(conn: Conn): void {
    if (conn.retired) return;
    conn.retired = true;
    const i = this.#conns.indexOf(conn);
    if (i >= 0) this.#conns.splice(i, 1);
    if (conn.inflight === 0) void conn.client.end().catch(() => undefined);
  }

  async end(): Promise<void> {
    this.#ended = true;
    const all = [...this.#conns];
    for (const c of all) this.#retire(c);
    await Promise.allSettled(all.map((c) => c.client.end()));
  }
}
