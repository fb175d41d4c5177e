// The repository key against replacement (issue 13, finding 3): borg's save_key rewrites config's
// `key` and erases the old config, so junk from a full key used to lose a repokey repository for
// good. Now the guard accepts only a well-formed borg 1.2 key blob, keeps the key it replaces in the
// data directory first (with the time and the transaction), records a 'key-change' event, and
// `rollback --to T` / `repo key-history --restore N` put the key of that time back.

import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';

import { PASSPHRASE, makeSourceTree } from '../helpers/borgkeep-env.js';
import { KEYS, createHostileFixture, expectDenied, type HostileFixture } from '../helpers/hostile-fixture.js';

let f: HostileFixture;
let repo: string;
const NEW_PASSPHRASE = 'a new passphrase for the same key';

beforeAll(async () => {
  f = await createHostileFixture({ label: 'key-history', encryption: 'repokey' });
  repo = f.repoDir('main');
});
afterAll(() => f?.cleanup());

/** config's key option, lines joined (what borg's load_key returns). */
function configKey(): string {
  const m = /^key = (.*(?:\n[ \t]+.*)*)/m.exec(readFileSync(join(repo, 'config'), 'utf8'));
  if (!m) throw new Error('config has no key');
  return m[1].replace(/\s+/g, '');
}

/** The repository's last committed transaction: its index.N. */
function headTxn(): number {
  const names = f.snapshot('main').map((l) => /^index\.(\d+) /.exec(l)?.[1]).filter((x): x is string => x !== undefined);
  expect(names).toHaveLength(1);
  return Number(names[0]);
}

function events(): Array<{ kind: string; actor: string; detail: string; through_txn: number | null }> {
  const db = f.db();
  try {
    return db.prepare("select kind, actor, detail, through_txn from repository_events where kind like 'key-%' order by id").all() as never;
  } finally {
    db.close();
  }
}

async function list(passphrase: string) {
  return f.env.borg(KEYS.full, ['list', '--short', f.env.url('main')], { env: { BORG_PASSPHRASE: passphrase } });
}

/** What a client must do after a rollback (borgkeep rollback prints it): forget the later state. */
function forgetLaterState(): void {
  const client = join(f.env.root, 'client');
  rmSync(join(client, '.cache'), { recursive: true, force: true });
  rmSync(join(client, '.config', 'borg', 'security'), { recursive: true, force: true });
}

let oldKey: string;
let txnBeforeChange: number;

test('borg key change-passphrase with a full key works, and the key it replaced is kept in the data directory', async () => {
  oldKey = configKey();
  txnBeforeChange = headTxn();
  const r = await f.env.borg(KEYS.full, ['key', 'change-passphrase', f.env.url('main')], { env: { BORG_NEW_PASSPHRASE: NEW_PASSPHRASE } });
  expect(r.code, r.stderr).toBe(0);
  expect(configKey()).not.toBe(oldKey);
  expect((await list(NEW_PASSPHRASE)).code).toBe(0);

  const kept = JSON.parse(await f.env.cliOk(['repo', 'key-history', 'main', '--json'])) as { keys: Array<{ n: number; txn: number; fingerprint: string; keptFor: string; at: string }> };
  expect(kept.keys).toHaveLength(1);
  expect(kept.keys[0]).toMatchObject({ n: 1, txn: txnBeforeChange, keptFor: 'save_key' });
  // Never the blob itself, in either form.
  const text = await f.env.cliOk(['repo', 'key-history', 'main']);
  for (const out of [JSON.stringify(kept), text]) expect(out).not.toContain(oldKey.slice(0, 40));
  expect(text).toContain(kept.keys[0].fingerprint);

  const dir = join(f.env.dataDir, 'key-history', repo.slice(repo.lastIndexOf('/') + 1));
  expect(statSync(dir).mode & 0o777).toBe(0o700);
  expect(statSync(join(dir, '1.json')).mode & 0o777).toBe(0o600);
  expect((JSON.parse(readFileSync(join(dir, '1.json'), 'utf8')) as { key: string }).key.replace(/\s+/g, '')).toBe(oldKey);
  // Kept outside the repository.
  expect(f.snapshot('main').some((l) => l.includes('key-history'))).toBe(false);

  const ev = events();
  expect(ev).toHaveLength(1);
  expect(ev[0]).toMatchObject({ kind: 'key-change', through_txn: txnBeforeChange });
  expect(ev[0].actor).toMatch(new RegExp(`^session #\\d+, key ${KEYS.full}$`));
});

