// The gateway's time limits: a connection that does not authenticate within the login grace
// time, and an authenticated connection that runs nothing for the idle time, are closed; one
// that runs a session is not closed while the session lasts.

import { readFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import { Client } from 'ssh2';
import { afterAll, beforeAll, expect, test } from 'vitest';

import { createBorgkeepEnv, makeSourceTree, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import type { SshFrontEnd } from '../helpers/ssh-transports.js';

let env: BorgkeepEnv;
let front: SshFrontEnd;

beforeAll(async () => {
  env = createBorgkeepEnv('gateway-timeouts', 'embedded', { serveArgs: ['--login-grace', '2', '--idle-timeout', '2'] });
  await env.cliOk(['repo', 'create', 'main']);
  await env.addKey('admin');
  await env.cliOk(['grant', 'admin', 'main', '--role', 'full']);
  front = await env.frontEnd();
});
afterAll(() => env?.cleanup());

test('a connection that never authenticates is closed after the login grace time', async () => {
  const t0 = Date.now();
  const closedAfter = await new Promise<number>((resolve, reject) => {
    const sock = tcpConnect(front.port, '127.0.0.1');
    sock.on('error', reject);
    sock.on('data', () => undefined); // the server's banner; the client says nothing back
    sock.on('close', () => resolve(Date.now() - t0));
  });
  expect(closedAfter).toBeGreaterThanOrEqual(1500);
  expect(closedAfter).toBeLessThan(10_000);
  // The log line is written as the socket closes; under load it lands a moment after.
  await expect.poll(() => front.log()).toMatch(/"event":"login-timeout"/);
});

test('an authenticated connection that runs nothing is closed after the idle time', async () => {
  const c = new Client();
  const t0 = Date.now();
  const closedAfter = await new Promise<number>((resolve, reject) => {
    c.on('error', reject);
    c.on('close', () => resolve(Date.now() - t0));
    c.connect({ host: '127.0.0.1', port: front.port, username: 'borg', privateKey: readFileSync(join(env.root, 'ssh-keys', 'admin')) });
  });
  expect(closedAfter).toBeGreaterThanOrEqual(1500);
  expect(closedAfter).toBeLessThan(10_000);
});

test('a backup longer than the idle time is not cut off', async () => {
  const init = await env.borg('admin', ['init', '-e', 'none', env.url('main')]);
  expect(init.code, init.stderr).toBe(0);
  // --upload-ratelimit stretches the backup well past the 2 s idle time.
  const big = makeSourceTree(join(env.root, 'src'), 1, 40);
  const r = await env.borg('admin', ['create', '--upload-ratelimit', '30', `${env.url('main')}::slow`, big]);
  expect(r.code, r.stderr).toBe(0);
});
