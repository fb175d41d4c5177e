import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { createPullJobRecorder, PULL_LOG_LINES, type PullRunnerId } from './pull-store.js';
import { checkPullHostInput } from '../pull/host-input.js';
import { openTempStore, type TempStore } from '../../test/support/temp-store.js';

let t: TempStore;
beforeEach(async () => {
  t = await openTempStore();
  await t.store.createRepository({ name: 'photos', quotaBytes: null });
});
afterEach(() => t.cleanup());

const code = (promise: Promise<unknown>) =>
  promise.then(
    () => 'resolved',
    (e: { code?: string; message: string }) => `${e.code}: ${e.message}`,
  );
const settings = (extra: Partial<Parameters<typeof checkPullHostInput>[0]> = {}) =>
  checkPullHostInput({ address: 'client.example.org:2222', user: 'backup', repository: 'photos', paths: ['/etc', '/home'], ...extra });
const serve: PullRunnerId = { kind: 'serve', pid: 4242, host: 'here' };

describe('pull hosts', () => {
  it('keeps every field of a host, by name, and refuses a taken name, a bad name or an unknown repository', async () => {
    const host = await t.store.addPullHost('web1', settings({ excludes: ['*.tmp'], schedule: '0 2 * * *', compression: 'zstd,3', archiveTemplate: 'web-{now}', timeoutSeconds: 3600, retries: 1, hostKeyFingerprint: `SHA256:${'a'.repeat(43)}` }));
    expect(host).toEqual({
      id: 1,
      name: 'web1',
      address: 'client.example.org',
      port: 2222,
      user: 'backup',
      repositoryId: 1,
      paths: ['/etc', '/home'],
      excludes: ['*.tmp'],
      compression: 'zstd,3',
      archiveTemplate: 'web-{now}',
      schedule: '0 2 * * *',
      timeoutSeconds: 3600,
      retries: 1,
      sendChunkIndex: true,
      keepFilesCache: false,
      hostKeyFingerprint: `SHA256:${'a'.repeat(43)}`,
      createdAt: new Date('2025-01-01T00:00:00Z'),
    });
    expect(await t.store.getPullHost('web1')).toEqual(host);
    expect(await code(t.store.addPullHost('web1', settings()))).toBe("BK_ERR_CONFLICT: a host named 'web1' already exists");
    expect(await code(t.store.addPullHost('-x', settings()))).toBe("BK_ERR_INVALID_INPUT: a host name cannot start with '.' or '-' ('-x')");
    expect(await code(t.store.addPullHost('web2', settings({ repository: 'nope' })))).toBe("BK_ERR_NOT_FOUND: there is no repository named 'nope'");
    expect(await code(t.store.getPullHost('nope'))).toBe("BK_ERR_NOT_FOUND: there is no host named 'nope' ('borgkeep host list' shows them)");
    expect((await t.store.listPullHosts()).map((h) => h.name)).toEqual(['web1']);
  });

  it('keeps the key a host offered for the admin to compare, and pins a host key (forgetting the offered one)', async () => {
    const host = await t.store.addPullHost('web1', settings());
    expect((await t.store.getPullHost('web1')).hostKeyFingerprint).toBeNull();
    expect(await t.store.offeredPullHostKey('web1')).toBeNull();
    const fp = `SHA256:${'B'.repeat(43)}`;
    t.clock.advance(5000);
    await t.store.notePullHostKeyOffered(host.id, fp);
    expect(await t.store.offeredPullHostKey('web1')).toEqual({ fingerprint: fp, at: new Date('2025-01-01T00:00:05Z') });
    expect((await t.store.getPullHost('web1')).hostKeyFingerprint).toBeNull(); // never trusted by itself
    expect((await t.store.pinPullHostKey('web1', fp)).hostKeyFingerprint).toBe(fp);
    expect((await t.store.getPullHost('web1')).hostKeyFingerprint).toBe(fp);
    expect(await t.store.offeredPullHostKey('web1')).toBeNull();
  });

  it('refuses to remove a host while a job runs; afterwards its queued jobs fail and its history stays', async () => {
    await t.store.addPullHost('web1', settings());
    const running = (await t.store.queuePullJob('web1', { trigger: 'manual' }))!.job;
    await t.store.claimNextPullJob(serve);
    const queued = (await t.store.queuePullJob('web1', { trigger: 'manual' }))!.job;
    expect(await code(t.store.removePullHost('web1'))).toBe(`BK_ERR_CONFLICT: host 'web1' has job ${running.id} running; remove the host when it has ended`);
    await t.store.setPullJobState(running.id, 'done');
    expect((await t.store.removePullHost('web1')).cancelled).toBe(1);
    expect(await t.store.listPullHosts()).toEqual([]);
    expect((await t.store.listPullJobs()).map((j) => [j.id, j.hostName, j.state, j.reason])).toEqual([
      [queued.id, 'web1', 'failed', 'the host was removed before the job started'],
      [running.id, 'web1', 'done', null],
    ]);
    // A new host of the same name starts with its own (empty) history.
    await t.store.addPullHost('web1', settings());
    expect(await t.store.listPullJobs({ hostName: 'web1' })).toEqual([]);
  });
});

