// `borgkeep authorized-keys USER KEYTYPE KEYBLOB` as sshd's AuthorizedKeysCommand calls it: the
// line with the forced command for a registered key, `from=` when every grant is address-limited,
// and nothing (exit 0) for unknown and revoked keys and for other users. It is on the path of
// every SSH login, so it must be quick.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';

import { BORGKEEP, createBorgkeepEnv, run, type BorgkeepEnv } from '../helpers/borgkeep-env.js';

let env: BorgkeepEnv;
const pub = (name: string): [string, string] => {
  const [type, blob] = readFileSync(join(env.root, 'ssh-keys', `${name}.pub`), 'utf8').trim().split(/\s+/);
  return [type, blob];
};
const ask = (user: string, [type, blob]: [string, string]) => env.cli(['authorized-keys', user, type, blob]);

beforeAll(async () => {
  env = createBorgkeepEnv('authorized-keys');
  await env.cliOk(['repo', 'create', 'web']);
  await env.cliOk(['repo', 'create', 'db']);
  for (const k of ['laptop', 'fenced', 'gone']) await env.addKey(k);
  await env.cliOk(['grant', 'laptop', 'web', '--role', 'append']);
  await env.cliOk(['grant', 'fenced', 'web', '--role', 'append', '--from', '192.0.2.0/24']);
  await env.cliOk(['grant', 'fenced', 'db', '--role', 'read', '--from', '198.51.100.7']);
  await env.cliOk(['key', 'revoke', 'gone']);
});
afterAll(() => env?.cleanup());

test('a registered key: restrict and the forced command for its id, for the configured user only', async () => {
  const { keys } = JSON.parse(await env.cliOk(['key', 'list', '--json'])) as { keys: Array<{ id: number; name: string }> };
  const id = keys.find((k) => k.name === 'laptop')!.id;
  const r = await ask('borg', pub('laptop'));
  expect(r.code).toBe(0);
  expect(r.stdout).toBe(`restrict,command="${process.execPath} ${BORGKEEP} --data-dir ${env.dataDir} borg-serve --key ${id}" ${pub('laptop').join(' ')}\n`);
  // Another system user (an admin's own login, say) is none of borgkeep's business.
  expect(await ask('root', pub('laptop'))).toMatchObject({ code: 0, stdout: '' });
  expect(await env.cli(['authorized-keys', '--ssh-user', 'backup', 'backup', ...pub('laptop')])).toMatchObject({ code: 0, stdout: expect.stringContaining('restrict,command=') });
});

test('every grant address-limited: from="..." with the union of the ranges', async () => {
  const r = await ask('borg', pub('fenced'));
  const from = /,from="([^"]*)" ssh-ed25519 /.exec(r.stdout);
  expect(from?.[1].split(',').sort()).toEqual(['192.0.2.0/24', '198.51.100.7/32']);
});

test('revoked and unknown keys, and malformed arguments: no line, exit 0', async () => {
  expect(await ask('borg', pub('gone'))).toMatchObject({ code: 0, stdout: '', stderr: '' });
  const [type, blob] = pub('laptop');
  const other = Buffer.from(blob, 'base64');
  other[other.length - 1] ^= 1;
  expect(await ask('borg', [type, other.toString('base64')])).toMatchObject({ code: 0, stdout: '', stderr: '' });
  expect(await ask('borg', [type, 'not base64 at all!'])).toMatchObject({ code: 0, stdout: '' });
});

test('it answers quickly (sshd waits for it on every login)', async () => {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < 5; i++) await run(process.execPath, [BORGKEEP, '--data-dir', env.dataDir, 'authorized-keys', 'borg', ...pub('laptop')]);
  const perCallMs = Number(process.hrtime.bigint() - t0) / 1e6 / 5;
  expect(perCallMs).toBeLessThan(1000);
});
