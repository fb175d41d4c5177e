import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { openTempStore, type TempStore } from '../../test/support/temp-store.js';
import { checkPullHostInput } from './host-input.js';
import { createPullService, retryDelayMs, type PullJobOutcome, type RunPullJob } from './pull-service.js';
import type { PullRunnerId } from '../store/pull-store.js';

let t: TempStore;
beforeEach(async () => {
  t = await openTempStore();
  t.clock.set('2026-12-06T10:00:00.000Z');
  await t.store.createRepository({ name: 'photos', quotaBytes: null });
});
afterEach(() => t.cleanup());

const me: PullRunnerId = { kind: 'serve', pid: 100, host: 'here' };
const addHost = (name: string, extra: Partial<Parameters<typeof checkPullHostInput>[0]> = {}) =>
  t.store.addPullHost(name, checkPullHostInput({ address: 'c.example.org', user: 'backup', repository: 'photos', paths: ['/etc'], ...extra }));

/** A runner whose jobs end when the test says so. */
function controlledRunner() {
  const calls: Array<{ host: string; jobId: number; archiveName: string; stop: AbortSignal; end: (o: PullJobOutcome) => void }> = [];
  const runJob: RunPullJob = async (host, job, recorder, { archiveName, stop }) => {
    await recorder.state(job.id, 'running');
    await recorder.progress(job.id, { bytes: 10, files: 1, path: '/etc/hosts' });
    await recorder.log(job.id, 'borg create is running');
    return new Promise<PullJobOutcome>((resolve) => {
      calls.push({ host: host.name, jobId: job.id, archiveName, stop, end: resolve });
      if (stop.aborted) resolve({ state: 'failed', reason: 'stopped' });
      stop.addEventListener('abort', () => resolve({ state: 'failed', reason: 'stopped' }));
    });
  };
  return { calls, runJob };
}

const until = async (check: () => boolean | Promise<boolean>) => {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('timed out');
};

