import { configDefaults, defineConfig } from 'vitest/config';

import LongestFirstSequencer from './test/sequencer.js';

/** The files that run on PostgreSQL too: the store's tests (they open their store through openTempStore). */
const POSTGRES_FILES = ['src/store/**/*.test.ts'];
/** Of those, the ones about SQLite's file and driver; and the one about PostgreSQL's opening. */
const SQLITE_ONLY = ['src/store/database.test.ts', 'src/store/sqlite-driver.test.ts'];
const POSTGRES_ONLY = 'src/store/postgres-*.test.ts';

export default defineConfig({
  test: {
    // Every file runs on the embedded SQLite store; the store's own tests run a second time on a
    // real PostgreSQL server (issue 19: test/support/temp-store.ts reads BORGKEEP_TEST_DATABASE,
    // test/global-setup.ts starts the server).
    projects: [
      // web/src: console units that need React's types, checked by web/tsconfig.json (DOM), not the server's.
      { extends: true, test: { name: 'sqlite', include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'web/src/**/*.test.ts'], exclude: [...configDefaults.exclude, POSTGRES_ONLY] } },
      { extends: true, test: { name: 'postgres', include: POSTGRES_FILES, exclude: [...configDefaults.exclude, ...SQLITE_ONLY], env: { BORGKEEP_TEST_DATABASE: 'postgres' } } },
    ],
    // Integration files spawn real borg clients and mostly wait on them (rate-limited uploads,
    // sessions ending, a browser): with two workers the load stayed near 3 on two cores, so a
    // third file runs beside them.
    pool: 'forks',
    maxWorkers: 3,
    fileParallelism: true,
    // Longest file first, from the committed test/durations.json: a clean clone has no vitest
    // cache, and a 6-minute file started last would run alone at the end.
    sequence: { sequencer: LongestFirstSequencer },
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // expect.poll waits for real processes (a browser, a webhook, borg): 1 s, vitest's default,
    // is too short on a loaded machine; a poll that can never succeed still fails, only later.
    expect: { poll: { timeout: 15_000, interval: 100 } },
    globalSetup: ['test/global-setup.ts'],
  },
});
