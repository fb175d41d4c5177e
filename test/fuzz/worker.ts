// One fuzz target's loop in a worker thread: inputs start..start+count (or until the deadline),
// each a pure function of (run seed, target, index). The index being run is kept in shared memory,
// so the runner can name the input when this thread hangs in synchronous code or runs out of memory.

import { parentPort, workerData } from 'node:worker_threads';

import { inputSeed } from './mutate.js';
import { openTarget, type TargetName } from './targets.js';

export interface WorkerData {
  readonly target: TargetName;
  readonly runSeed: number;
  readonly start: number;
  readonly count: number;
  /** Wall-clock time (ms since the epoch) after which no new input starts. */
  readonly deadline: number;
  readonly corpusDir: string;
  readonly workDir: string;
  /** Heap after a full collection above this many MB is a finding (a leak across inputs). */
  readonly heapLimitMb: number;
  /** [0]: index being run, [1]: inputs done. */
  readonly progress: SharedArrayBuffer;
}

export type WorkerMessage =
  | { type: 'finding'; index: number; seed: number; violations: Array<{ property: string; message: string }>; input: object }
  | { type: 'done'; inputs: number; ms: number; maxHeapMb: number; heapAfterGcMb: number; outcomes: Record<string, number> };

const d = workerData as WorkerData;
const progress = new Int32Array(d.progress);
const gc = (globalThis as { gc?: () => void }).gc;
const heapMb = (): number => process.memoryUsage().heapUsed / 1048576;

const target = openTarget(d.target, d.corpusDir, d.workDir);
const started = performance.now();
let maxHeap = heapMb();
let heapAfterGc = 0;
let done = 0;
/** How the inputs ended (session results, audit reports or errors): is the fuzzer reaching deep? */
const outcomes: Record<string, number> = {};
for (let i = d.start; i < d.start + d.count && Date.now() < d.deadline; i++) {
  Atomics.store(progress, 0, i);
  const seed = inputSeed(d.runSeed, d.target, i);
  const { violations, outcome, json } = await target.run(seed);
  outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
  if (violations.length > 0) parentPort?.postMessage({ type: 'finding', index: i, seed, violations, input: json() } satisfies WorkerMessage);
  done++;
  Atomics.store(progress, 1, done);
  if (done % 128 === 0) maxHeap = Math.max(maxHeap, heapMb());
  if (done % 20_000 === 0 && gc) {
    gc();
    heapAfterGc = heapMb();
    if (heapAfterGc > d.heapLimitMb) {
      parentPort?.postMessage({
        type: 'finding',
        index: i,
        seed,
        violations: [{ property: 'memory', message: `the heap holds ${heapAfterGc.toFixed(0)} MB after a full collection, over the bound of ${d.heapLimitMb} MB` }],
        input: json(),
      } satisfies WorkerMessage);
    }
  }
}
if (gc) {
  gc();
  heapAfterGc = heapMb();
}
parentPort?.postMessage({ type: 'done', inputs: done, ms: performance.now() - started, maxHeapMb: maxHeap, heapAfterGcMb: heapAfterGc, outcomes } satisfies WorkerMessage);
