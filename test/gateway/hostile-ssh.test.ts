// A hostile client against the embedded gateway, speaking SSH directly (ssh2's client, so each
// request can be made on its own): every way in that is not a public key registered in the store
// is refused, every request that is not an exec of `borg serve` is refused, 100 bad-key attempts
// from one address are throttled, and the gateway keeps serving other clients throughout.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, type ClientChannel, type ConnectConfig } from 'ssh2';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { createBorgkeepEnv, makeSourceTree, run, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import type { SshFrontEnd } from '../helpers/ssh-transports.js';

let env: BorgkeepEnv;
let front: SshFrontEnd;
const key = (name: string) => readFileSync(join(env.root, 'ssh-keys', name));

/** Connects; resolves with the ready client, or rejects with the connection's error once it is closed. */
function connect(config: Partial<ConnectConfig>): Promise<Client> {
  return new Promise((resolve, reject) => {
    const c = new Client();
    let error: Error | null = null;
    c.once('ready', () => resolve(c));
    c.on('error', (e: Error) => (error ??= e));
    c.once('close', () => reject(error ?? new Error('closed before ready')));
    c.connect({ host: '127.0.0.1', port: front.port, username: 'borg', readyTimeout: 15_000, ...config });
  });
}

/** Reads a channel to its end: stdout, stderr, exit code. */
function drain(ch: ClientChannel): Promise<{ out: string; err: string; code: number | null }> {
  return new Promise((resolve) => {
    let out = '';
    let err = '';
    let code: number | null = null;
    ch.on('data', (d: Buffer) => (out += d.toString()));
    ch.stderr.on('data', (d: Buffer) => (err += d.toString()));
    ch.on('exit', (c: number | null) => (code = c));
    ch.on('close', () => resolve({ out, err, code }));
  });
}

const callback = <T>(fn: (cb: (err: Error | undefined, value: T) => void) => void): Promise<T> =>
  new Promise((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value))));

beforeAll(async () => {
  env = createBorgkeepEnv('hostile-ssh', 'embedded', { serveArgs: ['--auth-failures-per-minute', '10', '--max-sessions-per-key', '2'] });
  await env.cliOk(['repo', 'create', 'main']);
  for (const k of ['admin', 'revoked']) await env.addKey(k);
  await env.cliOk(['grant', 'admin', 'main', '--role', 'full']);
  await env.cliOk(['grant', 'revoked', 'main', '--role', 'full']);
  await env.cliOk(['key', 'revoke', 'revoked']);
  // A key pair the store has never seen.
  const kg = await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(env.root, 'ssh-keys', 'stranger')]);
  expect(kg.code, kg.stderr).toBe(0);
  front = await env.frontEnd();
  const init = await env.borg('admin', ['init', '-e', 'repokey', env.url('main')]);
  expect(init.code, init.stderr).toBe(0);
});
afterAll(() => env?.cleanup());

describe('authentication', () => {
  test('passwords and keyboard-interactive are refused', async () => {
    await expect(connect({ password: 'hunter2', authHandler: ['password'] })).rejects.toThrow(/authentication methods failed/);
    await expect(connect({ tryKeyboard: true, authHandler: ['keyboard-interactive'] })).rejects.toThrow(/authentication methods failed/);
  });

  test('an unknown key, a revoked key, a key of another user name and no key at all are refused', async () => {
    await expect(connect({ privateKey: key('stranger') })).rejects.toThrow(/authentication methods failed/);
    await expect(connect({ privateKey: key('revoked') })).rejects.toThrow(/authentication methods failed/);
    await expect(connect({ privateKey: key('admin'), username: 'root' })).rejects.toThrow(/authentication methods failed/);
    await expect(connect({ authHandler: ['none'] })).rejects.toThrow(/authentication methods failed/);
    expect(front.log()).toMatch(/"reason":"unknown key"/);
    expect(front.log()).toMatch(/"reason":"key 'revoked' is revoked"/);
    expect(front.log()).toMatch(/"reason":"unknown user"/);
  });

  test('a registered key works', async () => {
    const c = await connect({ privateKey: key('admin') });
    c.end();
  });
});

