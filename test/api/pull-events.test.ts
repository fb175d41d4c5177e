// Pull jobs on the live channel (GET /api/v1/events) over real HTTP against a real SQLite store,
// the jobs written as their runner in another process writes them: the snapshot lists the jobs
// queued or under way; a new job is announced, its progress (state, bytes, files, path) follows,
// and its end says how it ended, also for a job that is queued and fails between two looks;
// ?repository= narrows them; and the store is asked once per look whatever the number of
// subscribers, and not at all while nobody watches.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiServer, type ApiServer } from '../../src/api/api-server.js';
import { createPasswordHasher } from '../../src/api/auth/passwords.js';
import { createLiveEvents } from '../../src/api/features/live-events.js';
import { openTempStore, type TempStore } from '../support/temp-store.js';
import { addPullHost, arrangeRunningJob } from '../helpers/pull-fixture.js';
import { sseReader } from '../helpers/sse-reader.js';
import { PASSWORD, TEST_ARGON2 } from './api-harness.js';

describe('pull jobs on the live channel', () => {
  let temp: TempStore;
  let server: ApiServer;
  let url: string;
  let cookie: string;
  const cleanups: Array<() => unknown> = [];

  beforeAll(async () => {
    temp = await openTempStore();
    temp.clock.set(new Date());
    const passwords = await createPasswordHasher(TEST_ARGON2);
    await temp.store.addUser({ name: 'watcher', role: 'viewer', passwordHash: await passwords.hash(PASSWORD) });
    for (const name of ['main', 'other']) await temp.store.createRepository({ name, quotaBytes: null });
    await addPullHost(temp.store, 'web1', { repository: 'main' });
    await addPullHost(temp.store, 'db1', { repository: 'other' });
    server = createApiServer({ store: temp.store, passwords, now: temp.clock.now, live: { pollMs: 50, heartbeatMs: 5000 } });
    ({ url } = await server.listen('127.0.0.1', 0));
    const login = await fetch(`${url}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'watcher', password: PASSWORD }) });
    cookie = /^bk_session=[^;]+/.exec(login.headers.get('set-cookie')!)![0];
  });
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
    await server?.close();
    await temp?.cleanup();
  });

  const open = async (query = '') => {
    const reader = sseReader(await fetch(`${url}/api/v1/events${query}`, { headers: { cookie } }));
    cleanups.push(reader.cancel);
    return reader;
  };

  it("snapshots the jobs under way, then announces a job, its progress and its end", async () => {
    const before = await arrangeRunningJob(temp.store, 'db1', 'db1-before');
    await before.progress(100, 1, '/etc/hosts');
    const all = await open();
    const snapshot = await all.next((m) => m.event === 'snapshot', 'snapshot');
    expect(snapshot.data.pullJobs).toEqual([expect.objectContaining({ id: before.id, host: 'db1', repository: 'other', state: 'running', bytes: 100, files: 1, currentPath: '/etc/hosts' })]);
    const onlyMain = await open('?repository=main');
    expect((await onlyMain.next((m) => m.event === 'snapshot', 'snapshot')).data.pullJobs).toEqual([]);

    const job = await arrangeRunningJob(temp.store, 'web1', 'web1-now');
    const started = await all.next((m) => m.event === 'pull.started' && m.data.job.id === job.id, 'pull.started');
    expect(started.data.job).toMatchObject({ host: 'web1', repository: 'main', trigger: 'manual', archive: 'web1-now' });
    await job.progress(2_000_000, 17, '/home/ann/a.txt');
    const progress = await all.next((m) => m.event === 'pull.progress' && m.data.job.bytes === 2_000_000, 'pull.progress');
    expect(progress.data.job).toMatchObject({ id: job.id, state: 'running', files: 17, currentPath: '/home/ann/a.txt' });
    await job.progress(3_000_000, 20, '/home/ann/b.txt');
    await all.next((m) => m.event === 'pull.progress' && m.data.job.currentPath === '/home/ann/b.txt', 'second pull.progress');
    await job.end('done');
    const ended = await all.next((m) => m.event === 'pull.ended' && m.data.job.id === job.id, 'pull.ended');
    expect(ended.data.job).toMatchObject({ state: 'done', bytes: 3_000_000, files: 20, currentPath: null });
    expect(ended.data.job.endedAt).not.toBeNull();

    // The repository filter: web1's job (main) only, never db1's.
    await onlyMain.next((m) => m.event === 'pull.ended' && m.data.job.id === job.id, 'pull.ended on ?repository=main');
    await before.end('failed', 'the client went away');
    await all.next((m) => m.event === 'pull.ended' && m.data.job.id === before.id, 'pull.ended of db1');
    expect(onlyMain.seen.filter((m) => m.event.startsWith('pull.')).every((m) => m.data.job.host === 'web1')).toBe(true);
  });

  it('announces a job that is queued and fails between two looks', async () => {
    const all = await open();
    await all.next((m) => m.event === 'snapshot', 'snapshot');
    const queued = await temp.store.queuePullJob('web1', { trigger: 'manual' });
    await temp.store.setPullJobState(queued!.job.id, 'failed', { reason: 'the host key of web1 is not accepted yet' });
    const ended = await all.next((m) => m.event === 'pull.ended' && m.data.job.id === queued!.job.id, 'pull.ended');
    expect(ended.data.job).toMatchObject({ state: 'failed', reason: 'the host key of web1 is not accepted yet' });
    const events = all.seen.filter((m) => m.event.startsWith('pull.') && m.data.job.id === queued!.job.id).map((m) => m.event);
    expect(events).toEqual(['pull.started', 'pull.ended']);
  });

  it('asks the store once per look whatever the number of subscribers, and not while nobody watches', async () => {
    let asked = 0;
    const store = {
      ledgerMarks: () => temp.store.ledgerMarks(),
      ledgerChanges: (...a: Parameters<TempStore['store']['ledgerChanges']>) => temp.store.ledgerChanges(...a),
      pullJobActivity: (...a: Parameters<TempStore['store']['pullJobActivity']>) => {
        asked += 1;
        return temp.store.pullJobActivity(...a);
      },
    };
    const hub = createLiveEvents({ store, pollMs: 60_000 });
    try {
      const subs = await Promise.all(Array.from({ length: 5 }, () => hub.subscribe(() => undefined)));
      expect(asked).toBe(1); // the first look, shared by the five
      for (let i = 0; i < 3; i++) await hub.tick();
      expect(asked).toBe(4);
      subs.forEach((s) => s.unsubscribe());
    } finally {
      hub.close();
    }
    // Once the last subscriber leaves, the looks stop.
    const hub2 = createLiveEvents({ store, pollMs: 20 });
    try {
      const sub = await hub2.subscribe(() => undefined);
      await new Promise((r) => setTimeout(r, 100));
      sub.unsubscribe();
      await new Promise((r) => setTimeout(r, 60));
      const after = asked;
      await new Promise((r) => setTimeout(r, 200));
      expect(asked).toBe(after);
    } finally {
      hub2.close();
    }
  });
});
