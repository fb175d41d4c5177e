// The promise borgkeep makes, end to end with the stock borg client: a hacked client cannot destroy
// history, and a routine compaction from a trusted machine cannot make its damage permanent.
//
// 1. Good backups, an audit clean with the passphrase. Then the compromised `append` client drops
//    an archive from the manifest (`borg delete --force --force`) and forges one under its name.
//    A `full` key's `borg compact` is carried out (those transactions deleted nothing older), yet
//    the audit still names both from the manifest versions borgkeep kept, and `rollback` gives
//    back the original archive list and `borg extract` the original contents.
// 2. A stolen `prune` key deletes an archive: its removal is unverified, so the compaction is
//    deferred and nothing is lost; after review it goes through.

import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { PASSPHRASE, createBorgkeepEnv, type BorgkeepEnv } from '../helpers/borgkeep-env.js';

interface JsonTxn {
  id: number;
  verdict: string;
  role: string | null;
  key: string | null;
  reasons: string[];
  compacted: boolean;
  archivesAdded: string[] | null;
  archivesRemoved: string[] | null;
}
interface JsonReport {
  verdict: string;
  firstSuspiciousTransaction: number | null;
  lastKnownGoodTransaction: number | null;
  transactions: JsonTxn[];
}

let env: BorgkeepEnv;

