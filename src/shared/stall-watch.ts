// What held `borgkeep serve`'s one thread when it stalled. The HTTP API, the SSH gateway and the
// jobs share the event loop, so anything synchronous that runs long (a store query over pages the
// kernel evicted, a commit's fsync, a garbage collection of a large heap, a job's loop without a
// turn) delays every request meanwhile. bench/api.bench.mjs saw single stalls of 0.3-1 s that CPU
// profiles could not attribute: a timer here measures how late it fires, and a stall above the
// threshold is reported with the synchronous work noted meanwhile (noteSlowWork: the store's
// driver notes every statement of 20 ms or more) and the garbage collections' time.

import { PerformanceObserver, performance } from 'node:perf_hooks';

/** Synchronous work this long or longer is noted (the store notes its statements). */
export const SLOW_WORK_MS = 20;
/** How many noted pieces of work one stall report carries at most (the longest). */
const KEPT = 5;

export interface SlowWork {
  readonly what: string;
  readonly ms: number;
}

export interface Stall {
  /** How much later than due the watch's timer fired: how long nothing else could run. */
  readonly ms: number;
  /** The longest synchronous work noted since the previous tick, longest first. */
  readonly slowWork: readonly SlowWork[];
  /** Garbage collection in that time, in ms. */
  readonly gcMs: number;
}

let noted: SlowWork[] = [];

/** Notes a piece of synchronous work that took `ms` (callers note only what reached SLOW_WORK_MS). */
export function noteSlowWork(what: string, ms: number): void {
  noted.push({ what, ms });
  if (noted.length > 4 * KEPT) noted = longest(noted);
}

const longest = (work: SlowWork[]): SlowWork[] => [...work].sort((a, b) => b.ms - a.ms).slice(0, KEPT);

/**
 * Starts watching the event loop: every `tickMs` a timer checks how late it fired, and a delay of
 * `thresholdMs` or more is reported to `onStall`. Returns the function that stops the watch. The
 * timer is unref'd: it never keeps a process alive.
 */
export function startStallWatch(opts: { onStall: (stall: Stall) => void; thresholdMs?: number; tickMs?: number }): () => void {
  const thresholdMs = opts.thresholdMs ?? 200;
  const tickMs = opts.tickMs ?? 50;
  let gcMs = 0;
  const gc = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) gcMs += entry.duration;
  });
  gc.observe({ entryTypes: ['gc'] });
  noted = [];
  let due = performance.now() + tickMs;
  const timer = setInterval(() => {
    const now = performance.now();
    const late = now - due;
    due = now + tickMs;
    if (late >= thresholdMs) opts.onStall({ ms: Math.round(late), slowWork: longest(noted), gcMs: Math.round(gcMs) });
    noted = [];
    gcMs = 0;
  }, tickMs);
  timer.unref();
  return () => {
    clearInterval(timer);
    gc.disconnect();
  };
}
