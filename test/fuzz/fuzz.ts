// `npm run fuzz`: the guard and the repository readers fed with mutated real borg data, and the
// native object checker held to the JavaScript one on hostile objects (objcheck-target.ts),
// bounded in inputs and time, deterministic from one seed. Never part of `npm test`.
//
//   npm run fuzz                          1,000,000 guard, 100,000 reader and 300,000 objcheck inputs (about 25 min on 2 cores)
//   FUZZ_QUICK=1 npm run fuzz             20,000, 5,000 and 20,000, for development
//   FUZZ_SEED=N                           the run's seed (printed at the start; default random)
//   FUZZ_TARGET=guard|reader|objcheck     one target only
//   FUZZ_GUARD_INPUTS=N FUZZ_READER_INPUTS=N FUZZ_OBJCHECK_INPUTS=N FUZZ_MINUTES=N    other bounds (inputs, then time)
//   FUZZ_READER_WORKERS=N                 worker threads for the reader (default 2)
//   FUZZ_SEED=N FUZZ_TARGET=T FUZZ_INDEX=I npm run fuzz        replays input I of that run
//   FUZZ_REPLAY=test/fuzz/findings/F.json npm run fuzz         replays a finding
//   npm run fuzz -- --record [MODE...]    records the corpus again from the real borg client (MODE: only those seed repositories)
//
// Each target runs in its own worker thread (the reader in two); this thread is the watchdog: an input
// that stops the worker's progress for HANG_SECONDS (a synchronous loop) or kills it (out of
// memory) is a finding too, and the worker goes on after it. A finding is written to
// test/fuzz/findings/ with the line that replays it; the run then exits 1.

import { randomInt } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Worker } from 'node:worker_threads';

import { inputSeed } from './mutate.js';
import { recordCorpus } from './record-corpus.js';
import { TARGETS, openTarget, type TargetName } from './targets.js';
import type { WorkerData, WorkerMessage } from './worker.js';

const root = process.cwd();
const corpusDir = resolve(root, 'test/fuzz/corpus');
const findingsDir = resolve(root, 'test/fuzz/findings');
const env = process.env;
const HANG_SECONDS = 60;
/** Finding files written per target and property in one run; the rest are counted. */
const FILES_PER_PROPERTY = 5;

