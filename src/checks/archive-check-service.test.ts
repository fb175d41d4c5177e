import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, expect, test } from 'vitest';

import { dataDirPaths } from '../store/data-dir.js';
import type { Repository } from '../store/types.js';
import { createArchiveCheckService } from './archive-check-service.js';

let root: string | null = null;
afterEach(() => {
  if (root) rmSync(root, { recursive: true, force: true });
  root = null;
});

test('the pass over every repository gives the event loop a turn per repository (1,000 repositories were one 115 ms task that held the API)', async () => {
  root = mkdtempSync(join(tmpdir(), 'bk-checks-'));
  const repositories: Repository[] = Array.from({ length: 200 }, (_, i) => ({ id: i + 1, name: `r${i}`, dirName: `d${i}`, quotaBytes: null, expectedIntervalSeconds: 93_600, createdAt: new Date(0) }));
  const service = createArchiveCheckService({
    store: {
      paths: dataDirPaths(root),
      listRepositoryRecords: async () => repositories,
      getCheckRules: async () => null,
      listArchiveChecks: async () => [],
      recordArchiveCheck: async () => undefined as never,
      markArchiveChecksGone: async () => undefined as never,
    },
    repositoryKey: () => null,
  });
  // Turns of the event loop while the pass runs (none of these repositories is initialised, so
  // nothing in the pass waits for real).
  let turns = 0;
  let done = false;
  const count = (): void => {
    if (done) return;
    turns++;
    setImmediate(count);
  };
  setImmediate(count);
  expect(await service.checkAll()).toBe('no new archives');
  done = true;
  expect(turns).toBeGreaterThanOrEqual(repositories.length);
});
