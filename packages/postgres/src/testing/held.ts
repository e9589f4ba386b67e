import type { ScopedTransaction, TenantDb } from '../scoped.ts';

/** A transaction of one tenant that binds, then holds open until `release()`, then runs `body`. */
export interface HeldTransaction {
  /** Resolves once the transaction has bound (BEGIN + bind ran). */
  bound: Promise<void>;
  release(): void;
  /** The transaction's outcome (committed once `body` resolved). */
  done: Promise<void>;
}

export function holdTransaction(db: TenantDb, body: (tx: ScopedTransaction) => Promise<unknown>): HeldTransaction {
  let release!: () => void;
  const latch = new Promise<void>((r) => {
    release = r;
  });
  let markBound!: () => void;
  const bound = new Promise<void>((r) => {
    markBound = r;
  });
  const done = db.transaction(async (tx) => {
    markBound();
    await latch;
    await body(tx);
  });
  return { bound, release, done };
}
