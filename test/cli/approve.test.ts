// `borgkeep approve` with the real borg client: an approval covers the transaction the person was
// shown (--through, the last audit's), not a write made after it; a script must say what it
// approves (--through or --yes); at a terminal it shows the audit's summary and asks; and the
// ledger names who approved, audited or rolled back (--as, else the operating-system user).

import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { BORGKEEP, PASSPHRASE, createBorgkeepEnv, run, type BorgkeepEnv } from '../helpers/borgkeep-env.js';

interface LedgerEvent {
  kind: string;
  actor: string;
  throughTxn: number | null;
}

let env: BorgkeepEnv;
let audited: number;
let newest: number;
const noUser = { USER: undefined, LOGNAME: undefined, SUDO_USER: undefined, BORGKEEP_DATA_DIR: undefined };

async function borgOk(key: string, args: string[]): Promise<void> {
  const r = await env.borg(key, args);
  expect(r.code, `borg ${args.join(' ')}: ${r.stderr}`).toBe(0);
}
async function events(): Promise<LedgerEvent[]> {
  return (JSON.parse(await env.cliOk(['ledger', '--json', '--repo', 'main', '--limit', '50'])) as { events: LedgerEvent[] }).events;
}
/** The CLI at a terminal: `script` gives it a pseudo-terminal and types `answer`. */
function atTerminal(args: string[], answer: string) {
  const command = [process.execPath, BORGKEEP, '--data-dir', env.dataDir, ...args].map((a) => `'${a}'`).join(' ');
  // The answer arrives after the question is asked; script ends when the command does.
  return run('sh', ['-c', `(sleep 2; printf '${answer}\\n'; sleep 1) | script -qefc "${command}" /dev/null`], { env: { ...process.env, ...noUser, USER: 'tty-user' } });
}

beforeAll(async () => {
  env = createBorgkeepEnv('cli-approve');
  await env.repoWithKeys('main', { admin: 'full', laptop: 'append' });
  const src = join(env.root, 'src');
  mkdirSync(src);
  writeFileSync(join(src, 'a.txt'), 'first\n'.repeat(100));
  await borgOk('admin', ['init', '-e', 'repokey', env.url('main')]);
  await borgOk('laptop', ['create', `${env.url('main')}::first`, src]);
  const audit = await env.cli(['audit', 'main', '--json', '--as', 'auditor ann'], { env: { ...process.env, BORG_PASSPHRASE: PASSPHRASE, BORGKEEP_DATA_DIR: undefined } });
  expect(audit.stderr).toBe('');
  audited = (JSON.parse(audit.stdout) as { transactions: Array<{ id: number }> }).transactions.at(-1)!.id;
  // Written after the audit: nobody has reviewed it.
  writeFileSync(join(src, 'a.txt'), 'second\n'.repeat(100));
  await borgOk('laptop', ['create', `${env.url('main')}::second`, src]);
  // borg names its index after the last committed transaction.
  const { path } = JSON.parse(await env.cliOk(['repo', 'show', 'main', '--json'])) as { path: string };
  newest = Math.max(...readdirSync(path).flatMap((f) => (/^index\.(\d+)$/.exec(f) ? [Number(f.slice(6))] : [])));
  expect(newest).toBeGreaterThan(audited);
}, 120_000);
afterAll(() => env?.cleanup());

