/**
 * Preloaded into the CLI's process by the DSAR bench (`node --import`): at exit, writes the
 * kernel's peak resident set size of the process (getrusage ru_maxrss, in KiB) to BENCH_RSS_FILE.
 */
import { writeFileSync } from 'node:fs';

const file = process.env.BENCH_RSS_FILE;
if (file) {
  process.on('exit', () => {
    writeFileSync(file, String(process.resourceUsage().maxRSS));
  });
}
