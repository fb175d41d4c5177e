import { afterEach, beforeEach, expect, test } from 'vitest';

import { openTempStore, type TempStore } from '../../test/support/temp-store.js';
import { createScheduler, type JobDefinition } from './scheduler.js';

let temp: TempStore;
const logged: string[] = [];
beforeEach(async () => {
  temp = await openTempStore();
  temp.clock.set('2026-11-23T10:00:00.000Z');
  logged.length = 0;
});
afterEach(() => temp.cleanup());

const log = { info: (_: object, m: string) => logged.push(m), error: (_: object, m: string) => logged.push(m) };
const scheduler = () => createScheduler({ store: temp.store, now: temp.clock.now, log });
const daily = (runs: string[], extra: Partial<JobDefinition> = {}): JobDefinition => ({
  name: 'statistics',
  pattern: '15 2 * * *',
  description: 'daily',
  catchUp: true,
  run: async () => {
    runs.push(temp.clock.now().toISOString());
    return 'measured';
  },
  ...extra,
});

test('a daily job missed while the server was down runs once at start-up, and not again once it ran', async () => {
  const runs: string[] = [];
  const s = scheduler();
  s.add(daily(runs));
  await s.start(); // a new installation: it runs once now, without a word
  await s.stop();
  expect(runs).toEqual(['2026-11-23T10:00:00.000Z']);
  expect(logged).toEqual([]);

  // A restart the same day: today's run is covered.
  temp.clock.set('2026-11-23T20:00:00.000Z');
  const again = scheduler();
  again.add(daily(runs));
  await again.start();
  await again.stop();
  expect(runs).toHaveLength(1);
  const [job] = await again.list();
  expect(job).toMatchObject({ name: 'statistics', lastResult: 'ok', lastDetail: 'measured', running: false });
  expect(job.lastFinishedAt?.toISOString()).toBe('2026-11-23T10:00:00.000Z');

  // Down over the next 02:15: it runs at start-up again.
  await (await temp.reopen()).listJobs();
  temp.clock.set('2026-11-24T09:00:00.000Z');
  const nextDay = createScheduler({ store: temp.store, now: temp.clock.now, log });
  nextDay.add(daily(runs));
  await nextDay.start();
  await nextDay.stop();
  expect(runs).toEqual(['2026-11-23T10:00:00.000Z', '2026-11-24T09:00:00.000Z']);
  expect(logged).toEqual(['job statistics missed its run at 2026-11-24T02:15:00.000Z; running it now']);
});

test('a job never runs twice at once; a failure is recorded with its reason', async () => {
  let release!: () => void;
  let runs = 0;
  const s = scheduler();
  s.add(
    daily([], {
      name: 'slow',
      catchUp: false,
      run: async () => {
        runs++;
        await new Promise<void>((r) => (release = r));
        throw new Error('the disk went away');
      },
    }),
  );
  await s.start();
  const first = s.runNow('slow');
  const second = s.runNow('slow'); // while the first still runs: the same run
  expect(second).toBe(first);
  expect((await s.list())[0].running).toBe(true);
  release();
  await first;
  expect(runs).toBe(1);
  const [job] = await s.list();
  expect(job).toMatchObject({ running: false, lastResult: 'error', lastDetail: 'the disk went away' });
  expect(logged).toEqual(['job slow failed: the disk went away']);
  await s.stop();
});

test('a job its timer runs every second is recorded at most once a minute, but a change of result or detail at once', async () => {
  let fail = false;
  let said = 'fine';
  const s = scheduler();
  s.add({ name: 'watch', pattern: '* * * * * *', description: 'every second', run: async () => {
    if (fail) throw new Error('the store is locked');
    return said;
  } });
  const finished = async () => (await temp.store.listJobs())[0]?.lastFinishedAt?.toISOString();
  await s.runNow('watch', true);
  expect(await finished()).toBe('2026-11-23T10:00:00.000Z');
  temp.clock.advance(1000);
  await s.runNow('watch', true);
  expect(await finished()).toBe('2026-11-23T10:00:00.000Z');
  fail = true;
  temp.clock.advance(1000);
  await s.runNow('watch', true);
  expect(await finished()).toBe('2026-11-23T10:00:02.000Z');
  expect((await s.list())[0].lastResult).toBe('error');
  fail = false;
  temp.clock.advance(1000);
  await s.runNow('watch', true);
  expect((await s.list())[0]).toMatchObject({ lastResult: 'ok', lastDetail: 'fine' });
  temp.clock.advance(1000);
  said = '1 opened';
  await s.runNow('watch', true);
  expect((await s.list())[0]).toMatchObject({ lastResult: 'ok', lastDetail: '1 opened' });
  said = 'fine';
  temp.clock.advance(60_000);
  await s.runNow('watch', true);
  expect(await finished()).toBe('2026-11-23T10:01:04.000Z');
  await s.stop();
});

test('of gateways sharing a database, only the one holding the jobs runs them on schedule; a run by hand goes ahead anywhere', async () => {
  // Two gateways' schedulers on one database; the jobs lease decides (store.holdLease).
  const other = await temp.openAnother();
  try {
    const runsA: string[] = [];
    const runsB: string[] = [];
    const gateway = (store: typeof temp.store, runs: string[], holder: string) => {
      const s = createScheduler({ store, now: temp.clock.now, log, holdsJobs: () => store.holdLease('jobs', holder, 60_000) });
      s.add({ name: 'alerts-security', pattern: '* * * * * *', description: 'every second', run: async () => (runs.push(holder), 'ok') });
      s.add(daily(runs));
      return s;
    };
    const a = gateway(temp.store, runsA, 'a');
    const b = gateway(other, runsB, 'b');
    await a.start();
    await b.start();
    await new Promise((r) => setTimeout(r, 2_500));
    await a.stop();
    await b.stop();
    // A took the lease first: its catch-up run and its timer runs; B none.
    expect(runsA.length).toBeGreaterThanOrEqual(2);
    expect(runsB).toEqual([]);
    // By hand, B runs it all the same.
    await b.runNow('alerts-security');
    expect(runsB).toEqual(['b']);
    // A gave the lease up: now B takes it.
    await temp.store.releaseLease('jobs', 'a');
    expect(await other.holdLease('jobs', 'b', 60_000)).toBe(true);
    expect(await temp.store.holdLease('jobs', 'a', 60_000)).toBe(false);
    // ... until its time runs out without a renewal.
    temp.clock.advance(61_000);
    expect(await temp.store.holdLease('jobs', 'a', 60_000)).toBe(true);
  } finally {
    await other.close();
  }
});
