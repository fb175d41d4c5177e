// The OpenSSH front-end beyond the role matrix: what a person at a terminal gets from a key that
// borgkeep hands to sshd (no shell, no other command), and sshd itself enforcing `from="..."`
// for keys whose grants are all address-limited, before borgkeep even starts.

import { afterAll, beforeAll, expect, test } from 'vitest';

import { createBorgkeepEnv, run, type BorgkeepEnv } from '../helpers/borgkeep-env.js';

let env: BorgkeepEnv;

/** The real ssh client through the test's wrapper (key $BORGKEEP_TEST_KEY, strict host key). */
const ssh = (key: string, args: readonly string[]) => run(env.rsh, ['root@borgkeep-test', ...args], { env: env.borgEnv(key) });

beforeAll(async () => {
  env = createBorgkeepEnv('openssh', 'openssh');
  await env.cliOk(['repo', 'create', 'main']);
  await env.addKey('laptop');
  await env.addKey('fenced');
  await env.cliOk(['grant', 'laptop', 'main', '--role', 'full']);
  await env.cliOk(['grant', 'fenced', 'main', '--role', 'full', '--from', '192.0.2.0/24']);
  await env.frontEnd();
});
afterAll(() => env?.cleanup());

test('a shell or any other command is refused with one sentence', async () => {
  for (const args of [[], ['cat', '/etc/passwd'], ['borg', 'list', '/']]) {
    const r = await ssh('laptop', args);
    expect(r.code, args.join(' ')).not.toBe(0);
    expect(r.stderr, args.join(' ')).toContain("borgkeep: this key may only run 'borg serve'; other commands are refused");
    expect(r.stdout).toBe('');
  }
});

test('a key whose grants are all address-limited is turned away by sshd from other addresses', async () => {
  const r = await env.borg('fenced', ['list', env.url('main')]);
  expect(r.code).not.toBe(0);
  // borg may exit on the closed connection before it relays ssh's own line; ssh alone always says it.
  const direct = await ssh('fenced', ['borg', 'serve']);
  expect(direct.code).toBe(255);
  expect(direct.stderr).toMatch(/Permission denied \(publickey\)/);
  // sshd refused it: borgkeep never started a session for it.
  const { sessions } = JSON.parse(await env.cliOk(['ledger', '--json'])) as { sessions: Array<{ keyName: string }> };
  expect(sessions.filter((s) => s.keyName === 'fenced')).toEqual([]);
});

test('a borg client with a granted key gets through, with the address sshd saw in the ledger', async () => {
  const r = await env.borg('laptop', ['init', '-e', 'repokey', env.url('main')]);
  expect(r.code, r.stderr).toBe(0);
  const { sessions } = JSON.parse(await env.cliOk(['ledger', '--json', '--limit', '1'])) as { sessions: Array<{ keyName: string; clientAddress: string; result: string }> };
  expect(sessions[0]).toMatchObject({ keyName: 'laptop', clientAddress: '127.0.0.1', result: 'ok' });
});
