// The dashboard's order by state (web/src/parts/repository-order.ts), as a unit: failing and over
// quota first, then late, near quota, waiting for a first backup, and on time; by name within one.
import { describe, expect, it } from 'vitest';
import { sortRepositories, stateRank, type RepositoryStateInput } from '../../web/src/parts/repository-order.js';

const base: RepositoryStateInput = { name: 'x', quotaBytes: null, sizeBytes: 1000, initialized: true, lastBackupAt: '2026-12-01T00:00:00Z', backup: 'ok', lastSessionResult: 'ok', lastAudit: null };
const repo = (name: string, more: Partial<RepositoryStateInput> = {}): RepositoryStateInput => ({ ...base, name, ...more });

describe('the dashboard order by state', () => {
  const list = [
    repo('alpha'),
    repo('Bravo', { backup: 'late' }),
    repo('charlie', { initialized: false, lastBackupAt: null, backup: 'never', lastSessionResult: null, sizeBytes: null }),
    repo('delta', { quotaBytes: 1000, sizeBytes: 900 }),
    repo('echo', { quotaBytes: 1000, sizeBytes: 1200 }),
    repo('foxtrot', { lastSessionResult: 'error' }),
    repo('golf', { backup: 'late', lastSessionResult: 'denied' }),
    repo('hotel', { lastAudit: { verdict: 'suspicious' } }),
    repo('india', { backup: 'never', lastBackupAt: null }),
    repo('able', { backup: 'late' }),
  ];

  it('puts failing, refused, over quota and suspicious first, then late, near quota, waiting, on time', () => {
    expect(sortRepositories(list, 'state').map((r) => r.name)).toEqual(['echo', 'foxtrot', 'golf', 'hotel', 'able', 'Bravo', 'delta', 'charlie', 'india', 'alpha']);
    expect(['echo', 'Bravo', 'delta', 'charlie', 'alpha'].map((n) => stateRank(list.find((r) => r.name === n)!))).toEqual([0, 1, 2, 3, 4]);
  });

  it('sorts by name regardless of case, and never changes the list it is given', () => {
    const before = list.map((r) => r.name);
    expect(sortRepositories(list, 'name').map((r) => r.name)).toEqual(['able', 'alpha', 'Bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india']);
    expect(list.map((r) => r.name)).toEqual(before);
  });
});
