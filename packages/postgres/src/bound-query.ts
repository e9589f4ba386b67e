import pg from 'pg';

const BIND_SQL = 'SELECT tenantscope.bind($1)';
/** The bind call is a named prepared statement: parsed and planned once per connection. */
const BIND_NAME = 'tenantscope_bind_v1';

type Callback = (err: Error | null, res?: pg.QueryResult) => void;

interface Wire {
  parsedStatements: Record<string, string>;
  parse(msg: { text: string; name?: string; types?: unknown[] }): void;
  bind(msg: { portal?: string; statement?: string; values?: unknown[] }): void;
  execute(msg: { portal?: string; rows?: number }): void;
}

/**
 * One statement bound to a tenant in ONE implicit transaction: Parse/Bind/Execute of
 * `tenantscope.bind(token)`, then Parse/Bind/Describe/Execute of the statement, then a single Sync.
 * Everything before a Sync is one transaction, so the binding (set with is_local) covers exactly
 * this statement and ends at the Sync: no BEGIN and no COMMIT, two statements instead of four,
 * one network round trip. If the binding fails, the server skips the statement. The extended
 * protocol also refuses multi-statement text.
 *
 * It subclasses `pg.Query`, so a pipelined client accepts it. @internal
 */
// biome-ignore lint/suspicious/noExplicitAny: pg.Query's internals are untyped.
const QueryBase = (pg as any).Query as new (config: pg.QueryConfig & { callback?: Callback }) => any;

export class BoundQuery extends QueryBase {
  #token: string;
  #named: boolean;
  #bindPending = true;

  /**
   * `named`: the bind call is a named prepared statement, parsed once per connection. Only where
   * the connection keeps its prepared statements between transactions (not behind a transaction
   * pooler that does not track them): otherwise it is parsed unnamed in every unit.
   */
  constructor(token: string, text: string, values: unknown[] | undefined, callback: Callback, named = true) {
    super({ text, values: values ?? [], callback });
    this.#token = token;
    this.#named = named;
  }

  requiresPreparation(): boolean {
    return true;
  }

  prepare(connection: Wire): void {
    const name = this.#named ? BIND_NAME : '';
    if (!this.#named) {
      // The unnamed statement lives until the next Parse, which comes after its Execute.
      connection.parse({ text: BIND_SQL, name, types: [] });
    } else if (connection.parsedStatements[BIND_NAME] !== BIND_SQL) {
      connection.parse({ text: BIND_SQL, name, types: [] });
      // Recorded now: the units behind this one on the wire reuse it. If the Parse failed, this
      // unit fails and its connection is retired, so the record never outlives a bad state.
      connection.parsedStatements[BIND_NAME] = BIND_SQL;
    }
    connection.bind({ portal: '', statement: name, values: [this.#token] });
    connection.execute({ portal: '', rows: 0 });
    super.prepare(connection);
  }

  handleDataRow(msg: unknown): void {
    if (this.#bindPending) return;
    super.handleDataRow(msg);
  }

  handleCommandComplete(msg: unknown, connection: unknown): void {
    if (this.#bindPending) {
      this.#bindPending = false;
      return;
    }
    super.handleCommandComplete(msg, connection);
  }
}

/**
 * Runs `text` bound to the tenant of `token` on `client`, in one implicit transaction. `named`: see
 * BoundQuery (false behind a transaction pooler). @internal
 */
export function boundQuery<R extends pg.QueryResultRow>(
  client: pg.ClientBase,
  token: string,
  text: string,
  values: unknown[] | undefined,
  named = true,
): Promise<pg.QueryResult<R>> {
  return new Promise((resolve, reject) => {
    const q = new BoundQuery(
      token,
      text,
      values,
      (err, res) => (err ? reject(err) : resolve(res as pg.QueryResult<R>)),
      named,
    );
    client.query(q as unknown as pg.QueryConfig);
  });
}
