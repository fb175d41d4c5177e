// Archive rules at the commit (issue 14) with the real borg client and real encrypted repositories
// whose key was handed to borgkeep (`borgkeep repo key`): what a role may not do to the archive
// list is refused at the manifest put, before borg serve sees it, with a line on the client's
// stderr naming the rule, and the repository is unchanged afterwards (same last transaction,
// `borg check` clean, `borg list` the same). What is allowed still works: backups with
// checkpoints, a prune within its grant's rule, anything by a full key. A hand-written client
// holding the key (it can encrypt and sign any manifest) tries what the stock client never sends.
// A repository whose key borgkeep does not hold works exactly as before.

import { createCipheriv, createHmac, randomFillSync } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { latestIndexTransaction } from '../../src/repository/hash-index.js';
import { openObject, type BorgKey } from '../../src/repository/borg-key.js';
import { MsgMap, decode, encode, type MsgValue } from '../../src/rpc/msgpack.js';
import { unlockRepositoryKey } from '../../src/vault/repository-key.js';
import { PASSPHRASE, makeSourceTree } from '../helpers/borgkeep-env.js';
import { KEYS, MANIFEST_ID, createHostileFixture, expectOk, type HostileFixture, type RoleName } from '../helpers/hostile-fixture.js';
import type { RpcClient } from '../helpers/rpc-client.js';

const COMMIT_ARGS = { save_space: false, compact: false, threshold: { float: 0.1 }, cleanup_commits: false };
let fx: HostileFixture;
let src: string;

const sql = <T>(q: string, ...args: unknown[]): T[] => {
  const db = fx.db();
  try {
    return db.prepare(q).all(...args) as T[];
  } finally {
    db.close();
  }
};
const run = (q: string, ...args: unknown[]): void => {
  const db = fx.db();
  try {
    db.prepare(q).run(...args);
  } finally {
    db.close();
  }
};

/** What must not move when a change is refused: the last transaction and the archive list; borg check clean. */
async function state(repo: string): Promise<{ txn: number | null; archives: string[] }> {
  return { txn: latestIndexTransaction(await fx.env.repoPath(repo)), archives: await fx.archives(repo) };
}
async function expectUnchangedSince(repo: string, before: { txn: number | null; archives: string[] }): Promise<void> {
  expect(await state(repo)).toEqual(before);
  const check = await fx.env.borg(KEYS.full, ['check', fx.env.url(repo)]);
  expect(check.code, check.stderr).toBe(0);
}
const denials = (repo: string) =>
  sql<{ reason: string; message: string }>(
    "select d.reason, d.message from denials d join repositories r on r.id = d.repository_id where r.name = ? and d.reason = 'BK_DENY_ARCHIVE_RULE' order by d.id",
    repo,
  );
const lastSessionTxns = (key: string) =>
  sql<{ state: string; archive_checked: number; manifest_written: number }>(
    'select t.state, t.archive_checked, t.manifest_written from transactions t where t.session_id = (select max(id) from sessions where key_name = ?) order by t.id',
    key,
  );

/** `archives`: names, or [name, borg create --timestamp] for a time of the test's choosing. */
async function newRepo(name: string, grants: Array<[RoleName, string[]]>, opts: { key?: boolean; archives?: Array<string | [string, string]> } = {}): Promise<void> {
  await fx.env.cliOk(['repo', 'create', name]);
  await fx.env.cliOk(['grant', KEYS.full, name, '--role', 'full']);
  for (const [role, extra] of grants) await fx.env.cliOk(['grant', KEYS[role], name, '--role', role, ...extra]);
  await fx.borgOk('full', ['init', '-e', 'repokey', fx.env.url(name)]);
  if (opts.key !== false) await fx.env.cliOk(['repo', 'key', name, '--passphrase-file', join(fx.env.root, 'passphrase')]);
  // With the key held, the guard records when the server first saw each archive at its commit.
  for (const a of opts.archives ?? []) {
    const [archive, timestamp] = typeof a === 'string' ? [a, null] : a;
    await fx.borgOk('append', ['create', ...(timestamp ? ['--timestamp', timestamp] : []), `${fx.env.url(name)}::${archive}`, src]);
  }
}

