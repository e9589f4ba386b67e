/**
 * Preloaded into the CLI's process by the DSAR bench (`node --import`): at exit, writes to
 * BENCH_RSS_FILE the kernel's peak resident set size of the process (getrusage ru_maxrss, KiB)
 * and the CPU time it used (user and system, ms), as JSON.
 */
import { writeFileSync } from 'node:fs';

const file = process.env.BENCH_RSS_FILE;
if (file) {
  process.on('exit', () => {
    const u = process.resourceUsage();
    writeFileSync(file, JSON.stringify({ maxRssKib: u.maxRSS, cpuMs: (u.userCPUTime + u.systemCPUTime) / 1000 }));
  });
}
