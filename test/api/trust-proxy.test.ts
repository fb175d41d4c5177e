// `borgkeep serve --trust-proxy 127.0.0.1` (the built CLI, real HTTP on loopback): a login
// through the listed proxy counts against the client X-Forwarded-For names, so the per-address
// login throttle blocks that client and not the proxy's other clients; a connection from any
// other address (127.0.0.2 here) is its own address whatever X-Forwarded-For it sends, so a
// client cannot spoof its way past the throttle. X-Forwarded-Proto: https from the proxy makes
// the session cookie Secure; from elsewhere it changes nothing. A bad --trust-proxy is refused.
import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BORGKEEP, runBorgkeep } from '../cli/cli-harness.js';
import { firstAdminPassword } from '../helpers/first-admin.js';

const root = mkdtempSync(join(tmpdir(), 'borgkeep-trust-proxy-'));
const dataDir = join(root, 'data');
let child: ChildProcess;
let port: number;

beforeAll(async () => {
  child = spawn(process.execPath, [BORGKEEP, '--data-dir', dataDir, 'serve', '--ssh-listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--trust-proxy', '127.0.0.1, 10.0.0.0/8'], {
    env: { ...process.env, BORGKEEP_DATA_DIR: undefined },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${out}`)), 20_000);
    const poll = setInterval(() => {
      const m = /HTTP API listening on http:\/\/127\.0\.0\.1:(\d+)\/api\/v1/.exec(out);
      if (m) {
        clearInterval(poll);
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    }, 50);
    child.on('exit', () => reject(new Error(`serve exited: ${out}`)));
  });
}, 30_000);
afterAll(async () => {
  if (child && child.exitCode === null) await new Promise((resolve) => child.once('exit', resolve).kill('SIGTERM'));
  rmSync(root, { recursive: true, force: true });
});

/** POST /session from the local address `from` (127.0.0.1: the trusted proxy), with these headers. */
function login(from: string, name: string, password: string, headers: Record<string, string> = {}): Promise<{ status: number; cookie: string }> {
  const body = JSON.stringify({ name, password });
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, localAddress: from, method: 'POST', path: '/api/v1/session', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers } },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode!, cookie: String(res.headers['set-cookie'] ?? '') }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Failed logins (a new unknown user each: the per-user limit stays out of it) until the address limit answers 429. */
async function failUntilThrottled(from: string, forwardedFor: (i: number) => string): Promise<number> {
  for (let i = 0; i < 40; i++) {
    const r = await login(from, `nobody${from}-${i}`, 'wrong', { 'x-forwarded-for': forwardedFor(i) });
    if (r.status === 429) return i;
    expect(r.status).toBe(401);
  }
  throw new Error('never throttled');
}

describe('serve --trust-proxy', () => {
  it('believes X-Forwarded-Proto from the listed proxy only: the session cookie is Secure through it', async () => {
    const password = firstAdminPassword(dataDir);
    const viaProxy = await login('127.0.0.1', 'admin', password, { 'x-forwarded-for': '198.51.100.9', 'x-forwarded-proto': 'https' });
    expect(viaProxy.status).toBe(200);
    expect(viaProxy.cookie).toMatch(/; Secure/);
    const direct = await login('127.0.0.2', 'admin', password, { 'x-forwarded-for': '198.51.100.9', 'x-forwarded-proto': 'https' });
    expect(direct.status).toBe(200);
    expect(direct.cookie).not.toMatch(/Secure/);
    const plain = await login('127.0.0.1', 'admin', password, { 'x-forwarded-for': '198.51.100.9' });
    expect(plain.cookie).not.toMatch(/Secure/);
  });

  it('through the trusted proxy the throttle counts the forwarded client, not the proxy', async () => {
    // The same forwarded client each time: blocked after the address limit (20).
    expect(await failUntilThrottled('127.0.0.1', () => '198.51.100.1')).toBe(20);
    // The proxy's other clients still log in (the proxy itself was never counted).
    expect((await login('127.0.0.1', 'nobody-else', 'wrong', { 'x-forwarded-for': '198.51.100.2' })).status).toBe(401);
    expect((await login('127.0.0.1', 'admin', firstAdminPassword(dataDir), { 'x-forwarded-for': '198.51.100.2' })).status).toBe(200);
    // A chain: the client is the last address a listed proxy (10.0.0.0/8) did not add.
    expect((await login('127.0.0.1', 'nobody-chained', 'wrong', { 'x-forwarded-for': '198.51.100.1, 10.1.2.3' })).status).toBe(429);
  });

  it('from an untrusted address X-Forwarded-For is ignored: a new header each time does not escape the throttle', async () => {
    expect(await failUntilThrottled('127.0.0.2', (i) => `203.0.113.${i + 1}`)).toBe(20);
    expect((await login('127.0.0.2', 'admin', firstAdminPassword(dataDir), { 'x-forwarded-for': '203.0.113.200' })).status).toBe(429);
    // The trusted proxy's clients are not affected.
    expect((await login('127.0.0.1', 'admin', firstAdminPassword(dataDir), { 'x-forwarded-for': '198.51.100.3' })).status).toBe(200);
  });

  it('refuses a --trust-proxy that is not an address or range, naming the flag', async () => {
    const r = await runBorgkeep(['--data-dir', join(root, 'other'), 'serve', '--ssh-listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--trust-proxy', '127.0.0.1,proxy.example'], {});
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("--trust-proxy: 'proxy.example' is not an address, an address/prefix range or one of loopback, linklocal, uniquelocal");
  });
});