describe('borgkeep approve', () => {
  test('without a terminal it needs --through or --yes, and records nothing otherwise', async () => {
    const before = (await events()).length;
    const r = await env.cli(['approve', 'main']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('approve without a terminal needs --through TXN (the transaction the audit showed) or --yes (the newest on disk); nothing was approved');
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect((await events()).length).toBe(before);
  });

  test('--through a transaction newer than the newest on disk, or not a number, is refused in one sentence', async () => {
    const tooNew = await env.cli(['approve', 'main', '--through', String(newest + 1)]);
    expect(tooNew.code).not.toBe(0);
    expect(tooNew.stderr).toContain(`transaction ${newest + 1} is not a committed transaction of repository 'main' (the newest on disk is ${newest})`);
    const junk = await env.cli(['approve', 'main', '--through', '7x']);
    expect(junk.code).not.toBe(0);
    expect(junk.stderr).toContain("--through '7x' is not a transaction id");
    const badName = await env.cli(['approve', 'main', '--through', String(audited), '--as', 'x\u0007y']);
    expect(badName.code).not.toBe(0);
    expect(badName.stderr).toContain('--as needs a name of 1 to 64 printable characters');
    expect((await events()).filter((e) => e.kind === 'approve')).toEqual([]);
  });

  test('--through the audited transaction covers it and not the later write; --as names the approver', async () => {
    const r = await env.cli(['approve', 'main', '--through', String(audited), '--as', 'dave']);
    expect(r.code, r.stderr).toBe(0);
    // What it approves, printed for the script's log: the last audit and the transaction.
    expect(r.stdout).toContain(`this approves the history of 'main' through transaction ${audited}; anything written later is not covered.`);
    expect(r.stdout).toMatch(/^last audit of 'main': \d{4}-\d\d-\d\dT\S+ by auditor ann, CLEAN, through transaction \d+/m);
    expect(r.stdout).toContain('suspicious transactions: none');
    expect(r.stdout).toContain('archives removed: none');
    expect(r.stdout).toContain(`approved the history of 'main' through transaction ${audited}: the compaction gate is open. Recorded as approved by dave.`);
    const [approve] = await events();
    expect(approve).toMatchObject({ kind: 'approve', actor: 'dave', throughTxn: audited });
    expect(approve!.throughTxn).toBeLessThan(newest);
  });

  test('--yes approves the newest on disk and says which transactions the last audit did not see', async () => {
    const r = await env.cli(['approve', 'main', '--yes'], { env: { ...process.env, ...noUser, USER: 'erin' } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`NOT REVIEWED: transactions after ${audited} through ${newest} were written after this audit.`);
    expect(r.stdout).toContain(`through transaction ${newest}: the compaction gate is open`);
    expect((await events())[0]).toMatchObject({ kind: 'approve', actor: 'erin', throughTxn: newest });
  });

  test('the actor is SUDO_USER under sudo, else $USER, else the effective user: never "unknown"', async () => {
    await env.cliOk(['approve', 'main', '--yes'], { env: { ...process.env, ...noUser, SUDO_USER: 'frank', USER: 'root' } });
    expect((await events())[0]).toMatchObject({ kind: 'approve', actor: 'frank' });
    await env.cliOk(['approve', 'main', '--yes'], { env: { ...process.env, ...noUser } });
    expect((await events())[0]).toMatchObject({ kind: 'approve', actor: userInfo().username });
    const audit = await env.cli(['audit', 'main'], { env: { ...process.env, ...noUser, BORG_PASSPHRASE: undefined } });
    expect(audit.stderr).toBe('');
    expect((await events())[0]).toMatchObject({ kind: 'audit', actor: userInfo().username });
    const all = await events();
    expect(all.find((e) => e.kind === 'audit' && e.actor === 'auditor ann')).toBeDefined();
    expect(all.map((e) => e.actor)).not.toContain('unknown');
  });

  test('at a terminal it shows the summary and asks; "n" records nothing, "y" approves as shown', async () => {
    const before = (await events()).length;
    const no = await atTerminal(['approve', 'main', '--through', String(audited)], 'n');
    expect(no.stdout).toContain(`this approves the history of 'main' through transaction ${audited}`);
    expect(no.stdout).toContain('suspicious transactions: none');
    expect(no.stdout).toContain('Approve as tty-user? [y/N]');
    expect(no.stdout).toContain('approval cancelled; nothing was recorded');
    expect((await events()).length).toBe(before);
    const yes = await atTerminal(['approve', 'main', '--through', String(audited)], 'y');
    expect(yes.stdout).toContain(`approved the history of 'main' through transaction ${audited}`);
    expect((await events())[0]).toMatchObject({ kind: 'approve', actor: 'tty-user', throughTxn: audited });
  }, 30_000);
});
