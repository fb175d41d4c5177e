import { expect, test } from 'vitest';

import { queuedJobWait, type PullJob } from './pull-api';

const job = (id: number, host: string, repository: string, extra: Partial<PullJob> = {}): PullJob => ({
  id, host, repository, trigger: 'schedule', state: 'queued', archive: null, queuedAt: '2026-12-06T10:00:00Z', startedAt: null, endedAt: null,
  bytes: 0, files: 0, currentPath: null, reason: null, attempt: 0, notBefore: null, ...extra,
});
const now = new Date('2026-12-06T12:00:00Z').getTime();

test('a queued job says why it waits: its retry or back-off time, its host, its repository, its turn', () => {
  const running = [job(1, 'web1', 'main', { state: 'running' }), job(2, 'db1', 'db', { state: 'connecting' })];
  expect(queuedJobWait(job(9, 'web2', 'photos', { attempt: 2, notBefore: '2026-12-06T12:05:00Z' }), running, now)).toEqual({ words: 'retry 2 after a failed run; starts', until: '2026-12-06T12:05:00Z' });
  expect(queuedJobWait(job(9, 'web2', 'photos', { notBefore: '2026-12-06T14:00:00Z' }), running, now).words).toBe('the host failed its last jobs, so its schedule backs off; starts');
  expect(queuedJobWait(job(9, 'web1', 'main', { notBefore: '2026-12-06T11:00:00Z' }), running, now).words).toBe('waits for job 1 of the same host to end'); // its time has come
  expect(queuedJobWait(job(9, 'web3', 'main'), running, now).words).toBe('waits for job 1 of web1, which writes to main (one job per repository at a time)');
  expect(queuedJobWait(job(9, 'web3', 'photos'), running, now)).toEqual({ words: 'waits for a running job to end (the server runs a few at once)', until: null });
  expect(queuedJobWait(job(9, 'web3', 'photos'), [], now).words).toBe('starts in a moment');
});
