// The attack the audit exists for, with stock borg through an `append` key: the compromised
// client drops an archive from the manifest (`borg delete --force --force` rewrites only the
// manifest, which the append role may write) and creates a new archive under the same name with
// other content. `borg list` looks normal. The audit with the passphrase names the first bad
// transaction and the last good one; without it, it says which checks needed the key.

import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { PASSPHRASE, createBorgkeepEnv, type BorgkeepEnv } from '../helpers/borgkeep-env.js';

interface JsonTxn {
  id: number;
  verdict: string;
  session: number | null;
  key: string | null;
  role: string | null;
  reasons: string[];
  archivesAdded: string[] | null;
  archivesRemoved: string[] | null;
  archivesReplaced: string[] | null;
}
interface JsonReport {
  verdict: string;
  firstSuspiciousTransaction: number | null;
  lastKnownGoodTransaction: number | null;
  manifestsRead: boolean;
  checksNeedingKey: string[];
  transactions: JsonTxn[];
}

let env: BorgkeepEnv;
let src: string;
const steps: Array<{ step: string; archives: string[] }> = [];

async function borgOk(key: string, args: string[]): Promise<string> {
  const r = await env.borg(key, args);
  expect(r.code, `borg ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r.stdout;
}
const listed = async () => (await borgOk('admin', ['list', '--short', env.url('main')])).split('\n').filter(Boolean).sort();
const writeFiles = (content: string) => {
  mkdirSync(src, { recursive: true });
  writeFileSync(join(src, 'payroll.csv'), content.repeat(500));
};
async function audit(withKey: boolean): Promise<{ code: number; report: JsonReport; text: string }> {
  const env2 = { ...process.env, BORG_PASSPHRASE: withKey ? PASSPHRASE : undefined, BORGKEEP_DATA_DIR: undefined };
  const r = await env.cli(['audit', 'main', '--json'], { env: env2 });
  const t = await env.cli(['audit', 'main'], { env: env2 });
  expect(r.stderr).toBe('');
  return { code: r.code, report: JSON.parse(r.stdout) as JsonReport, text: t.stdout };
}

beforeAll(async () => {
  env = createBorgkeepEnv('audit-attack');
  await env.repoWithKeys('main', { admin: 'full', laptop: 'append' });
  src = join(env.root, 'src');
  await borgOk('admin', ['init', '-e', 'repokey', env.url('main')]);
  writeFiles('alice,5000\n');
  await borgOk('laptop', ['create', `${env.url('main')}::monday`, src]);
  steps.push({ step: 'monday', archives: await listed() });
  writeFiles('alice,5000\nbob,4000\n');
  await borgOk('laptop', ['create', `${env.url('main')}::tuesday`, src]);
  steps.push({ step: 'tuesday', archives: await listed() });
  // The attack: drop "monday" from the manifest, then forge a new "monday".
  await borgOk('laptop', ['delete', '--force', '--force', `${env.url('main')}::monday`]);
  writeFiles('alice,5000\nmallory,99000\n');
  await borgOk('laptop', ['create', `${env.url('main')}::monday`, src]);
  steps.push({ step: 'forged monday', archives: await listed() });
});
afterAll(() => env?.cleanup());

test('borg list shows nothing wrong: the same names as before the attack', () => {
  expect(steps.map((s) => s.archives)).toEqual([['monday'], ['monday', 'tuesday'], ['monday', 'tuesday']]);
});

test('with the passphrase the audit exits 1 and names the first bad and the last good transaction', async () => {
  const { code, report, text } = await audit(true);
  expect(code).toBe(1);
  expect(report.verdict).toBe('suspicious');
  expect(report.manifestsRead).toBe(true);
  const [init, monday, tuesday, drop, forged] = report.transactions;
  expect(report.transactions).toHaveLength(5);
  expect(init).toMatchObject({ verdict: 'ok', role: 'full', key: 'admin', archivesAdded: [] });
  expect(monday).toMatchObject({ verdict: 'ok', role: 'append', key: 'laptop', archivesAdded: ['monday'], archivesRemoved: [] });
  expect(tuesday).toMatchObject({ verdict: 'ok', archivesAdded: ['tuesday'] });
  expect(drop).toMatchObject({ verdict: 'suspicious', role: 'append', key: 'laptop', archivesRemoved: ['monday'], archivesAdded: [] });
  expect(drop.reasons).toContain('a session with the append role removed monday');
  expect(forged).toMatchObject({ archivesAdded: ['monday'], archivesRemoved: [] });
  expect(report.firstSuspiciousTransaction).toBe(drop.id);
  expect(report.lastKnownGoodTransaction).toBe(tuesday.id);
  expect(text).toContain(`first suspicious transaction: ${drop.id}`);
  expect(text).toContain(`last known-good transaction:  ${tuesday.id}`);
  expect(text).toMatch(new RegExp(`transaction ${drop.id} .* SUSPICIOUS  session #\\d+, key laptop, role append`));
});

test('without the passphrase it makes the structural checks and names those that need the key', async () => {
  const { code, report, text } = await audit(false);
  // Dropping an archive only rewrites the manifest: nothing structural gives it away.
  expect(code).toBe(0);
  expect(report.manifestsRead).toBe(false);
  expect(report.checksNeedingKey.length).toBeGreaterThan(0);
  expect(report.transactions.every((t) => t.archivesRemoved === null)).toBe(true);
  expect(text).toContain('without the passphrase these checks were not made: which archives each transaction added, removed or replaced');
});

