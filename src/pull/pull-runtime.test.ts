import { afterEach, beforeEach, expect, test } from 'vitest';

import { openTempStore, type TempStore } from '../../test/support/temp-store.js';
import { PULL_SERVER_STALE_MS, pullServerRunning } from './pull-runtime.js';

let t: TempStore;
beforeEach(async () => {
  t = await openTempStore();
});
afterEach(() => t.cleanup());

test('a server runs while its heartbeat is fresh and its process alive; a stopped server clears it', async () => {
  const server = { kind: 'serve', pid: 321, host: 'node-a' } as const;
  expect(await pullServerRunning(t.store, () => true, t.clock.now())).toBeNull();
  await t.store.beatPullServer(server);
  expect(await pullServerRunning(t.store, () => true, t.clock.now())).toEqual(server);
  expect(await pullServerRunning(t.store, () => false, t.clock.now())).toBeNull(); // its process is gone
  expect(await pullServerRunning(t.store, () => true, new Date(t.clock.now().getTime() + PULL_SERVER_STALE_MS + 1))).toBeNull(); // silent too long
  await t.store.clearPullServer({ ...server, pid: 999 }); // another process cannot clear it
  expect(await pullServerRunning(t.store, () => true, t.clock.now())).toEqual(server);
  await t.store.clearPullServer(server);
  expect(await pullServerRunning(t.store, () => true, t.clock.now())).toBeNull();
});
