// A repository's storage quota is enforced by the child borg serve (--storage-quota from the
// repository, never from the client); the failed backup is an error in the ledger with
// borg's reason, and nothing of it stays in the repository.

import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';

import { createBorgkeepEnv, makeSourceTree, type BorgkeepEnv } from '../helpers/borgkeep-env.js';

let env: BorgkeepEnv;

beforeAll(async () => {
  env = createBorgkeepEnv('quota');
  await env.cliOk(['repo', 'create', 'small', '--quota', '10M']);
  await env.addKey('admin');
  await env.addKey('laptop');
  await env.cliOk(['grant', 'admin', 'small', '--role', 'full']);
  await env.cliOk(['grant', 'laptop', 'small', '--role', 'append']);
  expect((await env.borg('admin', ['init', '-e', 'repokey', env.url('small')])).code).toBe(0);
});
afterAll(() => env?.cleanup());

test('a backup over the quota fails with borg\'s message, is recorded as an error, and leaves nothing behind', async () => {
  const small = makeSourceTree(join(env.root, 'small-src'), 1);
  expect((await env.borg('laptop', ['create', `${env.url('small')}::fits`, small])).code).toBe(0);

  const big = join(env.root, 'big');
  mkdirSync(big);
  writeFileSync(join(big, 'random.bin'), randomBytes(15 * 1024 * 1024));
  const r = await env.borg('laptop', ['create', '--compression', 'none', `${env.url('small')}::too-big`, big]);
  expect(r.code).toBe(2);
  expect(r.stderr).toMatch(/storage quota \(10\.00 MB\) has been exceeded/);

  const { sessions } = JSON.parse(await env.cliOk(['ledger', '--json', '--limit', '1'])) as {
    sessions: Array<{ result: string; detail: string; transactions: Array<{ state: string }> }>;
  };
  expect(sessions[0].result).toBe('error');
  expect(sessions[0].detail).toMatch(/StorageQuotaExceeded/);
  expect(sessions[0].transactions.map((t) => t.state)).toEqual(['rolled_back']);

  const list = await env.borg('admin', ['list', '--short', env.url('small')]);
  expect(list.stdout.trim()).toBe('fits');
  const check = await env.borg('admin', ['check', env.url('small')]);
  expect(check.code, check.stderr).toBe(0);
});