describe('pull service', () => {
  it('starts queued jobs up to the concurrency limit with their archive names, and records how they end', async () => {
    for (const h of ['a', 'b', 'c']) {
      await addHost(h);
      await t.store.queuePullJob(h, { trigger: 'manual' });
    }
    const r = controlledRunner();
    const service = createPullService({ store: t.store, runJob: r.runJob, runner: me, isAlive: () => true, now: t.clock.now, progressEveryMs: 0 });
    expect((await service.startQueued()).map((j) => j.hostName)).toEqual(['a', 'b']);
    await until(() => r.calls.length === 2);
    expect(r.calls.map((c) => c.archiveName)).toEqual(['a-2026-12-06T10:00:00', 'b-2026-12-06T10:00:00']);
    expect(await service.startQueued()).toEqual([]); // the limit: 2
    expect(await t.store.getPullJob(1)).toMatchObject({ state: 'running', archiveName: 'a-2026-12-06T10:00:00', bytes: 10, files: 1 });

    r.calls[0]!.end({ state: 'done', reason: null });
    r.calls[1]!.end({ state: 'failed', reason: 'the client closed the connection' });
    await until(async () => (await t.store.getPullJob(2))!.state === 'failed');
    expect((await service.startQueued()).map((j) => j.hostName)).toEqual(['c']);
    expect(await t.store.getPullJob(1)).toMatchObject({ state: 'done', reason: null, endedAt: new Date('2026-12-06T10:00:00Z') });
    expect(await t.store.getPullJob(2)).toMatchObject({ state: 'failed', reason: 'the client closed the connection' });
    const log = (await t.store.readPullJobLog(2)).lines.map((l) => l.line);
    expect(log).toEqual(['job 2 of host b started (manual); archive b-2026-12-06T10:00:00', 'borg create is running', 'job 2 failed: the client closed the connection']);
    await until(() => r.calls.length === 3);
    await service.stop();
    expect(await t.store.getPullJob(3)).toMatchObject({ state: 'failed', reason: 'the server stopped during the job' });
  });

  it('retries a failed scheduled job as configured, later each time; never a manual one', async () => {
    await addHost('a', { retries: 2, schedule: '0 2 * * *' });
    const service = createPullService({ store: t.store, runJob: async () => ({ state: 'failed', reason: 'no route to host' }), runner: me, isAlive: () => true, now: t.clock.now });
    await t.store.queuePullJob('a', { trigger: 'schedule' });
    await service.startQueued();
    await service.idle();
    const retry = (await t.store.listPullJobs())[0]!;
    expect(retry).toMatchObject({ id: 2, trigger: 'schedule', state: 'queued', attempt: 1, notBefore: new Date('2026-12-06T10:01:00Z') });
    expect(await service.startQueued()).toEqual([]); // not before its time
    t.clock.advance(retryDelayMs(1));
    await service.startQueued();
    await service.idle();
    expect((await t.store.listPullJobs())[0]).toMatchObject({ id: 3, attempt: 2, notBefore: new Date('2026-12-06T10:06:00Z') });
    t.clock.advance(retryDelayMs(2));
    await service.startQueued();
    await service.idle();
    expect((await t.store.listPullJobs()).map((j) => [j.id, j.state, j.attempt])).toEqual([
      [3, 'failed', 2],
      [2, 'failed', 1],
      [1, 'failed', 0],
    ]);
    expect((await t.store.readPullJobLog(1)).lines.at(-1)!.line).toBe('retry 1 of 2 queued as job 2, from 2026-12-06T10:01:00.000Z');

    await t.store.queuePullJob('a', { trigger: 'manual' });
    await service.startQueued();
    await service.idle();
    expect((await t.store.listPullJobs())[0]).toMatchObject({ id: 4, trigger: 'manual', state: 'failed' });
  });

  it('fails a job that runs past its time-out, and one whose runner throws', async () => {
    await addHost('a', { timeoutSeconds: 60 });
    const r = controlledRunner();
    const service = createPullService({ store: t.store, runJob: r.runJob, runner: me, isAlive: () => true, now: t.clock.now });
    await t.store.queuePullJob('a', { trigger: 'manual' });
    const realSetTimeout = globalThis.setTimeout;
    // The time-out timer fires at once: the test does not wait a minute.
    globalThis.setTimeout = ((f: () => void, _ms?: number) => realSetTimeout(f, 0)) as typeof setTimeout;
    try {
      await service.startQueued();
      await service.idle();
    } finally {
      globalThis.setTimeout = realSetTimeout;
    }
    expect(await t.store.getPullJob(1)).toMatchObject({ state: 'failed', reason: 'the job ran longer than its time-out of 1 min' });

    const throwing = createPullService({ store: t.store, runJob: async () => { throw new Error('borg is not installed on the client'); }, runner: me, isAlive: () => true, now: t.clock.now });
    await t.store.queuePullJob('a', { trigger: 'manual' });
    await throwing.startQueued();
    await throwing.idle();
    expect(await t.store.getPullJob(2)).toMatchObject({ state: 'failed', reason: 'borg is not installed on the client' });
  });

  it('at start-up fails the jobs a process that died left connecting or running', async () => {
    await addHost('a');
    await addHost('b');
    await addHost('c');
    for (const h of ['a', 'b', 'c']) await t.store.queuePullJob(h, { trigger: 'manual' });
    await t.store.claimNextPullJob({ kind: 'serve', pid: 7, host: 'here' }); // died
    await t.store.claimNextPullJob({ kind: 'cli', pid: 8, host: 'here' }); // alive
    await t.store.claimNextPullJob(me); // this pid, from before a restart (a container's pid 1)
    await t.store.setPullJobState(1, 'running');
    const service = createPullService({ store: t.store, runJob: controlledRunner().runJob, runner: me, isAlive: (r) => r.pid === 8, now: t.clock.now });
    expect(await service.recoverOrphans()).toEqual([1, 3]);
    expect(await t.store.getPullJob(1)).toMatchObject({ state: 'failed', reason: 'the server stopped during the job' });
    expect((await t.store.getPullJob(2))!.state).toBe('connecting');
  });

  it('runs one queued job in this process, waiting while another job of its host runs', async () => {
    await addHost('a');
    const r = controlledRunner();
    const service = createPullService({ store: t.store, runJob: r.runJob, runner: me, isAlive: () => true, now: t.clock.now });
    await t.store.queuePullJob('a', { trigger: 'manual' });
    await service.startQueued();
    const second = (await t.store.queuePullJob('a', { trigger: 'manual' }))!.job;
    const cli = createPullService({ store: t.store, runJob: async () => ({ state: 'done', reason: null }), runner: { kind: 'cli', pid: 200, host: 'here' }, isAlive: () => true, now: t.clock.now });
    const ran = cli.runQueuedJob(second.id, { everyMs: 10 });
    await until(() => r.calls.length === 1);
    r.calls[0]!.end({ state: 'done', reason: null });
    expect(await ran).toMatchObject({ id: second.id, state: 'done', archiveName: 'a-2026-12-06T10:00:00' });
  });

  it("queues a scheduled host's job when its time comes, once, and not while one is queued or running", async () => {
    await addHost('a', { schedule: '0 2 * * *' });
    await addHost('m'); // manual only
    const service = createPullService({ store: t.store, runJob: controlledRunner().runJob, runner: me, isAlive: () => true, now: t.clock.now });
    expect(await service.queueDue()).toBe('nothing due');
    t.clock.set('2026-12-07T02:00:00.000Z');
    expect(await service.queueDue()).toBe('queued a (job 1)');
    expect(await service.queueDue()).toBe('nothing due');
    // The next day's run while yesterday's job still waits: not doubled.
    t.clock.set('2026-12-08T02:00:05.000Z');
    expect(await service.queueDue()).toBe('nothing due');
    expect((await t.store.listPullJobs()).map((j) => [j.hostName, j.trigger])).toEqual([['a', 'schedule']]);
    await service.startQueued();
    t.clock.set('2026-12-09T02:00:00.000Z');
    expect(await service.queueDue()).toBe('nothing due'); // still running
    await service.stop();
    t.clock.set('2026-12-10T02:00:00.000Z');
    expect(await service.queueDue()).toBe('queued a (job 2)');
  });
});
