/**
 * Exit codes: 0 every check passed, 1 a check failed, 2 bad usage or config, or a move in progress (nothing was sent),
 * 3 the target or the audit location could not be reached, 4 an unexpected error.
 * Kept free of imports: the command registration (and `--help`) loads it.
 */
export const EXIT = { OK: 0, FAILED: 1, USAGE: 2, UNREACHABLE: 3, INTERNAL: 4 } as const;
