// `borgkeep serve --vault-passphrase-file F` (the built CLI): the first start seals the vault with
// the master passphrase; the running server's API hands a key over into it (serve's own vault, the
// only process holding the passphrase); a wrong master passphrase, none at all, or one given to a
// data directory whose vault uses its master key file stop serve with one sentence before it listens.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { BORGKEEP, runBorgkeep } from '../cli/cli-harness.js';
import { firstAdminPassword } from '../helpers/first-admin.js';

const root = mkdtempSync(join(tmpdir(), 'borgkeep-serve-vault-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

interface Served {
  child: ChildProcess;
  url: string;
  stdout: () => string;
  stop(): Promise<number | null>;
}

async function serve(dataDir: string, extra: string[]): Promise<Served> {
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
      if (m && /one-time password|key vault/.test(out)) {
        clearInterval(poll);
        clearTimeout(timer);
        resolve(m[1]!);
      }
    }, 50);
    child.on('exit', () => reject(new Error(`serve exited: ${err}`)));
  });
  return {
    child,
    url,
    stdout: () => out,
    stop: () =>
      new Promise((resolve) => {
        child.on('exit', (code) => resolve(code));
        child.kill('SIGTERM');
      }),
  };
}

const listenArgs = ['--ssh-listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0'];

describe('borgkeep serve --vault-passphrase-file', () => {
  it('seals the vault with the master passphrase, hands a key over through the API, and stops on a wrong passphrase with one sentence', async () => {
    const dataDir = join(root, 'data');
    const master = join(root, 'master');
    const wrong = join(root, 'wrong');
    writeFileSync(master, 'master passphrase one\n');
    writeFileSync(wrong, 'master passphrase two\n');
    await runBorgkeep(['--data-dir', dataDir, 'repo', 'create', 'rk']);
    const path = (JSON.parse((await runBorgkeep(['--data-dir', dataDir, 'repo', 'show', 'rk', '--json'])).stdout) as { path: string }).path;
    execFileSync('borg', ['init', '-e', 'repokey', path], { env: { ...process.env, BORG_PASSPHRASE: 'repo pass', BORG_BASE_DIR: join(root, 'base') }, stdio: 'pipe' });

    const served = await serve(dataDir, ['--vault-passphrase-file', master]);
    try {
      expect(served.stdout()).toContain('key vault: sealed with the master passphrase');
      const password = firstAdminPassword(dataDir);
      const login = await fetch(`${served.url}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'admin', password }) });
      const { csrfToken } = (await login.json()) as { csrfToken: string };
      const cookie = /^bk_session=[^;]*/.exec(login.headers.get('set-cookie')!)![0];
      const put = await fetch(`${served.url}/api/v1/repositories/rk/key`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', cookie, 'x-csrf-token': csrfToken },
        body: JSON.stringify({ passphrase: 'repo pass' }),
      });
      expect(put.status).toBe(200);
      expect(((await put.json()) as { repository: { keyHeld: boolean } }).repository.keyHeld).toBe(true);
    } finally {
      expect(await served.stop()).toBe(0);
    }
    expect(existsSync(join(dataDir, 'vault-master.key'))).toBe(false);
    expect(readdirSync(join(dataDir, 'vault')).filter((n) => !n.startsWith('.'))).toHaveLength(1);
    // The CLI sees the key as held without the master passphrase (nothing secret needed for that).
    expect(JSON.parse((await runBorgkeep(['--data-dir', dataDir, 'repo', 'show', 'rk', '--json'])).stdout).keyHeld).toBe(true);

    const bad = await runBorgkeep(['--data-dir', dataDir, 'serve', ...listenArgs, '--vault-passphrase-file', wrong]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe("borgkeep: the master passphrase is wrong: it does not open this data directory's key vault\n");
    expect(bad.stdout).not.toContain('listening');

    const none = await runBorgkeep(['--data-dir', dataDir, 'serve', ...listenArgs]);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/^borgkeep: this data directory's key vault is sealed with a master passphrase: start serve with --vault-passphrase-file FILE .*\n$/);
    expect(none.stdout).not.toContain('listening');

    const missing = await runBorgkeep(['--data-dir', dataDir, 'serve', ...listenArgs, '--vault-passphrase-file', join(root, 'nothing')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(`borgkeep: cannot read the vault passphrase file ${join(root, 'nothing')}: there is no such file\n`);
  }, 120_000);

  it('refuses a master passphrase for a data directory whose vault uses its master key file', async () => {
    const dataDir = join(root, 'keyfile-data');
    const master = join(root, 'm2');
    writeFileSync(master, 'x\n');
    await runBorgkeep(['--data-dir', dataDir, 'repo', 'create', 'rk']);
    // The default mode's key file appears with the first key handed over; made here directly.
    const { openVault } = await import('../../src/vault/vault.js');
    openVault(dataDir).put('0000000000000000', { passphrase: 'p', keyFile: null });
    const r = await runBorgkeep(['--data-dir', dataDir, 'serve', ...listenArgs, '--vault-passphrase-file', master]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^borgkeep: this data directory's key vault is sealed with its master key file \(vault-master\.key\), not a master passphrase; .*\n$/);
  });
});
