// The attack the audit exists for, with stock borg through an `append` key: the compromised
// client drops an archive from the manifest (`borg delete --force --force` rewrites only the
// manifest, which the append role may write) and creates a new archive under the same name with
// other content. `borg list` looks normal. The audit with the passphrase names the first bad
// transaction and the last good one; without it, it says which checks needed the key.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';

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
  await env.cliOk(['repo', 'create', 'main']);
  await env.addKey('admin');
  await env.addKey('laptop');
  await env.cliOk(['grant', 'admin', 'main', '--role', 'full']);
  await env.cliOk(['grant', 'laptop', 'main', '--role', 'append']);
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