describe('pull jobs', () => {
  beforeEach(async () => {
    await t.store.addPullHost('web1', settings());
    await t.store.addPullHost('web2', settings());
  });

  it('queues manual jobs (one queued at a time) and scheduled jobs (not while one is queued or running)', async () => {
    const a = await t.store.queuePullJob('web1', { trigger: 'manual' });
    expect(a).toMatchObject({ existing: false, job: { hostName: 'web1', trigger: 'manual', state: 'queued', archiveName: null, queuedAt: new Date('2025-01-01T00:00:00Z'), attempt: 0, bytes: 0, files: 0 } });
    expect(await t.store.queuePullJob('web1', { trigger: 'manual' })).toEqual({ job: a!.job, existing: true });
    expect(await t.store.queuePullJob('web1', { trigger: 'schedule' })).toBeNull();
    await t.store.claimNextPullJob(serve);
    expect(await t.store.queuePullJob('web1', { trigger: 'schedule' })).toBeNull();
    // A person may queue the next one while one runs.
    expect((await t.store.queuePullJob('web1', { trigger: 'manual' }))!.existing).toBe(false);
    expect(await code(t.store.queuePullJob('nope', { trigger: 'manual' }))).toMatch(/^BK_ERR_NOT_FOUND: there is no host named 'nope'/);
  });

  it('claims the oldest startable job once, never two of one host at once, not before its retry time', async () => {
    const j1 = (await t.store.queuePullJob('web1', { trigger: 'manual' }))!.job;
    await t.store.claimNextPullJob(serve); // j1 runs
    const j2 = (await t.store.queuePullJob('web1', { trigger: 'manual' }))!.job;
    const j3 = (await t.store.queuePullJob('web2', { trigger: 'schedule', notBefore: new Date('2025-01-01T00:01:00Z') }))!.job;
    expect(await t.store.claimNextPullJob(serve)).toBeNull(); // j2 waits for j1; j3 for its time
    t.clock.advance(60_000);
    const c = await t.store.claimNextPullJob(serve);
    expect(c).toMatchObject({ id: j3.id, state: 'connecting', startedAt: new Date('2025-01-01T00:01:00Z') });
    await t.store.setPullJobState(j1.id, 'failed', { reason: 'no route' });
    expect((await t.store.claimNextPullJob(serve))?.id).toBe(j2.id);
    expect(await t.store.claimNextPullJob(serve)).toBeNull();
  });

  it('two processes claiming at once never get the same job', async () => {
    for (let i = 0; i < 6; i++) {
      await t.store.addPullHost(`h${i}`, settings());
      await t.store.queuePullJob(`h${i}`, { trigger: 'manual' });
    }
    const other = await t.openAnother();
    try {
      const claims = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? other : t.store).claimNextPullJob({ ...serve, pid: i })));
      const ids = claims.filter((c) => c !== null).map((c) => c!.id);
      expect(ids).toHaveLength(6);
      expect(new Set(ids).size).toBe(6);
    } finally {
      await other.close();
    }
  });

  it('moves a job forward with its archive name, progress, end and reason; an ended job stays ended', async () => {
    const j = (await t.store.queuePullJob('web1', { trigger: 'manual' }))!.job;
    await t.store.claimNextPullJob(serve);
    t.clock.advance(1000);
    expect(await t.store.setPullJobState(j.id, 'running', { archiveName: 'web1-2025-01-01T00:00:00' })).toBe(true);
    await t.store.setPullJobProgress(j.id, { bytes: 5000, files: 7, path: '/etc/passwd' });
    expect(await t.store.getPullJob(j.id)).toMatchObject({ state: 'running', archiveName: 'web1-2025-01-01T00:00:00', bytes: 5000, files: 7, currentPath: '/etc/passwd', startedAt: new Date('2025-01-01T00:00:00Z') });
    t.clock.advance(1000);
    await t.store.setPullJobState(j.id, 'failed', { reason: 'the client closed the connection' });
    expect(await t.store.setPullJobState(j.id, 'done')).toBe(false);
    await t.store.setPullJobProgress(j.id, { bytes: 9, files: 9, path: null });
    expect(await t.store.getPullJob(j.id)).toMatchObject({ state: 'failed', reason: 'the client closed the connection', endedAt: new Date('2025-01-01T00:00:02Z'), bytes: 5000, currentPath: null });
  });

  it("names each host whose newest finished job failed, with whether it was hostile; a later success clears it", async () => {
    const finish = async (host: string, state: 'done' | 'failed', fields: { reason?: string; hostile?: boolean } = {}) => {
      const j = (await t.store.queuePullJob(host, { trigger: 'manual' }))!.job;
      await t.store.claimNextPullJob(serve, { jobId: j.id });
      await t.store.setPullJobState(j.id, state, fields);
      return j.id;
    };
    expect(await t.store.failedPullHosts()).toEqual([]);
    const hostile = await finish('web1', 'failed', { reason: 'the host key of web1 has changed', hostile: true });
    await finish('web2', 'failed', { reason: 'could not connect' });
    const failed = await t.store.failedPullHosts();
    expect(failed.map(({ job, repositoryId }) => [job.id, job.hostName, job.hostile, repositoryId])).toEqual([
      [hostile, 'web1', true, 1],
      [hostile + 1, 'web2', false, 1],
    ]);
    await finish('web2', 'done');
    expect((await t.store.failedPullHosts()).map(({ job }) => job.hostName)).toEqual(['web1']);
    // A job still running does not hide the failure before it.
    const running = (await t.store.queuePullJob('web1', { trigger: 'manual' }))!.job;
    await t.store.claimNextPullJob(serve, { jobId: running.id });
    expect((await t.store.failedPullHosts()).map(({ job }) => job.id)).toEqual([hostile]);
  });

  it('lists jobs newest first, by host', async () => {
    const a = (await t.store.queuePullJob('web1', { trigger: 'manual' }))!.job;
    const b = (await t.store.queuePullJob('web2', { trigger: 'manual' }))!.job;
    await t.store.claimNextPullJob(serve);
    const c = (await t.store.queuePullJob('web1', { trigger: 'manual' }))!.job;
    expect((await t.store.listPullJobs()).map((j) => j.id)).toEqual([c.id, b.id, a.id]);
    expect((await t.store.listPullJobs({ hostName: 'web1' })).map((j) => j.id)).toEqual([c.id, a.id]);
  });

  it('keeps the last lines of a job log with their times, and says how many were dropped', async () => {
    const j = (await t.store.queuePullJob('web1', { trigger: 'manual' }))!.job;
    const total = PULL_LOG_LINES + 5;
    for (let i = 1; i <= total; i++) await t.store.appendPullJobLog(j.id, `line ${i}`);
    const log = await t.store.readPullJobLog(j.id);
    expect(log.dropped).toBe(5);
    expect(log.lines).toHaveLength(PULL_LOG_LINES);
    expect(log.lines[0]).toEqual({ seq: 6, at: new Date('2025-01-01T00:00:00Z'), line: 'line 6' });
    expect(log.lines.at(-1)!.line).toBe(`line ${total}`);
    expect((await t.store.readPullJobLog(j.id, { afterSeq: total - 1 })).lines.map((l) => l.line)).toEqual([`line ${total}`]);
  }, 60_000);

  it('fails the active jobs of a process that is gone, with the reason given', async () => {
    const j1 = (await t.store.queuePullJob('web1', { trigger: 'manual' }))!.job;
    const j2 = (await t.store.queuePullJob('web2', { trigger: 'manual' }))!.job;
    await t.store.claimNextPullJob({ kind: 'serve', pid: 1, host: 'here' });
    await t.store.claimNextPullJob({ kind: 'cli', pid: 2, host: 'here' });
    expect(await t.store.failOrphanedPullJobs((r) => r.pid === 2, () => 'the server stopped during the job')).toEqual([j1.id]);
    expect(await t.store.getPullJob(j1.id)).toMatchObject({ state: 'failed', reason: 'the server stopped during the job' });
    expect((await t.store.getPullJob(j2.id))!.state).toBe('connecting');
  });

  it('the recorder writes states and log lines at once and progress at most once per interval, never losing the last', async () => {
    const j = (await t.store.queuePullJob('web1', { trigger: 'manual' }))!.job;
    await t.store.claimNextPullJob(serve);
    const r = createPullJobRecorder(t.store, { progressEveryMs: 60_000 });
    await r.state(j.id, 'running', { archiveName: 'a-1' });
    await r.progress(j.id, { bytes: 1, files: 1, path: '/a' });
    await r.progress(j.id, { bytes: 2, files: 2, path: '/b' });
    expect(await t.store.getPullJob(j.id)).toMatchObject({ bytes: 1, files: 1, currentPath: '/a' });
    await r.log(j.id, 'borg create started');
    await r.state(j.id, 'committing');
    expect(await t.store.getPullJob(j.id)).toMatchObject({ state: 'committing', bytes: 2, files: 2, currentPath: '/b', archiveName: 'a-1' });
    expect((await t.store.readPullJobLog(j.id)).lines.map((l) => l.line)).toEqual(['borg create started']);
  });
});
