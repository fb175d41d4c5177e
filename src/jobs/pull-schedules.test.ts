import { afterEach, beforeEach, expect, test } from 'vitest';

import { openTempStore, type TempStore } from '../../test/support/temp-store.js';
import { checkPullHostInput } from '../pull/host-input.js';
import { createPullService } from '../pull/pull-service.js';
import { createScheduler } from './scheduler.js';
import { serverJobs, type ServerJobDeps } from './server-jobs.js';

let temp: TempStore;
beforeEach(async () => {
  temp = await openTempStore();
  temp.clock.set('2026-12-06T01:59:00.000Z');
  await temp.store.createRepository({ name: 'photos', quotaBytes: null });
});
afterEach(() => temp.cleanup());

test("the server's scheduler queues a pull job for a host whose schedule is due, and not a second while it waits", async () => {
  await temp.store.addPullHost('web1', checkPullHostInput({ address: 'c', user: 'backup', repository: 'photos', paths: ['/etc'], schedule: '0 2 * * *' }));
  const service = createPullService({ store: temp.store, runJob: async () => ({ state: 'done', reason: null }), runner: { kind: 'serve', pid: 1, host: 'h' }, isAlive: () => true, now: temp.clock.now, jitterMaxMs: 0 });
  const deps = { store: temp.store, monitor: null, directorySize: async () => null, audit: async () => 'clean', pullSchedules: () => service.queueDue() } as unknown as ServerJobDeps;
  const job = serverJobs(deps).find((j) => j.name === 'pull-schedules')!;
  expect(job.pattern).toBe('* * * * * *');
  expect(serverJobs({ ...deps, pullSchedules: undefined }).some((j) => j.name === 'pull-schedules')).toBe(false);

  const scheduler = createScheduler({ store: temp.store, now: temp.clock.now, log: { info: () => undefined, error: () => undefined } });
  scheduler.add(job);
  await scheduler.runNow('pull-schedules');
  expect(await temp.store.listPullJobs()).toEqual([]);
  temp.clock.set('2026-12-06T02:00:00.000Z');
  await scheduler.runNow('pull-schedules');
  await scheduler.runNow('pull-schedules');
  temp.clock.set('2026-12-07T02:00:00.000Z'); // the next day's run while the first still waits
  await scheduler.runNow('pull-schedules');
  expect((await temp.store.listPullJobs()).map((j) => [j.hostName, j.trigger, j.state])).toEqual([['web1', 'schedule', 'queued']]);
  expect((await scheduler.list()).find((j) => j.name === 'pull-schedules')).toMatchObject({ lastResult: 'ok', lastDetail: 'nothing due' });
  await scheduler.stop();
});
