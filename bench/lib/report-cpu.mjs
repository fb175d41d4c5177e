// Preloaded into the guard (`node --import`) by the benchmark's BORG_RSH script when
// BENCH_GUARD_CPU=FILE: at exit, appends the guard process's own CPU time (not its borg serve
// child's) to FILE, as "user_seconds system_seconds max_rss_kib".
import { appendFileSync } from 'node:fs';

const file = process.env.BENCH_GUARD_CPU;
if (file) {
  process.on('exit', () => {
    const u = process.resourceUsage();
    appendFileSync(file, `${u.userCPUTime / 1e6} ${u.systemCPUTime / 1e6} ${u.maxRSS}\n`);
  });
}
