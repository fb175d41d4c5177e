import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { openTempStore, type TempStore } from '../../test/support/temp-store.js';
import { checkPullHostInput } from './host-input.js';
import { backoffMs, createPullService, retryDelayMs, scheduleJitterMs, type PullJobOutcome, type RunPullJob } from './pull-service.js';
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
    const service = createPullService({ store: t.store, runJob: r.runJob, runner: me, isAlive: () => true, now: t.clock.now, progressEveryMs: 0, perRepository: 3 });
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
    const service = createPullService({ store: t.store, runJob: controlledRunner().runJob, runner: me, isAlive: () => true, now: t.clock.now, jitterMaxMs: 0 });
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

  it('starts at most one job into a repository at once and no more jobs than the limit in the store, whichever process claims', async () => {
    await t.store.createRepository({ name: 'music', quotaBytes: null });
    await addHost('a');
    await addHost('b');
    await addHost('c', { repository: 'music' });
    await addHost('d', { repository: 'music' });
    for (const h of ['a', 'b', 'c', 'd']) await t.store.queuePullJob(h, { trigger: 'manual' });
    const r = controlledRunner();
    const service = createPullService({ store: t.store, runJob: r.runJob, runner: me, isAlive: () => true, now: t.clock.now, concurrency: 3 });
    // b waits for a (the same repository), d for c: two run although three may.
    expect((await service.startQueued()).map((j) => j.hostName)).toEqual(['a', 'c']);
    await until(() => r.calls.length === 2);
    // Another process (a `pull run` of b) does not start b into photos beside a either.
    const cli = createPullService({ store: t.store, runJob: async () => ({ state: 'done', reason: null }), runner: { kind: 'cli', pid: 200, host: 'here' }, isAlive: () => true, now: t.clock.now, concurrency: 2 });
    expect(await cli.startQueued()).toEqual([]); // the store's total (2 active) is cli's limit too
    r.calls[0]!.end({ state: 'done', reason: null });
    await until(async () => (await t.store.getPullJob(1))!.state === 'done');
    expect((await service.startQueued()).map((j) => j.hostName)).toEqual(['b']);
    await service.stop();
  });

  it("spreads hosts on one schedule over a few minutes after its time, each host the same delay every time", async () => {
    const due = new Date('2026-12-07T02:00:00Z');
    const delays = Array.from({ length: 50 }, (_, i) => scheduleJitterMs(`web${i}`, '0 2 * * *', due, 300_000));
    expect(Math.max(...delays)).toBeLessThan(300_000);
    expect(new Set(delays.map((d) => Math.floor(d / 30_000))).size).toBeGreaterThan(5); // spread, not bunched
    expect(scheduleJitterMs('web1', '0 2 * * *', due, 300_000)).toBe(delays[1]);
    // Never more than a tenth of the interval: a run every 5 s moves by less than 0.5 s.
    expect(scheduleJitterMs('web1', '*/5 * * * * *', due, 300_000)).toBeLessThan(500);
    expect(scheduleJitterMs('web1', '0 2 * * *', due, 0)).toBe(0);

    await addHost('web1', { schedule: '0 2 * * *' });
    const service = createPullService({ store: t.store, runJob: controlledRunner().runJob, runner: me, isAlive: () => true, now: t.clock.now });
    t.clock.set(new Date(due.getTime() + delays[1]! - 1000).toISOString());
    expect(await service.queueDue()).toBe('nothing due');
    t.clock.set(new Date(due.getTime() + delays[1]!).toISOString());
    expect(await service.queueDue()).toBe('queued web1 (job 1)');
  });

  it('holds back the scheduled runs of a host that keeps failing, longer each time; a run by hand or a success ends it', async () => {
    expect([0, 1, 2, 3, 4, 5, 9, 20].map(backoffMs)).toEqual([0, 0, 0, 3_600_000, 7_200_000, 14_400_000, 86_400_000, 86_400_000]);
    await addHost('a', { schedule: '*/30 * * * *', retries: 0 });
    let outcome: PullJobOutcome = { state: 'failed', reason: 'no route to host' };
    const service = createPullService({ store: t.store, runJob: async () => outcome, runner: me, isAlive: () => true, now: t.clock.now, jitterMaxMs: 0 });
    const at = async (iso: string) => {
      t.clock.set(iso);
      const said = await service.queueDue();
      await service.startQueued();
      await service.idle();
      return said;
    };
    expect(await at('2026-12-06T11:00:00.000Z')).toBe('queued a (job 1)');
    expect(await at('2026-12-06T11:30:00.000Z')).toBe('queued a (job 2)');
    expect(await at('2026-12-06T12:00:00.000Z')).toBe('queued a (job 3)');
    // Three failures in a row: the 12:30 run is queued but waits an hour from the last failure.
    expect(await at('2026-12-06T12:30:00.000Z')).toBe('queued a (job 4)');
    expect(await t.store.getPullJob(4)).toMatchObject({ state: 'queued', notBefore: new Date('2026-12-06T13:00:00Z') });
    expect((await t.store.readPullJobLog(4)).lines.map((l) => l.line)).toEqual(['a failed its last 3 jobs in a row: this scheduled run waits until 2026-12-06T13:00:00.000Z']);
    expect(await at('2026-12-06T13:00:00.000Z')).toBe('nothing due'); // the waiting run starts, and fails
    expect((await t.store.getPullJob(4))!.state).toBe('failed');
    // Four in a row: two hours from 13:00.
    expect(await at('2026-12-06T13:30:00.000Z')).toBe('queued a (job 5)');
    expect(await t.store.getPullJob(5)).toMatchObject({ state: 'queued', notBefore: new Date('2026-12-06T15:00:00Z') });
    expect(await at('2026-12-06T14:00:00.000Z')).toBe('nothing due');
    expect((await t.store.getPullJob(5))!.state).toBe('queued');
    // "Run now" does not wait for the back-off: the waiting run starts at once.
    expect(await t.store.queuePullJob('a', { trigger: 'manual' })).toMatchObject({ existing: true, job: { id: 5, notBefore: null } });
    outcome = { state: 'done', reason: null };
    expect((await service.startQueued()).map((j) => j.id)).toEqual([5]);
    await service.idle();
    expect(await at('2026-12-06T14:30:00.000Z')).toBe('queued a (job 6)');
    expect(await t.store.getPullJob(6)).toMatchObject({ notBefore: null });
  });
});
