import { afterEach, beforeEach, expect, it } from 'vitest';
import { openTempStore, type TempStore } from '../../test/support/temp-store.js';
import { DEAD_NODE_AFTER_MS, GATEWAY_LEASE_MS, closeSessionsOfDeadProcesses, gatewayLeaseName } from './dead-processes.js';
import { STALE_SESSION_DETAIL } from './ledger-store.js';

let t: TempStore;
beforeEach(async () => {
  t = await openTempStore();
});
afterEach(() => t.cleanup());

const open = (host: string, pid: number) => t.store.startSession({ keyId: null, keyName: null, clientAddress: null, startedAt: t.clock.now(), pid, host });
const results = async () => new Map((await t.store.listSessions()).map((s) => [s.id, [s.result, s.detail]]));

it("closes, as aborted, the open sessions of a gateway whose lease ran out and of a node whose heartbeat is old, and no one else's", async () => {
  // Gateway a on host ga keeps renewing; gateway b on host gb stops (killed, its machine gone).
  const a = gatewayLeaseName('ga', 100);
  const b = gatewayLeaseName('gb', 200);
  expect(await t.store.holdLease(a, 'ga:100', GATEWAY_LEASE_MS)).toBe(true);
  expect(await t.store.holdLease(b, 'gb:200', GATEWAY_LEASE_MS)).toBe(true);
  await t.store.registerNode({ name: 'n1', address: '10.0.0.1:2223', hostKey: 'ssh-ed25519 H1', clientKey: 'ssh-ed25519 C1', borgVersion: '1.2.4', capacityBytes: 1, freeBytes: 1, host: 'store1', pid: 300 });
  await t.store.registerNode({ name: 'n2', address: '10.0.0.2:2223', hostKey: 'ssh-ed25519 H2', clientKey: 'ssh-ed25519 C2', borgVersion: '1.2.4', capacityBytes: 1, freeBytes: 1, host: 'store2', pid: 400 });
  const onA = await open('ga', 100);
  const onB = await open('gb', 200);
  const forcedOnB = await open('gb', 201); // a borg-serve process of sshd's forced command on gb
  const onN1 = await open('store1', 300);
  const onN2 = await open('store2', 400);
  const sameHostOtherPid = await open('store1', 301);

  // Nothing is dead yet.
  t.clock.advance(GATEWAY_LEASE_MS - 5_000);
  expect(await closeSessionsOfDeadProcesses(t.store, t.clock.now())).toEqual({ closed: 0, processes: [] });
  await t.store.holdLease(a, 'ga:100', GATEWAY_LEASE_MS);
  await t.store.nodeHeartbeat('n2', { capacityBytes: 1, freeBytes: 1 });

  // b's lease runs out; n1 misses its heartbeats; a and n2 renewed theirs.
  t.clock.advance(10_000);
  const swept = await closeSessionsOfDeadProcesses(t.store, t.clock.now());
  expect(swept.closed).toBe(2);
  expect(swept.processes.sort()).toEqual(["gateway gb (pid 200)", "storage node 'n1'"]);
  const r = await results();
  expect(r.get(onB)).toEqual(['aborted', STALE_SESSION_DETAIL]);
  expect(r.get(onN1)).toEqual(['aborted', STALE_SESSION_DETAIL]);
  for (const id of [onA, forcedOnB, onN2, sameHostOtherPid]) expect(r.get(id)![0]).toBe('open');
  // b's lease is forgotten; a's is kept.
  expect(await t.store.expiredLeases('gateway ')).toEqual([]);
  expect(await t.store.holdLease(a, 'someone else', GATEWAY_LEASE_MS)).toBe(false);

  // A node that stopped cleanly is not dead: its sessions ended with it.
  await t.store.nodeStopped('n2');
  t.clock.advance(DEAD_NODE_AFTER_MS * 2);
  await t.store.holdLease(a, 'ga:100', GATEWAY_LEASE_MS);
  // n1 is still dead, but has no open session left: nobody is named.
  expect(await closeSessionsOfDeadProcesses(t.store, t.clock.now())).toEqual({ closed: 0, processes: [] });
  expect((await results()).get(onN2)![0]).toBe('open');
});

it('a lease renewed between the look and the forgetting is kept', async () => {
  const b = gatewayLeaseName('gb', 200);
  await t.store.holdLease(b, 'gb:200', GATEWAY_LEASE_MS);
  t.clock.advance(GATEWAY_LEASE_MS);
  expect(await t.store.expiredLeases('gateway ')).toEqual([b]);
  expect(await t.store.expiredLeases('other ')).toEqual([]);
  await t.store.holdLease(b, 'gb:200', GATEWAY_LEASE_MS); // it came back
  await t.store.forgetExpiredLease(b);
  expect(await t.store.holdLease(b, 'someone else', GATEWAY_LEASE_MS)).toBe(false);
});