async function borgOk(key: string, args: string[], opts: { cwd?: string } = {}) {
  const r = await env.borg(key, args, opts);
  expect(r.code, `borg ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r;
}
const writeFiles = (dir: string, content: string) => {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'payroll.csv'), content.repeat(500));
};
async function audit(repo: string): Promise<{ code: number; report: JsonReport }> {
  const r = await env.cli(['audit', repo, '--json'], { env: { ...process.env, BORG_PASSPHRASE: PASSPHRASE, BORGKEEP_DATA_DIR: undefined } });
  expect(r.stderr).toBe('');
  return { code: r.code, report: JSON.parse(r.stdout) as JsonReport };
}
const archiveIds = async (repo: string) =>
  (JSON.parse((await borgOk('admin', ['list', '--json', env.url(repo)])).stdout) as { archives: Array<{ name: string; id: string }> }).archives
    .map((a) => `${a.name} ${a.id}`)
    .sort();
const segments = async (repo: string) => {
  const data = join(await env.repoPath(repo), 'data');
  return readdirSync(data).flatMap((d) => readdirSync(join(data, d)).map((s) => `${d}/${s}`));
};
/** What a client does after a rollback: forget its cache and the manifest timestamp it saw. */
async function forgetClientState(repo: string): Promise<void> {
  await borgOk('admin', ['delete', '--cache-only', env.url(repo)]);
  const security = join(env.root, 'client', '.config', 'borg', 'security');
  for (const id of readdirSync(security)) rmSync(join(security, id, 'manifest-timestamp'), { force: true });
}

beforeAll(async () => {
  env = createBorgkeepEnv('seed-scenario');
  await env.repoWithKeys('main', { admin: 'full', laptop: 'append' });
  await env.cliOk(['repo', 'create', 'second']);
  await env.addKey('thief');
  for (const [key, role] of [['admin', 'full'], ['laptop', 'append'], ['thief', 'prune']]) await env.cliOk(['grant', key!, 'second', '--role', role!]);
});
afterAll(() => env?.cleanup());

describe('a hacked append client, then a routine compaction', () => {
  const src = () => join(env.root, 'src-main');
  let original: string[];
  let lastGood: number;

  test('good backups, audited clean with the passphrase', async () => {
    await borgOk('admin', ['init', '-e', 'repokey', env.url('main')]);
    writeFiles(src(), 'alice,5000\n');
    await borgOk('laptop', ['create', `${env.url('main')}::monday`, src()]);
    writeFiles(src(), 'alice,5000\nbob,4000\n');
    await borgOk('laptop', ['create', `${env.url('main')}::tuesday`, src()]);
    original = await archiveIds('main');
    const { code, report } = await audit('main');
    expect(code).toBe(0);
    lastGood = report.transactions.at(-1)!.id;
  });

  test('the attack, then borg compact with the full key: carried out, since the append transactions deleted nothing older', async () => {
    await borgOk('laptop', ['delete', '--force', '--force', `${env.url('main')}::monday`]);
    writeFiles(src(), 'alice,5000\nmallory,99000\n');
    await borgOk('laptop', ['create', `${env.url('main')}::monday`, src()]);
    expect((await archiveIds('main')).map((a) => a.split(' ')[0])).toEqual(['monday', 'tuesday']);
    const before = await segments('main');
    const r = await borgOk('admin', ['compact', env.url('main')]);
    expect(r.stderr).not.toContain('deferred');
    const after = await segments('main');
    expect(before.filter((s) => !after.includes(s)).length).toBeGreaterThan(0);
  });

  test('the audit still names both transactions, from the manifest versions borgkeep kept', async () => {
    const { code, report } = await audit('main');
    expect(code).toBe(1);
    const drop = report.transactions.find((t) => t.archivesRemoved?.includes('monday'));
    const forged = report.transactions.find((t) => t.id > (drop?.id ?? Infinity) && t.archivesAdded?.includes('monday'));
    expect(drop).toMatchObject({ verdict: 'suspicious', role: 'append', key: 'laptop', compacted: true });
    expect(drop!.reasons).toContain('a session with the append role removed monday');
    expect(forged).toMatchObject({ role: 'append', compacted: true });
    expect(report.firstSuspiciousTransaction).toBe(drop!.id);
    expect(report.lastKnownGoodTransaction).toBe(lastGood);
  });

  test('rollback gives back the original archive list, and borg extract the original contents', async () => {
    const r = await env.cli(['rollback', 'main', '--to', String(lastGood), '--yes']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`rolled 'main' back to the archive list of transaction ${lastGood}: borgkeep wrote its kept manifest back as transaction \\d+`));
    await forgetClientState('main');
    expect(await archiveIds('main')).toEqual(original);
    const out = join(env.root, 'restore-main');
    mkdirSync(out);
    await borgOk('admin', ['extract', `${env.url('main')}::monday`], { cwd: out });
    expect(readFileSync(join(out, src().slice(1), 'payroll.csv'), 'utf8')).toBe('alice,5000\n'.repeat(500));
    await borgOk('admin', ['check', '--repository-only', env.url('main')]);
    // The forged archive's objects are no longer referenced: borg calls them orphans (a warning,
    // exit 1), and nothing else is wrong. `borg check --repair` would delete them.
    const check = await env.borg('admin', ['check', '--archives-only', env.url('main')]);
    expect(check.stderr).toMatch(/^\d+ orphaned objects found!\nArchive consistency check complete, problems found\.\n$/);
    // The audit attributes the rewritten manifest to the rollback and does not call it suspicious.
    const { report } = await audit('main');
    const restore = report.transactions.at(-1)!;
    expect(restore.verdict).not.toBe('suspicious');
    expect(restore.reasons.join(' ')).toMatch(/rollback by .* wrote back an earlier manifest/);
    // The forged archive's objects are orphans, and the laptop's next backup would put some of
    // them again (refused as an overwrite): after review, borg check --repair deletes them.
    expect(r.stdout).toContain("run 'borg check --repair' with a full key");
    await env.cliOk(['approve', 'main', '--yes']);
    const repair = await env.borg('admin', ['check', '--repair', env.url('main')], { env: { BORG_CHECK_I_KNOW_WHAT_I_AM_DOING: 'YES' } });
    expect(repair.code, repair.stderr).toBe(0);
    await borgOk('laptop', ['create', `${env.url('main')}::wednesday`, src()]);
    expect((await archiveIds('main')).map((a) => a.split(' ')[0])).toEqual(['monday', 'tuesday', 'wednesday']);
  });
});

describe('a stolen prune key deletes an archive', () => {
  const src = () => join(env.root, 'src-second');

  test('its removal is unverified: the compaction is deferred and nothing is lost; after review it goes through', async () => {
    await borgOk('admin', ['init', '-e', 'repokey', env.url('second')]);
    for (const [i, name] of ['a', 'b', 'c'].entries()) {
      writeFiles(src(), `row ${i}\n`);
      await borgOk('laptop', ['create', `${env.url('second')}::${name}`, src()]);
    }
    expect((await audit('second')).code).toBe(0);
    await borgOk('thief', ['delete', `${env.url('second')}::a`]);
    const before = await segments('second');
    const r = await borgOk('admin', ['compact', env.url('second')]);
    expect(r.stderr).toMatch(/borgkeep: compaction deferred: transaction \d+ \(session \d+, key 'thief', prune role\) deleted \d+ objects? written by earlier sessions/);
    const after = await segments('second');
    expect(before.filter((s) => !after.includes(s))).toEqual([]);
    // The audit names what the prune key removed; a rollback could still bring it back.
    const { report } = await audit('second');
    const removal = report.transactions.find((t) => t.archivesRemoved?.includes('a'));
    expect(removal).toMatchObject({ role: 'prune', key: 'thief', compacted: false });
    // The admin reviews it (the owner pruned on purpose) and approves: compaction goes through.
    await env.cliOk(['approve', 'second', '--yes']);
    const done = await borgOk('admin', ['compact', env.url('second')]);
    expect(done.stderr).not.toContain('deferred');
    const compacted = await segments('second');
    expect(after.filter((s) => !compacted.includes(s)).length).toBeGreaterThan(0);
  });
});
