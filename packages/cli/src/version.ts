/** The CLI's version (`tenantscope --version`, reports, manifests). Kept free of imports: `--help` loads it. */
export const VERSION = '0.1.0';