beforeAll(async () => {
  fx = await createHostileFixture({ label: 'archive-rules', encryption: 'repokey' });
  src = makeSourceTree(join(fx.env.root, 'tree'), 3);
  writeFileSync(join(fx.env.root, 'passphrase'), `${PASSPHRASE}\n`);
  // main: made by the fixture (archive "first" by the full key); two backups by the append key.
  for (const a of ['mon', 'tue']) await fx.borgOk('append', ['create', `${fx.env.url('main')}::${a}`, src]);
  await fx.env.cliOk(['repo', 'key', 'main', '--passphrase-file', join(fx.env.root, 'passphrase')]);
  await fx.env.cliOk(['grant', KEYS.prune, 'main', '--role', 'prune', '--min-age', '30d', '--keep-last', '7']);
  await newRepo('nokey', [['append', []]], { key: false, archives: ['mon', 'tue'] });
}, 300_000);
afterAll(() => fx?.cleanup());

describe('an append key', () => {
  test("stock 'borg delete --force --force' is refused at the manifest put and changes nothing", async () => {
    const before = await state('main');
    const r = await fx.env.borg(KEYS.append, ['delete', '--force', '--force', `${fx.env.url('main')}::mon`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("borgkeep: refused: an append key may not remove archive 'mon' (rule: append adds only)");
    await expectUnchangedSince('main', before);
    expect(denials('main').at(-1)?.message).toContain("an append key may not remove archive 'mon'");
  });

  // borg's rename deletes the old archive object before it writes the manifest: the append role's
  // rule against deleting older objects refuses it there already (as before this issue), and the
  // client stops before its manifest put. Kept as a regression test of the outcome.
  test("stock 'borg rename' is refused and changes nothing", async () => {
    const before = await state('main');
    const r = await fx.env.borg(KEYS.append, ['rename', `${fx.env.url('main')}::tue`, 'tue-kept-forever']);
    expect(r.code).not.toBe(0);
    await expectUnchangedSince('main', before);
  });

  test('a backup, and one with a checkpoint every second, go through; each transaction counts as checked with the key', async () => {
    await fx.borgOk('append', ['create', `${fx.env.url('main')}::wed`, src]);
    expect(lastSessionTxns(KEYS.append)).toEqual([{ state: 'committed', archive_checked: 1, manifest_written: 1 }]);
    // Enough data that borg writes checkpoints (and removes each one it replaces) along the way.
    const big = join(fx.env.root, 'big');
    mkdirSync(big, { recursive: true });
    for (let i = 0; i < 12; i++) writeFileSync(join(big, `f${i}`), randomFillSync(Buffer.alloc(4 * 1024 * 1024)));
    const r = await fx.env.borg(KEYS.append, ['create', '--checkpoint-interval', '1', '--compression', 'zlib,9', `${fx.env.url('main')}::thu`, big]);
    expect(r.code, r.stderr).toBe(0);
    const txns = lastSessionTxns(KEYS.append);
    expect(txns.length).toBeGreaterThan(1); // checkpoints were committed
    expect(txns.every((t) => t.state === 'committed' && t.archive_checked === 1)).toBe(true);
    expect((await fx.archives('main')).map((a) => a.split(' ')[0])).toEqual(['first', 'mon', 'thu', 'tue', 'wed']);
    const check = await fx.env.borg(KEYS.full, ['check', fx.env.url('main')]);
    expect(check.code, check.stderr).toBe(0);
  }, 600_000);
});

describe('a prune key with --min-age 30d --keep-last 7', () => {
  test("'borg prune --keep-last 1' fails naming the rule and removes nothing", async () => {
    const before = await state('main');
    const r = await fx.env.borg(KEYS.prune, ['prune', '--keep-last', '1', fx.env.url('main')]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/borgkeep: refused: a prune key may not remove archives? .*\(rule: --min-age 30d --keep-last 7\)/);
    await expectUnchangedSince('main', before);
  });
});

describe('a prune within its rule', () => {
  beforeAll(async () => {
    // An hour apart: backups made one after another can start within one second, and borg prune's
    // --keep-last counts those once (src/archive/manifest-change.test.ts has that case).
    const hoursAgo = (h: number) => new Date(Date.now() - h * 3_600_000).toISOString().slice(0, 19);
    const archives: Array<[string, string]> = [['x-1', hoursAgo(5)], ['x-2', hoursAgo(4)], ['x-3', hoursAgo(3)], ['x-4', hoursAgo(2)], ['y-1', hoursAgo(1)]];
    await newRepo('pruned', [['append', []], ['prune', ['--min-age', '1d', '--keep-last', '2', '--prefix', 'x-']]], { archives });
    // The server first saw them ten days ago (the archive sightings its audits and the guard keep).
    run("update archive_sightings set first_seen_at = ? where repository_id = (select id from repositories where name = 'pruned')", new Date(Date.now() - 10 * 86_400_000).toISOString());
  }, 600_000);

  test('removes what the rule allows; the transaction counts as checked', async () => {
    const r = await fx.env.borg(KEYS.prune, ['prune', '--keep-last', '2', '--glob-archives', 'x-*', fx.env.url('pruned')]);
    expect(r.code, r.stderr).toBe(0);
    expect((await fx.archives('pruned')).map((a) => a.split(' ')[0])).toEqual(['x-3', 'x-4', 'y-1']);
    expect(lastSessionTxns(KEYS.prune).at(-1)).toEqual({ state: 'committed', archive_checked: 1, manifest_written: 1 });
  });

  test('not one of the --keep-last newest, not outside the prefix, not an archive younger than --min-age', async () => {
    let before = await state('pruned');
    let r = await fx.env.borg(KEYS.prune, ['delete', `${fx.env.url('pruned')}::x-3`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("borgkeep: refused: a prune key may not remove archive 'x-3': it is among the 2 newest named 'x-...', which the grant keeps (rule: --min-age 1d --keep-last 2 --prefix x-)");
    await expectUnchangedSince('pruned', before);
    r = await fx.env.borg(KEYS.prune, ['delete', `${fx.env.url('pruned')}::y-1`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("a prune key may not remove archive 'y-1': its grant covers only archives named 'x-...'");
    await expectUnchangedSince('pruned', before);
    // A new archive: never old enough the day it was made.
    await fx.borgOk('append', ['create', `${fx.env.url('pruned')}::x-5`, src]);
    await fx.borgOk('append', ['create', `${fx.env.url('pruned')}::x-6`, src]);
    await fx.borgOk('append', ['create', `${fx.env.url('pruned')}::x-7`, src]);
    before = await state('pruned');
    r = await fx.env.borg(KEYS.prune, ['delete', `${fx.env.url('pruned')}::x-5`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/a prune key may not remove archive 'x-5': the server first saw it less than 1d ago/);
    await expectUnchangedSince('pruned', before);
  }, 600_000);

  test('--max-removals-per-day counts per grant and UTC day', async () => {
    await newRepo('daily', [['append', []], ['prune', ['--max-removals-per-day', '1']]], { archives: ['d-1', 'd-2', 'd-3', 'd-4'] });
    const before = await state('daily');
    let r = await fx.env.borg(KEYS.prune, ['prune', '--keep-last', '2', fx.env.url('daily')]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('borgkeep: refused: a prune key may not remove 2 more archives today: the grant allows 1 per UTC day and 0 are already removed or being removed (rule: --max-removals-per-day 1)');
    await expectUnchangedSince('daily', before);
    await fx.borgOk('prune', ['delete', `${fx.env.url('daily')}::d-1`]);
    r = await fx.env.borg(KEYS.prune, ['delete', `${fx.env.url('daily')}::d-2`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('the grant allows 1 per UTC day and 1 is already removed or being removed (rule: --max-removals-per-day 1)');
    expect((await fx.archives('daily')).map((a) => a.split(' ')[0])).toEqual(['d-2', 'd-3', 'd-4']);
  }, 600_000);
});

describe('a full key', () => {
  test('may remove archives (its transaction checked with the key)', async () => {
    await fx.borgOk('full', ['delete', `${fx.env.url('main')}::first`]);
    expect(lastSessionTxns(KEYS.full).at(-1)).toEqual({ state: 'committed', archive_checked: 1, manifest_written: 1 });
  });
});

describe('without the key', () => {
  test("a repository whose key borgkeep does not hold works as before: the append key's 'delete --force --force' is not judged", async () => {
    const r = await fx.env.borg(KEYS.append, ['delete', '--force', '--force', `${fx.env.url('nokey')}::mon`]);
    expect(r.code, r.stderr).toBe(0);
    expect((await fx.archives('nokey')).map((a) => a.split(' ')[0])).toEqual(['tue']);
    expect(denials('nokey')).toEqual([]);
    expect(lastSessionTxns(KEYS.append).at(-1)).toEqual({ state: 'committed', archive_checked: 0, manifest_written: 1 });
  });
});

// --- a hand-written client that holds the key ---------------------------------------------------

const set = (m: MsgMap, k: string, v: MsgValue) => {
  const e = m.entries.find(([key]) => Buffer.isBuffer(key) && key.toString('latin1') === k);
  if (e) e[1] = v;
  else m.entries.push([Buffer.from(k, 'latin1'), v]);
};
const borgNow = () => new Date().toISOString().replace('Z', '000');

function hkdfSha512(ikm: Buffer, salt: Buffer, info: Buffer): Buffer {
  const prk = createHmac('sha512', salt).update(ikm).digest();
  return createHmac('sha512', prk).update(Buffer.concat([info, Buffer.from([1])])).digest();
}

/** A repokey object envelope as borg writes it: TYPE, HMAC-SHA256, IV, AES-CTR of (no compression, plaintext). */
function seal(key: BorgKey, type: number, iv: bigint, plain: Buffer): Buffer {
  const iv8 = Buffer.alloc(8);
  iv8.writeBigUInt64BE(iv);
  const cipher = createCipheriv('aes-256-ctr', key.encKey, Buffer.concat([Buffer.alloc(8), iv8]));
  const ct = Buffer.concat([cipher.update(Buffer.concat([Buffer.from([0, 0]), plain])), cipher.final()]);
  const mac = createHmac('sha256', key.encHmacKey).update(Buffer.concat([iv8, ct])).digest();
  return Buffer.concat([Buffer.from([type]), mac, iv8, ct]);
}

/**
 * Opens main with `role`'s key, reads and decrypts the manifest, lets `edit` change it, signs it
 * (TAM), encrypts it and puts it. Returns the client and the put's reply, before any commit.
 */
async function putEdited(role: RoleName, edit: (archives: MsgMap, manifest: MsgMap) => void, before?: (c: RpcClient) => Promise<void>): Promise<{ c: RpcClient; reply: Awaited<ReturnType<RpcClient['call']>> }> {
  const key = unlockRepositoryKey(fx.repoDir('main'), { passphrase: PASSPHRASE, keyFile: null });
  const c = await fx.open(role);
  const got = await c.call('get', { id: MANIFEST_ID });
  expectOk(got, 3);
  const envelope = Buffer.from(got.result as Buffer);
  const m = decode(await openObject(envelope, 'repokey', key)) as MsgMap;
  edit(m.get('archives') as MsgMap, m);
  set(m, 'timestamp', Buffer.from(borgNow()));
  const tam = m.get('tam') as MsgMap;
  const salt = tam.get('salt') as Buffer;
  set(tam, 'hmac', Buffer.alloc(64));
  const tamKey = hkdfSha512(Buffer.concat([key.idKey, key.encKey, key.encHmacKey]), salt, Buffer.from('borg-metadata-authentication-manifest'));
  set(tam, 'hmac', createHmac('sha512', tamKey).update(encode(m)).digest());
  const iv = envelope.readBigUInt64BE(33) + 1_000_000n;
  if (before) await before(c);
  const data = seal(key, envelope[0], iv, encode(m));
  const reply = await c.call('put', { id: MANIFEST_ID, data, wait: true });
  return { c, reply };
}
const entryOf = (archives: MsgMap, name: string) => archives.get(name) as MsgMap;

describe('a hand-written client with the key', () => {
  const cases: Array<[string, RoleName, (a: MsgMap, m: MsgMap) => void, string]> = [
    ['retimes the newest archive to 2015 (same name and id)', 'append', (a) => set(entryOf(a, 'wed'), 'time', Buffer.from('2015-01-01T00:00:00.000000')), "an append key may not change the time of archive 'wed'"],
    [
      'renames an archive in the manifest only',
      'append',
      (a) => {
        const e = a.entries.find(([k]) => Buffer.isBuffer(k) && k.toString() === 'mon') as [MsgValue, MsgValue];
        e[0] = Buffer.from('mon-kept-forever');
      },
      "an append key may not rename archive 'mon' (to 'mon-kept-forever')",
    ],
    ['drops an archive', 'append', (a) => a.entries.splice(a.entries.findIndex(([k]) => Buffer.isBuffer(k) && k.toString() === 'tue'), 1), "an append key may not remove archive 'tue'"],
    [
      'flips a mandatory feature flag',
      'append',
      (_a, m) => set(m, 'config', MsgMap.of([['feature_flags', MsgMap.of([['write', MsgMap.of([['mandatory', [Buffer.from('borgkeep-test-unknown')]]])]])]])),
      "an append key may not change the manifest's config (feature flags): mandatory feature flag write:borgkeep-test-unknown added",
    ],
    [
      'adds an entry for an archive object it did not write',
      'append',
      (a) => a.entries.push([Buffer.from('zz-new'), MsgMap.of([['id', Buffer.alloc(32, 7)], ['time', Buffer.from(borgNow())]])]),
      "an append key may not add archive 'zz-new': its archive object was not written in this session",
    ],
    [
      'a prune key renames an archive',
      'prune',
      (a) => {
        const e = a.entries.find(([k]) => Buffer.isBuffer(k) && k.toString() === 'wed') as [MsgValue, MsgValue];
        e[0] = Buffer.from('wed2');
      },
      "a prune key may not rename archive 'wed' (to 'wed2')",
    ],
  ];
  for (const [what, role, edit, refusal] of cases) {
    test(`${what}: refused before borg serve sees it; a commit after it is refused too; the repository is byte-for-byte the same`, async () => {
      fx.rebaseline('main');
      const before = await state('main');
      const { c, reply } = await putEdited(role, edit);
      expect(reply.exceptionClass).toBe('PermissionDenied');
      expect(reply.message).toContain(refusal);
      const commit = await c.call('commit', COMMIT_ARGS);
      expect(commit.exceptionClass).toBe('PermissionDenied');
      expect(commit.message).toContain('may not commit after borgkeep refused its manifest');
      await fx.finish(c);
      expect(c.stderrText()).toContain(`borgkeep: refused: ${refusal}`);
      expect(fx.session(c).denials.map((d) => d.reason)).toEqual(['BK_DENY_ARCHIVE_RULE', 'BK_DENY_ARCHIVE_RULE']);
      fx.expectUnchanged('main');
      await expectUnchangedSince('main', before);
    });
  }

  test("a prune key that deletes an archive's objects and then commits without a manifest put is refused at the commit", async () => {
    const before = await state('main');
    const c = await fx.open('prune');
    const got = await c.call('get', { id: MANIFEST_ID });
    const key = unlockRepositoryKey(fx.repoDir('main'), { passphrase: PASSPHRASE, keyFile: null });
    const m = decode(await openObject(Buffer.from(got.result as Buffer), 'repokey', key)) as MsgMap;
    const id = entryOf(m.get('archives') as MsgMap, 'mon').get('id') as Buffer;
    expectOk(await c.call('delete', { id, wait: true }), 4);
    const commit = await c.call('commit', COMMIT_ARGS);
    expect(commit.exceptionClass).toBe('PermissionDenied');
    expect(commit.message).toContain('a prune key may not delete archive data without removing the archive from the manifest in the same transaction');
    await fx.finish(c);
    await expectUnchangedSince('main', before);
  });
});
