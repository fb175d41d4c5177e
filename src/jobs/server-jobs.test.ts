import { expect, test } from 'vitest';

import { dataDirPaths } from '../store/data-dir.js';
import type { Repository } from '../store/types.js';
import { localRepositories } from '../store/placement.js';
import { nodeJobs } from './server-jobs.js';

const repo = (id: number, name: string): Repository => ({ id, name, dirName: `dir${id}`, quotaBytes: null, expectedIntervalSeconds: 93_600, createdAt: new Date(0) });

const store = {
  paths: dataDirPaths('/nonexistent'),
  listRepositoryRecords: async () => [repo(1, 'here'), repo(2, 'on-n1'), repo(3, 'on-n2')],
  addRepositoryStat: async () => undefined,
  repositoryNodes: async () => new Map([[2, 'n1'], [3, 'n2']]),
};

test("a gateway's repository jobs cover the repositories on no node; a storage node's its own, under names of its own", async () => {
  expect((await localRepositories(store)).map((r) => r.name)).toEqual(['here']);
  expect((await localRepositories(store, 'n1')).map((r) => r.name)).toEqual(['on-n1']);
  const audited: string[] = [];
  const verified: string[] = [];
  const jobs = nodeJobs({
    store,
    selfNode: 'n1',
    directorySize: async () => null,
    audit: async (name) => {
      audited.push(name);
      return 'clean';
    },
    verify: async (name) => {
      verified.push(name);
      return 'ok';
    },
  });
  expect(jobs.map((j) => j.name)).toEqual(['statistics@n1', 'audits@n1', 'verify@n1']);
  for (const job of jobs) await job.run();
  expect(audited).toEqual(['on-n1']);
  expect(verified).toEqual(['on-n1']);
});
