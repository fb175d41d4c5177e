// BORGKEEP_SQL_PROFILE=FILE: every statement the store runs is timed, and the forty costliest
// (by total time, with each one's longest run) are written to FILE.PID every 10 s: the SQL part of a CPU profile, which
// `node --cpu-prof` shows only as one native function whose callers async stacks lose. For
// benchmarks (bench/api.bench.mjs passes it on to the server); off, it costs one test per query.

import { writeFileSync } from 'node:fs';

export interface SqlProfile {
  /** Runs `run` for the statement `sql`, adding its time to the statement's. */
  time<T>(sql: string, run: () => T): T;
}

const WRITE_EVERY_MS = 10_000;
const KEPT = 40;

export function sqlProfileFromEnv(env: NodeJS.ProcessEnv = process.env): SqlProfile | null {
  const file = env.BORGKEEP_SQL_PROFILE;
  if (!file) return null;
  const totals = new Map<string, { calls: number; ns: bigint; maxNs: bigint }>();
  const write = () => {
    const rows = [...totals.entries()].sort((a, b) => (b[1].ns > a[1].ns ? 1 : b[1].ns < a[1].ns ? -1 : 0)).slice(0, KEPT);
    const lines = rows.map(([sql, t]) => {
      const ms = Number(t.ns) / 1e6;
      const max = Number(t.maxNs) / 1e6;
      return `${ms.toFixed(0).padStart(8)} ms ${String(t.calls).padStart(8)} calls ${((ms * 1000) / t.calls).toFixed(0).padStart(7)} us/call ${max.toFixed(1).padStart(8)} ms max  ${sql.replace(/\s+/g, ' ')}`;
    });
    writeFileSync(`${file}.${process.pid}`, `${lines.join('\n')}\n`);
  };
  setInterval(write, WRITE_EVERY_MS).unref();
  return {
    time(sql, run) {
      const start = process.hrtime.bigint();
      try {
        return run();
      } finally {
        const t = totals.get(sql) ?? { calls: 0, ns: 0n, maxNs: 0n };
        const ns = process.hrtime.bigint() - start;
        t.calls++;
        t.ns += ns;
        if (ns > t.maxNs) t.maxNs = ns;
        totals.set(sql, t);
      }
    },
  };
}
