// `borgkeep serve` (the built CLI) with the HTTP API: the first start on an empty store creates
// `admin` and, stderr being no terminal here, writes its one-time password to a file of the data
// directory with mode 0600 (never on stdout or stderr, never in a log line; the log says where),
// later starts write none; the printed password logs in; HTTPS with --tls-cert/--tls-key sets Secure cookies;
// SIGTERM closes both servers.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BORGKEEP } from '../cli/cli-harness.js';
import { firstAdminPassword } from '../helpers/first-admin.js';

const root = mkdtempSync(join(tmpdir(), 'borgkeep-serve-api-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

interface Served {
  child: ChildProcess;
  url: string;
  stdout: () => string;
  stderr: () => string;
  stop(): Promise<number | null>;
}

async function serve(dataDir: string, extra: string[] = []): Promise<Served> {
  const child = spawn(process.execPath, [BORGKEEP, '--data-dir', dataDir, 'serve', '--ssh-listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', ...extra], {
    env: { ...process.env, BORGKEEP_DATA_DIR: undefined },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${out}${err}`)), 20_000);
    const poll = setInterval(() => {
      const m = /HTTP API listening on (\S+)\/api\/v1/.exec(out);
      if (m) {
        clearInterval(poll);
        clearTimeout(timer);
        // The lines after it (the password) come in the same write.
        resolve(m[1]!);
      }
    }, 50);
    child.on('exit', () => reject(new Error(`serve exited: ${err}`)));
  });
  return {
    child,
    url,
    stdout: () => out,
    stderr: () => err,
    stop: () =>
      new Promise((resolve) => {
        child.on('exit', (code) => resolve(code));
        child.kill('SIGTERM');
      }),
  };
}

const login = (url: string, name: string, password: string) =>
  fetch(`${url}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, password }) });

describe('borgkeep serve with the HTTP API', () => {
  it('creates admin on the first start, writes its password to a 0600 file, says where in the log, and never prints or logs it', async () => {
    const dataDir = join(root, 'first');
    const first = await serve(dataDir);
    const file = join(dataDir, 'first-admin-password');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const password = firstAdminPassword(dataDir);
    expect(password).toMatch(/^[A-Za-z0-9_-]{20}$/);
    const r = await login(first.url, 'admin', password);
    expect(r.status).toBe(200);
    expect(((await r.json()) as { user: unknown }).user).toMatchObject({ name: 'admin', role: 'admin' });
    expect(first.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(await first.stop()).toBe(0);
    const logLines = first.stdout().split('\n').filter((l) => l.startsWith('{'));
    expect(logLines.length).toBeGreaterThan(0);
    // One log line tells where the password is, without it.
    const told = logLines.map((l) => JSON.parse(l) as { event?: string; passwordFile?: string; msg: string }).filter((l) => l.event === 'first-admin');
    expect(told).toHaveLength(1);
    expect(told[0].passwordFile).toBe(file);
    expect(told[0].msg).toContain(`its one-time password is in ${file} (mode 0600)`);
    expect(first.stdout()).not.toContain(password);
    expect(first.stderr()).not.toContain(password);
    expect(readFileSync(join(dataDir, 'borgkeep.db')).includes(Buffer.from(password))).toBe(false);

    rmSync(file);
    const second = await serve(dataDir);
    expect(existsSync(file)).toBe(false);
    expect(second.stdout()).not.toContain('one-time password');
    expect((await login(second.url, 'admin', password)).status).toBe(200);
    expect(await second.stop()).toBe(0);
  });

  it('serves HTTPS with a certificate and key, and its session cookie is Secure', async () => {
    const dir = join(root, 'tls');
    execFileSync('mkdir', ['-p', dir]);
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'pipe' });
    const served = await serve(join(dir, 'data'), ['--tls-cert', cert, '--tls-key', key]);
    expect(served.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const password = firstAdminPassword(join(dir, 'data'));
    const response = await new Promise<{ status: number; cookie: string }>((resolve, reject) => {
      const req = request(`${served.url}/api/v1/session`, { method: 'POST', ca: readFileSync(cert), headers: { 'content-type': 'application/json' } }, (res) => {
        res.resume();
        resolve({ status: res.statusCode!, cookie: String(res.headers['set-cookie']) });
      });
      req.on('error', reject);
      req.end(JSON.stringify({ name: 'admin', password }));
    });
    expect(response.status).toBe(200);
    expect(response.cookie).toMatch(/; HttpOnly; Secure; SameSite=Strict$/);
    expect(await served.stop()).toBe(0);
  });

  it('refuses a missing key file and a lone certificate with one sentence', async () => {
    const { runBorgkeep } = await import('../cli/cli-harness.js');
    const lone = await runBorgkeep(['--data-dir', join(root, 'x'), 'serve', '--tls-cert', 'c.pem']);
    expect(lone.code).toBe(1);
    expect(lone.stderr).toBe('borgkeep: give --tls-cert and --tls-key together\n');
    const missing = await runBorgkeep(['--data-dir', join(root, 'x'), 'serve', '--ssh-listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--tls-cert', join(root, 'no.pem'), '--tls-key', join(root, 'no.key')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(`borgkeep: --tls-cert: cannot read ${join(root, 'no.pem')}: there is no such file\n`);
  });
});