test('a wrong passphrase, an unknown repository: one sentence, exit 2', async () => {
  const wrong = await env.cli(['audit', 'main'], { env: { ...process.env, BORG_PASSPHRASE: 'not it', BORGKEEP_DATA_DIR: undefined } });
  expect(wrong.code).toBe(2);
  expect(wrong.stderr).toBe("borgkeep: could not audit 'main': cannot unlock the repository key: the passphrase is wrong\n");
  const missing = await env.cli(['audit', 'nope']);
  expect(missing.code).toBe(2);
  expect(missing.stderr).toBe("borgkeep: could not audit 'nope': no repository named 'nope'\n");
});

describe('recovery: the compaction gate, rollback and undo', () => {
  let lastGood: number;
  let originalIds: string[];

  /** What a client does after a rollback: forget its cache and the manifest timestamp it saw. */
  async function forgetClientState(): Promise<void> {
    await borgOk('admin', ['delete', '--cache-only', env.url('main')]);
    const security = join(env.root, 'client', '.config', 'borg', 'security');
    for (const id of readdirSync(security)) rmSync(join(security, id, 'manifest-timestamp'), { force: true });
  }
  const archiveIds = async () =>
    (JSON.parse(await borgOk('admin', ['list', '--json', env.url('main')])) as { archives: Array<{ name: string; id: string }> }).archives.map((a) => `${a.name} ${a.id}`).sort();

  beforeAll(async () => {
    const { report } = await audit(true);
    lastGood = report.lastKnownGoodTransaction as number;
    originalIds = steps[1].archives;
  });

  test('the compaction gate would let borg compact through: the attack deleted nothing older, and borgkeep keeps the manifests compaction removes', async () => {
    // What happens then is test/audit/seed-scenario.test.ts; here the segments stay for the rollbacks below.
    const gate = (JSON.parse(await env.cliOk(['repo', 'show', 'main', '--json'])) as { gate: { open: boolean } }).gate;
    expect(gate.open).toBe(true);
  });

  test('rollback to the last good transaction brings the original archives and their content back', async () => {
    const r = await env.cli(['rollback', 'main', '--to', String(lastGood), '--yes']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`rolled 'main' back from transaction \\d+ to ${lastGood}: \\d+ files? moved to `));
    expect(r.stdout).toContain('borg delete --cache-only ssh://borg@HOST:PORT/./main');
    expect(r.stdout).toMatch(/rm ~\/\.config\/borg\/security\/[0-9a-f]{64}\/manifest-timestamp/);
    await forgetClientState();
    expect(await listed()).toEqual(originalIds);
    const out = join(env.root, 'restore');
    mkdirSync(out);
    const x = await env.borg('admin', ['extract', `${env.url('main')}::monday`], { cwd: out });
    expect(x.code, x.stderr).toBe(0);
    expect(readFileSync(join(out, src.slice(1), 'payroll.csv'), 'utf8')).toBe('alice,5000\n'.repeat(500));
    const check = await env.borg('admin', ['check', env.url('main')]);
    expect(check.code, check.stderr).toBe(0);
    // The audit now ends at the last good transaction, clean.
    const after = await audit(true);
    expect(after.code).toBe(0);
    expect(after.report.transactions.at(-1)?.id).toBe(lastGood);
  });

  test('rollback --undo puts the later history back; a second undo has nothing to do', async () => {
    const r = await env.cli(['rollback', 'main', '--undo']);
    expect(r.code, r.stderr).toBe(0);
    await forgetClientState();
    expect(await listed()).toEqual(['monday', 'tuesday']);
    const { report } = await audit(true);
    expect(report.firstSuspiciousTransaction).not.toBeNull();
    const again = await env.cli(['rollback', 'main', '--undo']);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe('borgkeep: there is no rollback of this repository to undo\n');
    // Back to the good state for what follows.
    expect((await env.cli(['rollback', 'main', '--to', String(lastGood), '--yes'])).code).toBe(0);
    await forgetClientState();
  });

  test('a transaction that is not committed, or no history change: refused, nothing moved', async () => {
    const r = await env.cli(['rollback', 'main', '--to', '999999', '--yes']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^borgkeep: transaction 999999 is not a committed transaction of this repository \(committed since the last compaction: /);
    const same = await env.cli(['rollback', 'main', '--to', String(lastGood), '--yes']);
    expect(same.stderr).toMatch(/is already the repository's last transaction: there is nothing to roll back/);
  });

  test('after approve, borg compact with the full key works, and the ledger has who approved', async () => {
    const approve = await env.cli(['approve', 'main', '--yes'], { env: { ...process.env, USER: 'carol', SUDO_USER: '', BORGKEEP_DATA_DIR: undefined } });
    expect(approve.code, approve.stderr).toBe(0);
    expect(approve.stdout).toMatch(new RegExp(`approved the history of 'main' through transaction ${lastGood}: the compaction gate is open`));
    const compact = await env.borg('admin', ['compact', env.url('main')]);
    expect(compact.code, compact.stderr).toBe(0);
    expect(await listed()).toEqual(originalIds);
    const { sessions, events } = JSON.parse(await env.cliOk(['ledger', '--json', '--repo', 'main', '--limit', '20'])) as {
      sessions: Array<{ result: string }>;
      events: Array<{ kind: string; actor: string; throughTxn: number | null }>;
    };
    expect(sessions[0].result).toBe('ok');
    // Newest first: the compaction the gate let through, then the approval that covered it.
    expect(events[0]).toMatchObject({ kind: 'compaction', actor: expect.stringContaining("key 'admin'") });
    expect(events[1]).toMatchObject({ kind: 'approve', actor: 'carol', throughTxn: lastGood });
    expect(events.map((e) => e.kind)).toEqual(expect.arrayContaining(['audit', 'rollback', 'rollback-undo', 'approve', 'compaction']));
  });
});