const int = (name: string, fallback: number): number => {
  const v = env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name} must be a whole number, not '${v}'`);
  return n;
};

async function replayOne(target: TargetName, json: Record<string, unknown> | null, index: number | null, runSeed: number): Promise<number> {
  const work = mkdtempSync(join(tmpdir(), 'borgkeep-fuzz-replay-'));
  try {
    const t = openTarget(target, corpusDir, work);
    const violations = json ? await t.replay(json) : (await t.run(inputSeed(runSeed, target, index as number))).violations;
    if (violations.length === 0) {
      console.log(`${target}: the input passes every check`);
      return 0;
    }
    for (const v of violations) console.log(`${target}: ${v.property}: ${v.message}`);
    return 1;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

interface Figures {
  inputs: number;
  ms: number;
  findings: number;
  maxHeapMb: number;
  heapAfterGcMb: number;
  properties: Map<string, number>;
  outcomes: Map<string, number>;
}

async function main(): Promise<number> {
  const record = process.argv.indexOf('--record');
  if (record >= 0) {
    recordCorpus(corpusDir, process.argv.slice(record + 1));
    return 0;
  }
  const runSeed = env.FUZZ_SEED ? int('FUZZ_SEED', 0) >>> 0 : randomInt(2 ** 32);
  const only = env.FUZZ_TARGET;
  if (only && !TARGETS.includes(only as TargetName)) throw new Error(`FUZZ_TARGET must be one of ${TARGETS.join(', ')}`);
  if (env.FUZZ_REPLAY) {
    const finding = JSON.parse(readFileSync(resolve(root, env.FUZZ_REPLAY), 'utf8')) as { target: TargetName; input: Record<string, unknown> };
    return replayOne(finding.target, finding.input, null, 0);
  }
  if (env.FUZZ_INDEX) {
    if (!only || !env.FUZZ_SEED) throw new Error('FUZZ_INDEX needs FUZZ_SEED and FUZZ_TARGET');
    return replayOne(only as TargetName, null, int('FUZZ_INDEX', 0), runSeed);
  }
  const quick = env.FUZZ_QUICK === '1';
  const counts: Record<TargetName, number> = {
    guard: int('FUZZ_GUARD_INPUTS', quick ? 20_000 : 1_000_000),
    reader: int('FUZZ_READER_INPUTS', quick ? 5_000 : 100_000),
    objcheck: int('FUZZ_OBJCHECK_INPUTS', quick ? 20_000 : 300_000),
  };
  const minutes = int('FUZZ_MINUTES', quick ? 10 : 60);
  const heapLimitMb = int('FUZZ_HEAP_LIMIT_MB', 256);
  const targets = TARGETS.filter((t) => !only || t === only);
  console.log(`fuzz: seed ${runSeed} (replay the run with FUZZ_SEED=${runSeed}); ${targets.map((t) => `${t} ${counts[t]} inputs`).join(', ')}; at most ${minutes} min`);
  const deadline = Date.now() + minutes * 60_000;
  const work = mkdtempSync(join(tmpdir(), 'borgkeep-fuzz-'));
  const written = new Map<string, number>();
  // Inputs done per target: finished workers, plus the running workers' counters.
  const finished = new Map<TargetName, number>(targets.map((t) => [t, 0]));
  const running = new Set<{ target: TargetName; view: Int32Array }>();
  const started = Date.now();
  const ticker = setInterval(() => {
    const done = targets.map((t) => {
      let n = finished.get(t) ?? 0;
      for (const r of running) if (r.target === t) n += Atomics.load(r.view, 1);
      return `${t} ${n}/${counts[t]}`;
    });
    console.log(`fuzz: ${Math.round((Date.now() - started) / 1000)} s: ${done.join(', ')}`);
  }, 60_000);

  const writeFinding = (target: TargetName, index: number, seed: number, violations: Array<{ property: string; message: string }>, input: object, figures: Figures): void => {
    figures.findings++;
    const property = violations[0].property;
    figures.properties.set(property, (figures.properties.get(property) ?? 0) + 1);
    console.log(`fuzz: FINDING in ${target} input ${index}: ${property}: ${violations[0].message.split('\n')[0]}`);
    const k = `${target} ${property}`;
    if ((written.get(k) ?? 0) >= FILES_PER_PROPERTY) return;
    written.set(k, (written.get(k) ?? 0) + 1);
    mkdirSync(findingsDir, { recursive: true });
    const file = join(findingsDir, `${target}-${property}-${runSeed}-${index}.json`);
    writeFileSync(file, `${JSON.stringify({ target, runSeed, index, seed, violations, input }, null, 1)}\n`);
    const rel = file.slice(root.length + 1);
    console.log(`      written to ${rel}; replay: FUZZ_REPLAY=${rel} npm run fuzz  (or FUZZ_SEED=${runSeed} FUZZ_TARGET=${target} FUZZ_INDEX=${index} npm run fuzz)`);
  };

  /** Inputs start..start+count of a target in one worker, restarted after an input that hung or killed it. */
  const runShard = async (target: TargetName, start: number, count: number, figures: Figures): Promise<void> => {
    let next = start;
    const end = start + count;
    while (next < end && Date.now() < deadline) {
      const progress = new SharedArrayBuffer(8);
      const view = new Int32Array(progress);
      const shard = { target, view };
      running.add(shard);
      Atomics.store(view, 0, next);
      const data: WorkerData = { target, runSeed, start: next, count: end - next, deadline, corpusDir, workDir: join(work, `${target}-${next}`), heapLimitMb, progress };
      const worker = new Worker(new URL('./worker.mjs', import.meta.url), { workerData: data, resourceLimits: { maxOldGenerationSizeMb: 2048 } });
      const stuck = await new Promise<{ index: number; why: string } | null>((done) => {
        let last = -1;
        let still = 0;
        const watch = setInterval(() => {
          const at = Atomics.load(view, 1);
          still = at === last ? still + 1 : 0;
          last = at;
          if (still >= HANG_SECONDS) {
            clearInterval(watch);
            void worker.terminate();
            done({ index: Atomics.load(view, 0), why: `the input ran for more than ${HANG_SECONDS} s without returning (a synchronous hang)` });
          }
        }, 1000);
        worker.on('message', (m: WorkerMessage) => {
          if (m.type === 'finding') writeFinding(target, m.index, m.seed, m.violations, m.input, figures);
          else {
            figures.inputs += m.inputs;
            figures.maxHeapMb = Math.max(figures.maxHeapMb, m.maxHeapMb);
            figures.heapAfterGcMb = Math.max(figures.heapAfterGcMb, m.heapAfterGcMb);
            for (const [k, n] of Object.entries(m.outcomes)) figures.outcomes.set(k, (figures.outcomes.get(k) ?? 0) + n);
            next = end;
          }
        });
        worker.on('error', (e) => {
          clearInterval(watch);
          done({ index: Atomics.load(view, 0), why: `the worker died: ${e.message}` });
        });
        worker.on('exit', () => {
          clearInterval(watch);
          done(null);
        });
      });
      running.delete(shard);
      finished.set(target, (finished.get(target) ?? 0) + Atomics.load(view, 1));
      if (stuck) {
        figures.inputs += Atomics.load(view, 1);
        const t = openTarget(target, corpusDir, join(work, `${target}-stuck-${stuck.index}`));
        const seed = inputSeed(runSeed, target, stuck.index);
        // The input again, in this thread, only to keep it: it is not run.
        writeFinding(target, stuck.index, seed, [{ property: stuck.why.includes('died') ? 'crash' : 'hang', message: stuck.why }], t.describe(seed), figures);
        next = stuck.index + 1;
      }
    }
  };

  const runTarget = async (target: TargetName): Promise<Figures> => {
    const figures: Figures = { inputs: 0, ms: 0, findings: 0, maxHeapMb: 0, heapAfterGcMb: 0, properties: new Map(), outcomes: new Map() };
    const started = performance.now();
    // The reader waits on the disk most of the time: two workers share a core well.
    const shards = target === 'reader' ? int('FUZZ_READER_WORKERS', 2) || 1 : 1;
    const size = Math.ceil(counts[target] / shards);
    await Promise.all(Array.from({ length: shards }, (_, k) => runShard(target, k * size, Math.max(0, Math.min(size, counts[target] - k * size)), figures)));
    figures.ms = performance.now() - started;
    return figures;
  };

  const results = await Promise.all(targets.map(async (t) => [t, await runTarget(t)] as const));
  clearInterval(ticker);
  rmSync(work, { recursive: true, force: true });
  console.log('\nfuzz: figures');
  console.log('target   inputs      seconds   inputs/s   findings   max heap MB   heap after GC MB');
  let findings = 0;
  for (const [t, f] of results) {
    findings += f.findings;
    const short = f.inputs < counts[t] ? ` (bound ${counts[t]}: stopped by the time limit)` : '';
    console.log(
      `${t.padEnd(8)} ${String(f.inputs).padStart(9)} ${(f.ms / 1000).toFixed(1).padStart(10)} ${(f.inputs / (f.ms / 1000)).toFixed(0).padStart(10)} ${String(f.findings).padStart(10)} ${f.maxHeapMb.toFixed(0).padStart(13)} ${f.heapAfterGcMb.toFixed(0).padStart(18)}${short}`,
    );
    for (const [p, n] of f.properties) console.log(`         finding ${p}: ${n}`);
    const outcomes = [...f.outcomes].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${((100 * n) / Math.max(1, f.inputs)).toFixed(1)}%`);
    console.log(`         ended: ${outcomes.join(', ')}`);
  }
  console.log(`fuzz: seed ${runSeed}, ${findings} finding(s)`);
  return findings > 0 ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    console.error(`fuzz: ${(e as Error).message}`);
    process.exitCode = 2;
  },
);
