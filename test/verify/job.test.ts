// The daily verify job in a running `borgkeep serve` (the real borg client through its embedded
// gateway): it verifies the repositories whose key borgkeep holds and the unencrypted ones, leaves
// out an encrypted one whose key it does not hold, reads only what is new on its next run, and
// its finding becomes an alert of the running server. Verification while a backup to the same
// repository is writing reads only committed data: it is intact, never "damaged".

import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';

import { PASSPHRASE, createBorgkeepEnv, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { firstAdminPassword } from '../helpers/first-admin.js';
import { chunksOf, flipBit, verifyJson } from './verify-fixture.js';

let env: BorgkeepEnv;
let api: (method: string, path: string) => Promise<{ status: number; body: any }>;
let fetchJson: (method: string, path: string, body: unknown) => Promise<{ status: number; body: any }>;

function tree(name: string, size: number): string {
  const dir = join(env.root, 'src', name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'data.bin'), randomBytes(size));
  return dir;
}

async function backup(repo: string, archive: string, size: number): Promise<void> {
  const r = await env.borg('admin', ['create', `${env.url(repo)}::${archive}`, tree(`${repo}-${archive}`, size)]);
  expect(r.code, r.stderr).toBe(0);
}

beforeAll(async () => {
  env = createBorgkeepEnv('verify-job', 'embedded');
  await env.repoWithKeys('plain', { admin: 'full' });
  for (const repo of ['sealed', 'keyless']) {
    await env.cliOk(['repo', 'create', repo]);
    await env.cliOk(['grant', 'admin', repo, '--role', 'full']);
  }
  const front = await env.frontEnd();
  const http = /HTTP API listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(front.log())?.[1] ?? '';
  expect(http).not.toBe('');
  for (const [repo, mode] of [['plain', 'none'], ['sealed', 'repokey-blake2'], ['keyless', 'repokey']]) {
    expect((await env.borg('admin', ['init', '-e', mode!, env.url(repo!)])).code).toBe(0);
    await backup(repo!, 'one', 200_000);
  }
  const pass = join(env.root, 'passphrase');
  writeFileSync(pass, `${PASSPHRASE}\n`, { mode: 0o600 });
  await env.cliOk(['repo', 'key', 'sealed', '--passphrase-file', pass]);
  const login = await fetch(`${http}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'admin', password: firstAdminPassword(env.dataDir) }) });
  expect(login.status).toBe(200);
  const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
  const { csrfToken } = (await login.json()) as { csrfToken: string };
  fetchJson = (method, path, body) =>
    fetch(`${http}/api/v1${path}`, { method, headers: { cookie, 'x-csrf-token': csrfToken, 'content-type': 'application/json' }, body: JSON.stringify(body) }).then(async (r) => ({ status: r.status, body: await r.json() }));
  api = (method, path) => fetch(`${http}/api/v1${path}`, { method, headers: { cookie, 'x-csrf-token': csrfToken } }).then(async (r) => ({ status: r.status, body: await r.json() }));
});
afterAll(() => env?.cleanup());

const runJob = async (name: string) => {
  const r = await api('POST', `/jobs/${name}/run`);
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body.job as { lastResult: string; lastDetail: string };
};

test('the daily job verifies what it can, then only what is new, and its damage becomes an alert', async () => {
  const first = await runJob('verify');
  expect(first.lastResult).toBe('ok');
  expect(first.lastDetail).toMatch(/^plain: intact \(\d+ objects\), sealed: intact \(\d+ objects\)$/);

  await backup('sealed', 'two', 150_000);
  const repoPath = await env.repoPath('sealed');
  const [chunk] = await chunksOf(repoPath, 'two', 'data.bin');
  flipBit(repoPath, chunk!);
  const second = await runJob('verify');
  // plain received nothing: nothing read. sealed: only archive two's objects.
  expect(second.lastDetail).toBe('plain: intact (0 objects), sealed: damaged (1 finding)');
  await runJob('alerts-state');
  const alerts = await api('GET', '/alerts?state=open');
  expect(alerts.body.alerts).toEqual([expect.objectContaining({ rule: 'verify-damage', severity: 'critical', summary: "verification found damage in 'sealed', affecting archive two" })]);
  flipBit(repoPath, chunk!); // repaired for the next test
});

test('the API runs a verification and shows the newest; what it cannot verify is a 409 with one sentence', async () => {
  const run = await api('POST', '/repositories/sealed/verify');
  expect(run.status).toBe(400); // a body is required: {} or {all}
  const all = await fetchJson('POST', '/repositories/sealed/verify', { all: true });
  expect(all.status, JSON.stringify(all.body)).toBe(200);
  expect(all.body.report).toMatchObject({ repository: 'sealed', verdict: 'intact', scope: 'all', findings: [] });
  expect(all.body.report.archivesChecked.sort()).toEqual(['one', 'two']);
  const shown = await api('GET', '/repositories/sealed/verification');
  expect(shown.body.verification).toMatchObject({ scope: 'all', verdict: 'intact', actor: 'admin', objectsRead: all.body.report.objectsRead });
  expect((await api('GET', '/repositories/keyless/verification')).body.verification).toBeNull();
  const keyless = await fetchJson('POST', '/repositories/keyless/verify', {});
  expect(keyless.status).toBe(409);
  expect(keyless.body.message).toBe("could not verify 'keyless': the repository is encrypted (repokey) and borgkeep holds no key for it: hand it over with 'borgkeep repo key'");
  // The full run found the repaired repository intact: the alert is resolved.
  await runJob('alerts-state');
  expect((await api('GET', '/alerts?state=open')).body.alerts).toEqual([]);
});

test('verification while a backup to the same repository writes reads only committed data', async () => {
  const writing = backup('plain', 'big', 40_000_000);
  const runs: number[] = [];
  const through: number[] = [];
  // Several runs while the backup's segments are being written, and its commit lands.
  for (let i = 0; i < 4; i++) {
    const { code, report } = await verifyJson(env, 'plain');
    runs.push(code);
    through.push(report.throughTxn);
    expect(report.findings).toEqual([]);
  }
  await writing;
  const after = await verifyJson(env, 'plain');
  // The first run was before the backup's commit (the runs overlapped the writing).
  expect(through[0]).toBeLessThan(after.report.throughTxn);
  expect([...runs, after.code]).toEqual([0, 0, 0, 0, 0]);
  expect(after.report.verdict).toBe('intact');
  expect((await verifyJson(env, 'plain', ['--all'])).report.archivesChecked.sort()).toEqual(['big', 'one']);
});