describe('what an authenticated client may ask for', () => {
  let c: Client;
  beforeAll(async () => {
    c = await connect({ privateKey: key('admin') });
  });
  afterAll(() => c?.end());

  test('a shell: refused with a message', async () => {
    const r = await drain(await callback<ClientChannel>((cb) => c.shell(false, cb)));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/this server has no shell; it only runs 'borg serve'/);
    expect(r.out).toBe('');
  });

  test('any command but borg serve: refused with a message, nothing runs', async () => {
    for (const cmd of ['cat /etc/passwd', 'borg list /', 'sh -c "borg serve"', 'rsync --server -e.Lsfx . /', 'scp -t /tmp', '']) {
      const r = await drain(await callback<ClientChannel>((cb) => c.exec(cmd, cb)));
      expect(r.code, cmd).toBe(1);
      expect(r.err, cmd).toMatch(/only runs 'borg serve' for borg clients; the command was refused/);
      expect(r.out, cmd).toBe('');
    }
  });

  test('sftp and other subsystems: refused', async () => {
    await expect(callback((cb) => c.sftp(cb))).rejects.toThrow();
  });

  test('a pty: refused', async () => {
    await expect(callback<ClientChannel>((cb) => c.exec('borg serve', { pty: true }, cb))).rejects.toThrow(/pseudo-terminal|pty/i);
  });

  test('port forwarding in both directions and agent forwarding: refused', async () => {
    await expect(callback((cb) => c.forwardOut('127.0.0.1', 40000, '127.0.0.1', 22, cb))).rejects.toThrow(/open failure/i);
    await expect(callback<number>((cb) => c.forwardIn('127.0.0.1', 0, cb as never))).rejects.toThrow();
    await expect(callback<void>((cb) => c.openssh_forwardInStreamLocal('/tmp/borgkeep-hostile.sock', cb as never))).rejects.toThrow();
    const ch = await callback<ClientChannel>((cb) => c.exec('echo', { agentForward: true } as never, cb)).catch((e: Error) => e);
    // ssh2 asks for agent forwarding only with an agent; either the request or the command fails.
    if (!(ch instanceof Error)) expect((await drain(ch)).code).toBe(1);
  });

  test('environment variables are not taken: borg serve still starts as it would, and the session is in the ledger', async () => {
    const ch = await callback<ClientChannel>((cb) => c.exec('borg serve', { env: { BORG_REPO: '/etc', LD_PRELOAD: '/tmp/x.so' } }, cb));
    ch.end(); // EOF before negotiate: the guard ends the session without starting borg serve
    const r = await drain(ch);
    expect(r.out).toBe('');
    const { sessions } = JSON.parse(await env.cliOk(['ledger', '--json', '--limit', '1'])) as { sessions: Array<{ keyName: string; result: string }> };
    expect(sessions[0].keyName).toBe('admin');
  });
});

test('100 bad-key attempts from one address are throttled; the gateway keeps serving other clients', async () => {
  const started = Date.now();
  let refusedBeforeAuth = 0;
  let authFailures = 0;
  const good: number[] = [];
  for (let i = 0; i < 100; i++) {
    const e = await connect({ privateKey: key('stranger'), localAddress: '127.0.0.2' }).then(
      (c) => {
        c.end();
        return null;
      },
      (err: Error) => err,
    );
    expect(e).toBeInstanceOf(Error);
    if (/authentication methods failed/.test((e as Error).message)) authFailures++;
    else refusedBeforeAuth++;
    // Other clients (another address) are served all along.
    if (i % 25 === 0) good.push((await env.borg('admin', ['list', env.url('main')])).code);
  }
  expect(authFailures).toBeLessThanOrEqual(10);
  expect(refusedBeforeAuth).toBeGreaterThanOrEqual(90);
  expect(good).toEqual([0, 0, 0, 0]);
  expect(Date.now() - started).toBeLessThan(60_000);
  // The throttled address is refused even with a good key until the window passes...
  await expect(connect({ privateKey: key('admin'), localAddress: '127.0.0.2' })).rejects.toThrow();
  // ...while a backup from another address goes through.
  const src = makeSourceTree(join(env.root, 'src'), 3, 2);
  const r = await env.borg('admin', ['create', `${env.url('main')}::during-throttle`, src]);
  expect(r.code, r.stderr).toBe(0);
  expect(front.log()).toMatch(/"event":"connection-refused","address":"127\.0\.0\.2","reason":"throttled"/);
});

test('more sessions at once than a key may run: the extra one is refused with a message borg prints', async () => {
  const big = join(env.root, 'big');
  const w = await run('sh', ['-c', `mkdir -p ${big} && head -c 20000000 /dev/urandom > ${big}/r.bin`]);
  expect(w.code).toBe(0);
  const slow = ['a', 'b'].map((n) => env.borg('admin', ['create', '--lock-wait', '60', '--upload-ratelimit', '4096', `${env.url('main')}::slow-${n}`, big]));
  await new Promise((r) => setTimeout(r, 2500));
  const third = await env.borg('admin', ['list', env.url('main')]);
  expect(third.code, `${third.stdout}\n${third.stderr}\n${front.log().slice(-3000)}`).not.toBe(0);
  expect(third.stderr).toContain('borgkeep refused open: the key may run at most 2 sessions at once; try again later');
  for (const r of await Promise.all(slow)) expect(r.code, r.stderr).toBe(0);
  const denied = JSON.parse(await env.cliOk(['ledger', '--json', '--limit', '5'])) as {
    sessions: Array<{ result: string; denials: Array<{ reason: string }> }>;
  };
  expect(denied.sessions.some((s) => s.result === 'denied' && s.denials.some((d) => d.reason === 'BK_DENY_SESSION_LIMIT'))).toBe(true);
});

test("offers AES-GCM only by default: OpenSSH's default list gets aes128-gcm, a client that allows only chacha20-poly1305 or CTR finds no cipher", async () => {
  const ssh = (ciphers: string | null) =>
    run('ssh', [
      '-v', '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none', '-o', 'HostKeyAlias=borgkeep-test',
      '-o', `UserKnownHostsFile=${join(env.root, 'known_hosts')}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'ConnectTimeout=20',
      ...(ciphers ? ['-o', `Ciphers=${ciphers}`] : []),
      '-i', join(env.root, 'ssh-keys', 'admin'), '-p', String(front.port), 'borg@127.0.0.1', 'borg', 'serve',
    ]);
  const stock = await ssh(null);
  expect(stock.stderr).toMatch(/kex: server->client cipher: aes128-gcm@openssh\.com/);
  expect(stock.stderr).toMatch(/Authenticated to 127\.0\.0\.1/);
  for (const only of ['chacha20-poly1305@openssh.com', 'aes128-ctr,aes256-ctr']) {
    const refused = await ssh(only);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/no matching cipher found/);
  }
});
