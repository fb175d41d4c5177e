// Fault: the repositories' filesystem runs full in the middle of a backup. The repositories live
// on a 64 MB tmpfs made by the test (the database beside them is not on it); it is filled until a
// few MB are left, and a backup of more than that runs through the embedded gateway. borg rolls
// the transaction back, the client gets one clear error, the ledger records it, another
// repository on the same gateway is still served, and once space is freed a backup works and
// everything passes `borg check` with every committed archive still there.

import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, onTestFinished, test } from 'vitest';

import { createBorgkeepEnv, makeSourceTree, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { startRpcClient } from '../helpers/rpc-client.js';
import { waitForSession } from '../helpers/ledger-wait.js';
import { faultKit, fillUp, freeBytes, mountTmpfs, randomTree, twoRepositories } from './fault-kit.js';

let env: BorgkeepEnv;
let unmount = (): void => {};
const kit = faultKit(() => env);
const MB = 1024 * 1024;

beforeAll(async () => {
  env = createBorgkeepEnv('fault-disk', 'embedded');
  unmount = mountTmpfs(join(env.dataDir, 'repos'), 64);
  await twoRepositories(env, 'victim', { admin: 'full', laptop: 'append' }, 'bystander');
  const src = makeSourceTree(join(env.root, 'small'), 1);
  expect((await env.borg('laptop', ['create', `${env.url('victim')}::first`, src])).code).toBe(0);
  expect((await env.borg('server', ['create', `${env.url('bystander')}::before`, src])).code).toBe(0);
});
afterAll(async () => {
  if (env) await (await env.frontEnd()).stop();
  unmount();
  await env?.cleanup();
});

test('a backup that fills the disk is rolled back with a clear error; the server goes on; after freeing space a backup works', async () => {
  const repos = join(env.dataDir, 'repos');
  const filler = join(repos, 'filler');
  onTestFinished(() => rmSync(filler, { force: true }));
  fillUp(filler, 6 * MB);
  expect(freeBytes(repos)).toBeLessThan(7 * MB);
  const big = randomTree(join(env.root, 'big'), 16 * MB);

  const full = await env.borg('laptop', ['create', '--compression', 'none', `${env.url('victim')}::too-big`, big]);
  expect(full.code).toBe(2);
  // borg's own one-line reason first, then the client's sysinfo; never a server path or traceback.
  expect(full.stderr.split('\n')[0]).toBe('OSError: [Errno 28] No space left on device');
  expect(full.stderr).not.toMatch(/Traceback|\/repos\//);
  // The session's rows may reach the store a moment after the client is released (a busy
  // database's writes are retried): wait for its transaction.
  const failed = await waitForSession(
    () => kit.ledger('victim'),
    (all) => all.find((s) => s.keyName === 'laptop' && s.result !== 'open' && s.transactions.length > 0 && s.result !== 'ok'),
    "the laptop's failed session with its transaction",
  );
  expect(failed?.result).toBe('error');
  // (borg serve may also exit after such an error; the reason stays borg's.)
  expect(failed?.detail).toMatch(/^borg rolled the transaction back: OSError: \[Errno 28\] No space left on device/);
  expect(failed?.transactions.map((t) => t.state)).toEqual(['rolled_back']);

  // The disk is still full (borg removes the failed transaction's segment at the repository's
  // next write), yet the gateway serves the other repository.
  expect(freeBytes(repos)).toBeLessThan(1 * MB);
  const list = await env.borg('server', ['list', '--short', env.url('bystander')]);
  expect(list.code, list.stderr).toBe(0);
  expect(list.stdout.trim()).toBe('before');

  rmSync(filler, { force: true });
  expect(await kit.onDisk('victim')).toEqual(['first']);
  const again = await env.borg('laptop', ['create', '--compression', 'none', `${env.url('victim')}::after`, big]);
  expect(again.code, again.stderr).toBe(0);
  const other = await env.borg('server', ['create', `${env.url('bystander')}::after`, makeSourceTree(join(env.root, 'more'), 2)]);
  expect(other.code, other.stderr).toBe(0);
  expect(await kit.onDisk('victim')).toEqual(['after', 'first']);
  expect(await kit.onDisk('bystander')).toEqual(['after', 'before']);
  await kit.noneOpen();
});

test('a session whose very first write fails on the full disk is an error in the ledger, not ok', async () => {
  const repos = join(env.dataDir, 'repos');
  const filler = join(repos, 'filler');
  fillUp(filler, 512 * 1024); // room for borg's lock files, not for the object
  try {
    const c = startRpcClient(env, 'laptop');
    await c.open('/./victim');
    const put = await c.call('put', { id: randomBytes(32), data: randomBytes(4 * MB) });
    expect(put.exceptionClass).toBe('OSError');
    expect(put.message).toMatch(/No space left on device/);
    expect((await c.close()).code).toBe(1); // borg-serve's exit code for a session that ended in an error
  } finally {
    rmSync(filler);
  }
  const [session] = (await kit.ledger('victim')).filter((s) => s.keyName === 'laptop');
  expect(session).toMatchObject({ result: 'error', detail: 'borg rolled the transaction back: OSError: [Errno 28] No space left on device' });
  expect(await kit.onDisk('victim')).toEqual(['after', 'first']);
  await kit.noneOpen();
});
