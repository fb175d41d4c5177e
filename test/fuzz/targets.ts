// The two fuzz targets behind one shape, so the runner, its workers and a replay treat them alike.

import { cpSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

import {
  createGuardHarness,
  generateGuardInput,
  guardInputFromJson,
  guardInputToJson,
  guardRepoDirName,
  loadGuardCorpus,
  runGuardInput,
  type Violation,
} from './guard-target.js';
import { createObjcheckHarness, generateObjcheckInput, objcheckInputFromJson, objcheckInputToJson, runObjcheckInput } from './objcheck-target.js';
import { createReaderHarness, generateReaderInput, loadReaderCorpus, readerInputFromJson, readerInputToJson, runReaderInput } from './reader-target.js';

export const TARGETS = ['guard', 'reader', 'objcheck'] as const;
export type TargetName = (typeof TARGETS)[number];

export interface Target {
  /** Generates input `seed` and runs it; `json` is what a finding file keeps. */
  run(seed: number): Promise<{ violations: Violation[]; outcome: string; json: () => object }>;
  /** The JSON of input `seed` without running it (for an input that hung or killed its worker). */
  describe(seed: number): object;
  /** Runs an input read back from a finding file. */
  replay(json: Record<string, unknown>): Promise<Violation[]>;
}

/** Per-input time limits (async hangs; a watchdog in the runner catches synchronous ones). */
export const TIME_LIMIT_MS: Record<TargetName, number> = { guard: 5_000, reader: 10_000, objcheck: 5_000 };

export function openTarget(name: TargetName, corpusDir: string, workDir: string): Target {
  if (name === 'objcheck') {
    // Needs no corpus: its inputs are made from the seed alone.
    const harness = createObjcheckHarness();
    return {
      async run(seed) {
        const input = generateObjcheckInput(seed);
        return { ...(await runObjcheckInput(input, await harness)), json: () => objcheckInputToJson(input) };
      },
      describe: (seed) => objcheckInputToJson(generateObjcheckInput(seed)),
      replay: async (json) => (await runObjcheckInput(objcheckInputFromJson(json), await harness)).violations,
    };
  }
  if (name === 'guard') {
    const corpus = loadGuardCorpus(corpusDir);
    const reposDir = join(workDir, 'repos');
    mkdirSync(reposDir, { recursive: true });
    cpSync(corpus.repoDir, join(reposDir, guardRepoDirName), { recursive: true });
    const h = createGuardHarness(reposDir, corpus);
    return {
      async run(seed) {
        const input = generateGuardInput(seed, corpus);
        const { violations, outcome } = await runGuardInput(input, h, TIME_LIMIT_MS.guard);
        return { violations, outcome: `session ${outcome?.result ?? 'none'}`, json: () => guardInputToJson(input) };
      },
      describe: (seed) => guardInputToJson(generateGuardInput(seed, corpus)),
      replay: async (json) => (await runGuardInput(guardInputFromJson(json), h, TIME_LIMIT_MS.guard)).violations,
    };
  }
  const corpus = loadReaderCorpus(corpusDir);
  const h = createReaderHarness(workDir, corpus);
  return {
    async run(seed) {
      const input = generateReaderInput(seed, corpus);
      return { ...(await runReaderInput(input, h, seed, TIME_LIMIT_MS.reader)), json: () => readerInputToJson(input, seed) };
    },
    describe: (seed) => readerInputToJson(generateReaderInput(seed, corpus), seed),
    replay: async (json) => (await runReaderInput(readerInputFromJson(json), h, json.cacheSeed as number, TIME_LIMIT_MS.reader)).violations,
  };
}