test('a full key sending junk as save_key is refused with a clear message; the key and config stay', async () => {
  f.rebaseline('main');
  const configBefore = readFileSync(join(repo, 'config'));
  const c = await f.open('full');
  for (const keydata of [Buffer.from('a key the attacker chose'), Buffer.from(Buffer.from('x'.repeat(300)).toString('base64'))]) {
    const msgid = c.request('save_key', { keydata });
    expectDenied(await c.reply(msgid), { msgid, method: 'save_key', role: 'full', key: KEYS.full, repo: 'main', why: 'the key data is not an encrypted borg 1.2 key' });
  }
  expect(await f.finish(c)).toBe(0);
  expect(f.session(c).denials.map((d) => `${d.method} ${d.reason}`)).toEqual(['save_key BK_DENY_SAVE_KEY']);
  expect(readFileSync(join(repo, 'config')).equals(configBefore)).toBe(true);
  f.expectUnchanged('main');
  expect((await list(NEW_PASSPHRASE)).code).toBe(0);
  // Nothing was kept or recorded for a refused call.
  expect((JSON.parse(await f.env.cliOk(['repo', 'key-history', 'main', '--json'])) as { keys: unknown[] }).keys).toHaveLength(1);
  expect(events()).toHaveLength(1);
});

test('rollback to a transaction before the key change puts that key back: borg list works with the OLD passphrase', async () => {
  makeSourceTree(join(f.env.root, 'src2'), 9);
  const created = await f.env.borg(KEYS.full, ['create', `${f.env.url('main')}::second`, join(f.env.root, 'src2')], { env: { BORG_PASSPHRASE: NEW_PASSPHRASE } });
  expect(created.code, created.stderr).toBe(0);
  const out = await f.env.cliOk(['rollback', 'main', '--to', String(txnBeforeChange), '--yes']);
  expect(out).toContain('the key in effect then (kept key 1');
  expect(configKey()).toBe(oldKey);
  expect(existsSync(join(repo, 'config.borgkeep-tmp'))).toBe(false);
  forgetLaterState();
  const r = await list(PASSPHRASE);
  expect(r.code, r.stderr).toBe(0);
  expect(r.stdout.split('\n').filter(Boolean)).toEqual(['first']);
  expect((await list(NEW_PASSPHRASE)).code).not.toBe(0);
  expect(events().map((e) => e.kind)).toEqual(['key-change', 'key-restore']);
});

test('repo key-history lists the kept keys and --restore puts one back, recorded as key-restore', async () => {
  const kept = JSON.parse(await f.env.cliOk(['repo', 'key-history', 'main', '--json'])) as { keys: Array<{ n: number; keptFor: string }> };
  // The rollback kept the key it replaced (the new passphrase's).
  expect(kept.keys.map((k) => `${k.n} ${k.keptFor}`)).toEqual(['1 save_key', '2 rollback']);
  const out = await f.env.cliOk(['repo', 'key-history', 'main', '--restore', '2']);
  expect(out).toContain('put kept key 2');
  expect((await list(NEW_PASSPHRASE)).code).toBe(0);
  expect(events().map((e) => e.kind)).toEqual(['key-change', 'key-restore', 'key-restore']);
  // Bad input: one sentence, non-zero exit, nothing changed.
  const configBefore = readFileSync(join(repo, 'config'));
  for (const n of ['9', 'two']) {
    const bad = await f.env.cli(['repo', 'key-history', 'main', '--restore', n]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
  }
  expect(readFileSync(join(repo, 'config')).equals(configBefore)).toBe(true);
});

test('the ledger holds every session closed and nothing reached the client that names the server', async () => {
  await f.closedLedger();
  f.leakCheck();
});
