// Archive checks in a running `borgkeep serve` (the real borg client through its embedded gateway,
// a repokey-blake2 repository whose key the vault holds): after a first backup of three machines,
// an ordinary daily backup (a few files changed, a couple added) passes without an alert; a backup
// missing an expected path, and one where most files were rewritten with random bytes, each
// fail, raise an `archive-check` alert naming the repository, the archive and each failed rule,
// and are marked in the API's archive list and in `borgkeep archives --json`. Setting the rules
// with a bad value is one sentence, the same from the CLI and the API. Deleting a failed archive
// ends its alert; the first look at a repository with older archives skips all but the newest of
// each prefix.

import { randomBytes } from 'node:crypto';
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';

import { PASSPHRASE, createBorgkeepEnv, run, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { firstAdminPassword } from '../helpers/first-admin.js';

let env: BorgkeepEnv;
let call: (method: string, path: string, body?: unknown) => Promise<{ status: number; body: any }>;

const DATA_FILES = 30;

/** One machine's files: /etc/passwd, two homes, and some data. */
function machine(name: string): string {
  const dir = join(env.root, 'machines', name);
  mkdirSync(join(dir, 'etc'), { recursive: true });
  writeFileSync(join(dir, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  for (const user of ['alice', 'bob']) {
    mkdirSync(join(dir, 'home', user), { recursive: true });
    writeFileSync(join(dir, 'home', user, 'notes.txt'), `notes of ${user}\n`.repeat(200));
  }
  mkdirSync(join(dir, 'data'), { recursive: true });
  for (let i = 0; i < DATA_FILES; i++) writeFileSync(join(dir, 'data', `file-${i}.bin`), randomBytes(20_000));
  return dir;
}

async function backup(dir: string, archive: string): Promise<void> {
  // From the machine's top, so the archive holds etc/passwd as borg stores /etc/passwd.
  const r = await env.borg('admin', ['create', `${env.url('srv')}::${archive}`, 'etc', 'home', 'data'], { cwd: dir });
  expect(r.code, r.stderr).toBe(0);
}

async function runJob(name: string): Promise<string> {
  const r = await call('POST', `/jobs/${name}/run`);
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  expect(r.body.job.lastResult, r.body.job.lastDetail).toBe('ok');
  return r.body.job.lastDetail as string;
}

/** The API's archive list once every archive has a verdict (a timer run may have been under way). */
async function checkedArchives(): Promise<Map<string, any>> {
  for (let attempt = 0; ; attempt++) {
    await runJob('archive-checks');
    const r = await call('GET', '/repositories/srv/archives');
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const archives = r.body.archives as any[];
    if (archives.every((a) => a.check !== null) || attempt === 3) return new Map(archives.map((a) => [a.name, a.check]));
  }
}

const dirs: Record<string, string> = {};

beforeAll(async () => {
  env = createBorgkeepEnv('checks-alerts', 'embedded');
  await env.repoWithKeys('srv', { admin: 'full' });
  const front = await env.frontEnd();
  const http = /HTTP API listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(front.log())?.[1] ?? '';
  expect(http).not.toBe('');
  expect((await env.borg('admin', ['init', '-e', 'repokey-blake2', env.url('srv')])).code).toBe(0);
  const pass = join(env.root, 'passphrase');
  writeFileSync(pass, `${PASSPHRASE}\n`, { mode: 0o600 });
  await env.cliOk(['repo', 'key', 'srv', '--passphrase-file', pass]);
  await env.cliOk(['repo', 'checks', 'srv', '--require', 'etc/passwd', '--require', 'home/*/', '--max-count-change', '30', '--max-size-change', '50', '--max-changed', '50', '--max-new-data', '50']);
  const login = await fetch(`${http}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'admin', password: firstAdminPassword(env.dataDir) }) });
  expect(login.status).toBe(200);
  const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
  const { csrfToken } = (await login.json()) as { csrfToken: string };
  call = (method, path, body) =>
    fetch(`${http}/api/v1${path}`, { method, headers: { cookie, 'x-csrf-token': csrfToken, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body) }).then(async (r) => ({ status: r.status, body: await r.json() }));
  for (const m of ['daily', 'lost', 'crypt']) {
    dirs[m] = machine(m);
    await backup(dirs[m]!, `${m}-2026-12-05`);
  }
});
afterAll(() => env?.cleanup());

test('the first backups pass: readable, every required path, nothing earlier to compare with', async () => {
  const checks = await checkedArchives();
  for (const m of ['daily', 'lost', 'crypt']) {
    expect(checks.get(`${m}-2026-12-05`)).toMatchObject({ verdict: 'passed', findings: [], comparedWith: null, notes: [`no earlier archive with the prefix '${m}' to compare with`] });
  }
  await runJob('alerts-state');
  expect((await call('GET', '/alerts?state=open')).body.alerts.filter((a: { rule: string }) => a.rule === 'archive-check')).toEqual([]);
});

test('an ordinary daily backup passes; a missing path and a rewrite with random bytes each raise an alert and mark the archive', async () => {
  // daily: three files changed, two added.
  for (let i = 0; i < 3; i++) writeFileSync(join(dirs.daily!, 'data', `file-${i}.bin`), randomBytes(20_000));
  writeFileSync(join(dirs.daily!, 'data', 'new-1.bin'), randomBytes(20_000));
  writeFileSync(join(dirs.daily!, 'home', 'alice', 'todo.txt'), 'buy milk\n');
  // lost: /etc/passwd is no longer backed up.
  rmSync(join(dirs.lost!, 'etc', 'passwd'));
  // crypt: every data file and every home file rewritten with random bytes, as ransomware would.
  for (let i = 0; i < DATA_FILES; i++) writeFileSync(join(dirs.crypt!, 'data', `file-${i}.bin`), randomBytes(20_000));
  for (const user of ['alice', 'bob']) writeFileSync(join(dirs.crypt!, 'home', user, 'notes.txt'), randomBytes(2_800));
  for (const m of ['daily', 'lost', 'crypt']) await backup(dirs[m]!, `${m}-2026-12-06`);

  const checks = await checkedArchives();
  expect(checks.get('daily-2026-12-06')).toMatchObject({ verdict: 'passed', findings: [], comparedWith: 'daily-2026-12-05' });
  expect(checks.get('lost-2026-12-06')).toMatchObject({
    verdict: 'failed',
    comparedWith: 'lost-2026-12-05',
    findings: [{ rule: 'required-path', sentence: "archive 'lost-2026-12-06' of 'srv' holds no path matching 'etc/passwd'." }],
  });
  const crypt = checks.get('crypt-2026-12-06');
  expect(crypt).toMatchObject({ verdict: 'failed', comparedWith: 'crypt-2026-12-05' });
  expect(crypt.findings.map((f: { rule: string }) => f.rule)).toEqual(['changed-files', 'new-data']);
  expect(crypt.findings[0].sentence).toMatch(/^archive 'crypt-2026-12-06' of 'srv' has 9\d(\.\d)? % of its files new or changed since 'crypt-2026-12-05' \(32 files of 33; at most 50 % allowed\)\.$/);
  expect(crypt.findings[1].sentence).toMatch(/^archive 'crypt-2026-12-06' of 'srv' has (9\d|100)(\.\d)? % of its data in chunks 'crypt-2026-12-05' did not have/);

  await runJob('alerts-state');
  const alerts = (await call('GET', '/alerts?state=open')).body.alerts.filter((a: { rule: string }) => a.rule === 'archive-check');
  expect(alerts.map((a: { severity: string; summary: string }) => [a.severity, a.summary]).sort()).toEqual([
    ['critical', "archive 'crypt-2026-12-06' of 'srv' failed its checks: changed files, new data"],
    ['warning', "archive 'lost-2026-12-06' of 'srv' failed its checks: missing paths"],
  ]);

  // The CLI's archive list marks them too.
  const listed = JSON.parse(await env.cliOk(['archives', 'srv', '--json'])) as { archives: Array<{ name: string; check: { verdict: string } | null }> };
  expect(Object.fromEntries(listed.archives.map((a) => [a.name, a.check?.verdict]))).toEqual({
    'daily-2026-12-05': 'passed',
    'lost-2026-12-05': 'passed',
    'crypt-2026-12-05': 'passed',
    'daily-2026-12-06': 'passed',
    'lost-2026-12-06': 'failed',
    'crypt-2026-12-06': 'failed',
  });
  const shown = await call('GET', '/repositories/srv/archive-checks');
  expect(shown.body.checks).toMatchObject({ passed: 4, failed: 2, skipped: 0 });
});

test('rules with a bad value are refused with one sentence, the same from the CLI and the API, and change nothing', async () => {
  const cli = await env.cli(['repo', 'checks', 'srv', '--max-changed', '150']);
  expect(cli.code).not.toBe(0);
  expect(cli.stderr.trim()).toBe("borgkeep: --max-changed must be a percentage from 0 to 100, not '150'");
  const api = await call('PUT', '/repositories/srv/archive-checks', { maxChanged: 150 });
  expect(api).toEqual({ status: 400, body: { code: 'BK_ERR_INVALID_INPUT', message: "--max-changed must be a percentage from 0 to 100, not '150'" } });
  const pattern = await env.cli(['repo', 'checks', 'srv', '--require', 'etc/[x']);
  expect(pattern.stderr.trim()).toBe("borgkeep: --require 'etc/[x' is not a path pattern: the pattern 'etc/[x' has a '[' without its ']'");
  const json = JSON.parse(await env.cliOk(['repo', 'checks', 'srv', '--json']));
  expect(json.rules).toMatchObject({ requiredPaths: ['etc/passwd', 'home/*/'], maxChanged: 50, maxNewData: 50, updatedBy: 'cli' });
  expect(json.description).toBe("be readable; hold paths matching 'etc/passwd' and 'home/*/'; keep its file count within 30 % of the previous archive's; keep its size within 50 % of the previous archive's; have at most 50 % of its files new or changed; have at most 50 % new data");
});

test('an archive that leaves the repository ends its alert; the first look at a repository checks only the newest archive of each prefix', async () => {
  const deleted = await env.borg('admin', ['delete', `${env.url('srv')}::lost-2026-12-06`]);
  expect(deleted.code, deleted.stderr).toBe(0);
  await runJob('archive-checks');
  await runJob('alerts-state');
  const open = (await call('GET', '/alerts?state=open')).body.alerts.filter((a: { rule: string }) => a.rule === 'archive-check');
  expect(open.map((a: { summary: string }) => a.summary)).toEqual(["archive 'crypt-2026-12-06' of 'srv' failed its checks: changed files, new data"]);

  // An unencrypted repository (read without a key) with archives made before the server looked:
  // written beside the data directory and moved into place at once, so no run of the job sees a part.
  await env.cliOk(['repo', 'create', 'old']);
  const local = join(env.root, 'old-repository');
  const borgHere = (args: string[]) => run('borg', args, { env: env.borgEnv('admin'), cwd: dirs.daily! });
  expect((await borgHere(['init', '-e', 'none', local])).code).toBe(0);
  for (const name of ['etc-1', 'etc-2', 'etc-3']) {
    const r = await borgHere(['create', `${local}::${name}`, 'etc']);
    expect(r.code, r.stderr).toBe(0);
  }
  const target = await env.repoPath('old');
  rmSync(target, { recursive: true, force: true });
  renameSync(local, target);
  await runJob('archive-checks');
  const listed = await call('GET', '/repositories/old/archives');
  // No key is held for it, so the API's list says why there is none; the CLI reads it without one.
  expect(listed.body.archives).toBeNull();
  const cli = JSON.parse(await env.cliOk(['archives', 'old', '--json'])) as { archives: Array<{ name: string; check: { verdict: string; notes: string[] } | null }> };
  expect(cli.archives.map((a) => [a.name, a.check?.verdict])).toEqual([
    ['etc-1', 'skipped'],
    ['etc-2', 'skipped'],
    ['etc-3', 'passed'],
  ]);
  expect(cli.archives[0]!.check!.notes).toEqual(['in the repository before its archives were first checked: not checked']);
});
