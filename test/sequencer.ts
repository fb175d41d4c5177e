// The order vitest starts test files in: longest first, from the durations committed in
// test/durations.json (scripts/test-durations.mjs writes them from a full run). One file runs
// in one worker, so a long file started late runs alone at the end while the other workers idle;
// longest-first packs the workers. Vitest's own order needs its results cache, which a clean CI
// clone does not have (it then orders by file size, which says little about run time).
// It must never drop or add a file: it only orders the ones vitest found.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/** A file missing from test/durations.json (new, or renamed): new test files are kept under
 *  about 60 s, so it is ordered as a 60-s file, ahead of the many short ones. */
export const UNKNOWN_FILE_SECONDS = 60;

export function loadDurations(root: string): Record<string, number> {
  const file = join(root, 'test', 'durations.json');
  if (!existsSync(file)) return {};
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, number>;
  } catch {
    // A broken durations file costs only speed: fall back to the file-size order.
    return {};
  }
}

/** Longest first; ties (and unknown files among themselves) by file size, larger first, then by name so the order is stable. */
export function orderLongestFirst<T>(items: readonly T[], key: (item: T) => string, durations: Record<string, number>, size: (item: T) => number): T[] {
  const seconds = (item: T): number => durations[key(item)] ?? UNKNOWN_FILE_SECONDS;
  return [...items].sort((a, b) => seconds(b) - seconds(a) || size(b) - size(a) || (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

export default class LongestFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const root = this.ctx.config.root;
    const durations = loadDurations(root);
    const key = (spec: TestSpecification): string => relative(root, spec.moduleId).split('\\').join('/');
    const size = (spec: TestSpecification): number => {
      try {
        return statSync(spec.moduleId).size;
      } catch {
        return 0;
      }
    };
    return orderLongestFirst(files, key, durations, size);
  }
}
