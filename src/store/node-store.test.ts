import { afterEach, beforeEach, expect, it } from 'vitest';
import { openTempStore, type TempStore } from '../../test/support/temp-store.js';
import { NODE_DOWN_AFTER_MS, nodeIsUp, type NodeRegistration } from './node-store.js';
import { chooseNode } from './placement.js';

let t: TempStore;
beforeEach(async () => {
  t = await openTempStore();
});
afterEach(() => t.cleanup());

const node = (name: string, freeBytes: number): NodeRegistration => ({
  name,
  address: `10.0.0.${name.length}:2223`,
  hostKey: `ssh-ed25519 HOST${name}`,
  clientKey: `ssh-ed25519 CLIENT${name}`,
  borgVersion: '1.2.4',
  capacityBytes: 1000,
  freeBytes,
  host: 'store',
  pid: 42,
});

it('a node is up while it renews its heartbeat, down when it stops renewing it or stops cleanly, and up again at a restart', async () => {
  await t.store.registerNode(node('n1', 500));
  const up = async () => nodeIsUp((await t.store.findNode('n1'))!, t.clock.now());
  expect(await up()).toBe(true);
  t.clock.advance(NODE_DOWN_AFTER_MS - 1000);
  await t.store.nodeHeartbeat('n1', { capacityBytes: 1000, freeBytes: 400 });
  t.clock.advance(NODE_DOWN_AFTER_MS - 1000);
  expect(await up()).toBe(true);
  expect((await t.store.findNode('n1'))!.freeBytes).toBe(400);
  t.clock.advance(2000);
  expect(await up()).toBe(false);
  await t.store.registerNode({ ...node('n1', 300), address: '10.0.0.9:2300' });
  expect(await up()).toBe(true);
  expect((await t.store.listNodes()).map((n) => [n.name, n.address, n.freeBytes])).toEqual([['n1', '10.0.0.9:2300', 300]]);
  await t.store.nodeStopped('n1');
  expect(await up()).toBe(false);
});

it("lets in the keys of gateways and nodes only", async () => {
  await t.store.registerNode(node('n1', 500));
  await t.store.registerFleetKey('ssh-ed25519 GATEWAY', 'gateway on a');
  await t.store.registerFleetKey('ssh-ed25519 GATEWAY', 'gateway on a, again');
  expect(await t.store.isFleetKey('ssh-ed25519 GATEWAY')).toBe(true);
  expect(await t.store.isFleetKey('ssh-ed25519 CLIENTn1')).toBe(true);
  expect(await t.store.isFleetKey('ssh-ed25519 HOSTn1')).toBe(false);
  expect(await t.store.isFleetKey('ssh-ed25519 SOMEONE')).toBe(false);
});

it('places a repository on the node named, else on the up node with the most free space; one move at a time', async () => {
  const repo = await t.store.createRepository({ name: 'photos', quotaBytes: null });
  expect(await chooseNode(t.store, null, t.clock.now())).toBeNull(); // no nodes: the data directory
  await t.store.registerNode(node('small', 100));
  await t.store.registerNode(node('large', 900));
  expect(await chooseNode(t.store, null, t.clock.now())).toBe('large');
  expect(await chooseNode(t.store, 'small', t.clock.now())).toBe('small');
  await expect(chooseNode(t.store, 'nowhere', t.clock.now())).rejects.toThrow("there is no storage node 'nowhere'");
  await t.store.nodeStopped('large');
  expect(await chooseNode(t.store, null, t.clock.now())).toBe('small');
  await t.store.nodeStopped('small');
  await expect(chooseNode(t.store, null, t.clock.now())).rejects.toThrow('no storage node is up');

  expect(await t.store.repositoryPlacement(repo.id)).toBeUndefined();
  expect(await t.store.markMoving(repo.id, 'large')).toBe(false); // not on a node: nothing to move
  await t.store.placeRepository(repo.id, 'small');
  expect(await t.store.repositoryPlacement(repo.id)).toEqual({ node: 'small', movingTo: null });
  expect(await t.store.markMoving(repo.id, 'large')).toBe(true);
  expect(await t.store.markMoving(repo.id, 'large')).toBe(false);
  expect(await t.store.repositoryPlacement(repo.id)).toEqual({ node: 'small', movingTo: 'large' });
  await t.store.placeRepository(repo.id, 'large');
  expect(await t.store.repositoryPlacement(repo.id)).toEqual({ node: 'large', movingTo: null });
  expect(await t.store.repositoryNodes()).toEqual(new Map([[repo.id, 'large']]));
  // Removing the repository removes its placement.
  await t.store.deleteRepository('photos');
  expect(await t.store.repositoryNodes()).toEqual(new Map());
});
