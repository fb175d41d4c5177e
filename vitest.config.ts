import { defineConfig } from 'vitest/config';

import LongestFirstSequencer from './test/sequencer.js';

export default defineConfig({
  test: {
    // web/src: console units that need React's types, checked by web/tsconfig.json (DOM), not the server's.
    include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'web/src/**/*.test.ts'],
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
