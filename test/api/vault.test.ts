// The key vault over the HTTP API: PUT/DELETE /repositories/:name/key (admin only), keyHeld in the
// repository answers, bad input in one sentence with nothing stored, and the passphrase in no
// answer, no log line (the server's pino logger at its most verbose, as serve runs it) and no byte
// of the data directory except, sealed, the vault entry — and not even that after DELETE.

import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';

import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { startApi, type ApiClient, type ApiHarness } from './api-harness.js';

const PASS = 'api vault passphrase ✓ 0042';
let h: ApiHarness;
let admin: ApiClient;
let operator: ApiClient;
let keyFileText: string;
let logText = '';
const answers: string[] = [];

function borgInit(repo: string, mode: string, keysDir: string): void {
  execFileSync('borg', ['init', '-e', mode, repo], {
    env: { ...process.env, BORG_PASSPHRASE: PASS, BORG_BASE_DIR: join(keysDir, '..', 'base'), BORG_KEYS_DIR: keysDir },
    stdio: 'pipe',
  });
}

async function call(c: ApiClient, method: string, path: string, body?: unknown) {
  const r = await c.call(method, `/api/v1${path}`, body);
  answers.push(JSON.stringify(r.body ?? null));
  return r;
}

function encodings(secret: string): string[] {
  const u = Buffer.from(secret, 'utf8');
  return [secret, u.toString('hex'), u.toString('base64'), u.toString('base64url'), JSON.stringify(secret).slice(1, -1)];
}

beforeAll(async () => {
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logText += chunk.toString();
      done();
    },
  });
  h = await startApi({ logger: pino({ level: 'trace' }, sink) });
  admin = await h.userClient('ann', 'admin');
  operator = await h.userClient('olga', 'operator');
  const keysDir = join(h.temp.root, 'client-keys');
  mkdirSync(keysDir);
  for (const [name, mode] of [['rk', 'repokey'], ['kf', 'keyfile']] as const) {
    await h.temp.store.createRepository({ name, quotaBytes: null });
    borgInit(h.temp.store.paths.repository((await h.temp.store.getRepository(name)).dirName), mode, keysDir);
  }
  keyFileText = readFileSync(join(keysDir, readdirSync(keysDir)[0]!), 'utf8');
}, 60_000);
afterAll(() => h?.close());

describe('PUT and DELETE /repositories/:name/key', () => {
  it('says whether the key is held, refuses non-admins and wrong material in one sentence, and stores nothing then', async () => {
    expect((await call(admin, 'GET', '/repositories/rk')).body.repository.keyHeld).toBe(false);
    const asOperator = await call(operator, 'PUT', '/repositories/rk/key', { passphrase: PASS });
    expect(asOperator.status).toBe(403);
    expect((await call(operator, 'DELETE', '/repositories/rk/key')).status).toBe(403);
    const wrong = await call(admin, 'PUT', '/repositories/rk/key', { passphrase: `${PASS}x` });
    expect(wrong.status).toBe(400);
    expect(wrong.body).toEqual({ code: 'BK_ERR_INVALID_INPUT', message: "the key of repository 'rk' was not stored: the passphrase is wrong" });
    const noKeyFile = await call(admin, 'PUT', '/repositories/kf/key', { passphrase: PASS });
    expect(noKeyFile.status).toBe(400);
    expect(noKeyFile.body.message).toMatch(/give its key file/);
    expect((await call(admin, 'PUT', '/repositories/nosuch/key', { passphrase: PASS })).status).toBe(404);
    expect((await call(admin, 'PUT', '/repositories/rk/key', { passphrase: PASS, extra: 1 })).status).toBe(400);
    // A body that is not JSON (with the passphrase in it) is refused without echoing it.
    const r = await fetch(`${h.url}/api/v1/repositories/rk/key`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', cookie: admin.cookie!, 'x-csrf-token': admin.csrf! },
      body: `{"passphrase": "${PASS}"`,
    });
    expect(r.status).toBe(400);
    answers.push(await r.text());
    expect(readdirSync(h.temp.dataDir)).not.toContain('vault');
    expect((await call(admin, 'GET', '/repositories/rk')).body.repository.keyHeld).toBe(false);
  });

  it('holds a repokey and a keyfile key after checking them, shows keyHeld, and forgets them without a trace', async () => {
    const put = await call(admin, 'PUT', '/repositories/rk/key', { passphrase: PASS });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ mode: 'repokey', archives: 0, repository: { name: 'rk', keyHeld: true } });
    const kf = await call(admin, 'PUT', '/repositories/kf/key', { passphrase: PASS, keyFile: keyFileText });
    expect(kf.status).toBe(200);
    expect(kf.body.mode).toBe('keyfile');
    const list = await call(admin, 'GET', '/repositories');
    expect(Object.fromEntries(list.body.repositories.map((r: { name: string; keyHeld: boolean }) => [r.name, r.keyHeld]))).toEqual({ rk: true, kf: true });
    // A viewer sees whether the key is held, never anything of it.
    const viewer = await h.userClient('vic', 'viewer');
    expect((await call(viewer, 'GET', '/repositories/kf')).body.repository.keyHeld).toBe(true);

    const del = await call(admin, 'DELETE', '/repositories/rk/key');
    expect(del.status).toBe(200);
    expect(del.body).toMatchObject({ forgotten: true, repository: { keyHeld: false } });
    expect((await call(admin, 'DELETE', '/repositories/rk/key')).body.forgotten).toBe(false);
    expect((await call(admin, 'DELETE', '/repositories/kf/key')).body.forgotten).toBe(true);
    expect(readdirSync(join(h.temp.dataDir, 'vault'))).toEqual([]);
  });

  it('never puts the passphrase or the key file into an answer, a log line or the data directory', async () => {
    expect(logText).toContain('/repositories/rk/key'); // the log did see these requests
    const secrets = [...encodings(PASS), ...keyFileText.split('\n').filter((l) => l.length > 20)];
    for (const s of secrets) {
      expect(logText).not.toContain(s);
      for (const a of answers) expect(a).not.toContain(s);
    }
    const files = readdirSync(h.temp.dataDir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile());
    for (const f of files) {
      const bytes = readFileSync(join(f.parentPath, f.name));
      for (const s of secrets) expect(bytes.includes(Buffer.from(s)), `${f.name} holds a secret`).toBe(false);
      expect(bytes.includes(Buffer.from(PASS, 'utf16le'))).toBe(false);
    }
  });
});
