import type pg from 'pg';
import type { DoctorProblem } from './doctor.ts';
import { detectTransactionPooler, type PoolerMode } from './pooler.ts';

/**
 * The doctor's pooler check: the declared `pooler` mode against what is in front of PostgreSQL.
 * - POOLER_MISMATCH (problem): 'none' or 'session' declared, and a transaction pooler was proven
 *   (two client connections shared a backend, or one client connection moved between backends).
 *   Hot lanes would leave a session binding on a server connection other clients get next.
 * - POOLER_NOT_SEEN (warning): 'transaction' declared, no pooler seen, and the server's own port is
 *   the port dialled: safe, but per-transaction binding costs speed a direct connection need not pay.
 * @internal
 */
export async function checkPoolerMode(
  config: pg.ClientConfig,
  declared: PoolerMode,
): Promise<{ problems: DoctorProblem[]; warnings: DoctorProblem[] }> {
  const problems: DoctorProblem[] = [];
  const warnings: DoctorProblem[] = [];
  const probe = await detectTransactionPooler(config);
  if (declared !== 'transaction' && probe.transactionPooler) {
    problems.push({
      code: 'POOLER_MISMATCH',
      message: `pooler '${declared}' is declared, but a transaction pooler is in front of PostgreSQL (${probe.evidence}): declare pooler: 'transaction'`,
    });
  } else if (
    declared === 'transaction' &&
    !probe.transactionPooler &&
    probe.serverPort !== null &&
    probe.serverPort === probe.clientPort
  ) {
    warnings.push({
      code: 'POOLER_NOT_SEEN',
      message: `pooler 'transaction' is declared, but the connection looks direct (${probe.evidence}, server port = dialled port): per-transaction binding costs speed a direct connection need not pay`,
    });
  }
  return { problems, warnings };
}
