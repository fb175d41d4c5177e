// Preloaded into the guard (`node --import`) by the benchmark's BORG_RSH script when
// BENCH_GUARD_CPU=FILE: at exit, appends the guard process's own CPU time (not its borg serve
// child's) to FILE, as "user_seconds system_seconds max_rss_kib minor_page_faults gc_count
// gc_full_count gc_ms": where the guard's time goes besides its own JavaScript.
import { appendFileSync } from 'node:fs';
import { PerformanceObserver, constants } from 'node:perf_hooks';

const file = process.env.BENCH_GUARD_CPU;
if (file) {
  const gc = { count: 0, full: 0, ms: 0 };
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gc.count++;
      if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) gc.full++;
      gc.ms += e.duration;
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  process.on('exit', () => {
    const u = process.resourceUsage();
    appendFileSync(file, `${u.userCPUTime / 1e6} ${u.systemCPUTime / 1e6} ${u.maxRSS} ${u.minorPageFault} ${gc.count} ${gc.full} ${gc.ms.toFixed(1)}\n`);
  });
}
