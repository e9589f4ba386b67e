import { errorFactory, isTenantScopeError } from '@tenantscope/core';
import { EXIT } from './exit.ts';

/**
 * The codes the CLI throws, with their HTTP-style status (400: the user's input, 502: something
 * the CLI talks to). Callers switch on `code`. Messages name only the user's own input (a config
 * field, a file), never a token.
 */
export const CLI_ERROR_CODES = {
  /** Bad command line: unknown option, missing argument. */
  CLI_USAGE: 400,
  /** The config file is missing, unreadable or fails validation; the message names the field. */
  CLI_CONFIG_INVALID: 400,
  /** A signing key that cannot be read or has no supported algorithm. */
  CLI_KEY_INVALID: 400,
  /** A tenant's token command failed, timed out or printed nothing. */
  CLI_TOKEN_COMMAND_FAILED: 400,
  /** The target did not answer at all (connection refused, timeout). */
  CLI_TARGET_UNREACHABLE: 502,
  /** The audit location could not be read. */
  CLI_AUDIT_UNREADABLE: 502,
  /** A tenant (or data subject) the DSAR config does not know; nothing was touched. */
  CLI_UNKNOWN_TENANT: 400,
  /** A DSAR store failed or did not reach the expected count (a rerun resumes a deletion). */
  CLI_STORE_FAILED: 502,
  /** `keys revoke` of an id no key has; nothing was changed. */
  CLI_UNKNOWN_KEY: 400,
  /**
   * A DSAR command on a tenant with an unfinished `tenant move` in one of its stores (or one that
   * started while it ran): refused before anything is touched (or before the certificate or
   * manifest is written); finish or roll back the move, then rerun.
   */
  CLI_MOVE_IN_PROGRESS: 409,
} as const;

export type CliErrorCode = keyof typeof CLI_ERROR_CODES;

export const cliError = errorFactory(CLI_ERROR_CODES);

export { EXIT };

/** The exit code for an error thrown by a command. */
export function exitCodeOf(err: unknown): number {
  if (isTenantScopeError(err) && err.code in CLI_ERROR_CODES) {
    return CLI_ERROR_CODES[err.code as CliErrorCode] < 500 ? EXIT.USAGE : EXIT.UNREACHABLE;
  }
  return EXIT.INTERNAL;
}
