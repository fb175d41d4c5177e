// A hostile client that speaks borg's RPC protocol by hand, against the roles of
// ARCHITECTURE.md and the holes fact sheet F lists for `borg serve --append-only`. Every refusal
// must be a PermissionDenied reply with the request's msgid, naming method, key, role and
// repository; the session must go on serving; and the repository must be byte-for-byte what it
// was (or, where a call is allowed, its committed state must be).
//
// Frames, paths and grant limits live in the sibling files; all of them end by checking that
// nothing the server sent names a server path, a PID or sys.argv, and that the ledger holds
// every session closed with every denial's reason code.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { MsgMap, encode, type EncodableValue } from '../../src/rpc/msgpack.js';
import { SCRUBBED_SYSINFO } from '../../src/rpc/messages.js';
import type { Reply, RpcClient } from '../helpers/rpc-client.js';
import { KEYS, MANIFEST_ID, ROLES, createHostileFixture, expectDenied, expectOk, type HostileFixture, type RoleName } from '../helpers/hostile-fixture.js';

let f: HostileFixture;
let archivesAtStart: string[];

beforeAll(async () => {
  f = await createHostileFixture({ label: 'hostile-calls', repos: [{ name: 'secret', init: true }] });
  archivesAtStart = await f.archives('main');
});
afterAll(() => f?.cleanup());

/** An id no object of the repository has. */
const NEW_ID = Buffer.alloc(32, 0x5a);
const COMMIT_ARGS = { save_space: false, threshold: { float: 0.1 }, cleanup_commits: false };

let tupleMsgid = 10_000;

async function refused(c: RpcClient, role: RoleName, method: string, args: Record<string, EncodableValue>, why: string): Promise<Reply> {
  const msgid = c.request(method, args);
  const r = await c.reply(msgid);
  expectDenied(r, { msgid, method, role, key: KEYS[role], repo: 'main', why });
  return r;
}

async function allowed(c: RpcClient, method: string, args: Record<string, EncodableValue> = {}): Promise<Reply> {
  const msgid = c.request(method, args);
  const r = await c.reply(msgid);
  expectOk(r, msgid);
  return r;
}

/** Sends a legacy tuple-format request: [1, msgid, method, positional args]. */
async function tuple(c: RpcClient, method: string, positional: EncodableValue[]): Promise<Reply> {
  const msgid = tupleMsgid++;
  c.send(encode([1, msgid, method, positional]));
  return c.reply(msgid);
}

/** The session still answers after a refusal: nothing is left waiting. */
async function stillServing(c: RpcClient): Promise<number> {
  const r = await allowed(c, '__len__');
  expect(typeof r.result).toBe('number');
  return r.result as number;
}

/** Object ids of the committed state other than the manifest, from the session's own `list`. */
async function committedIds(c: RpcClient): Promise<Buffer[]> {
  const r = await allowed(c, 'list', { limit: 1000, marker: null });
  const ids = (r.result as Buffer[]).map((id) => Buffer.from(id)).filter((id) => !id.equals(MANIFEST_ID));
  expect(ids.length).toBeGreaterThan(2);
  return ids;
}

/** Ends the session, which must exit 0 promptly, and returns its ledger record. */
async function end(c: RpcClient) {
  expect(await f.finish(c)).toBe(0);
  return f.session(c);
}

/** The session's denials as "method REASON", each once (the ledger may fold repeats into one row). */
const reasons = (s: { denials: Array<{ method: string; reason: string }> }) => [...new Set(s.denials.map((d) => `${d.method} ${d.reason}`))];

/** The latest committed transaction: the index.N file name. */
function latestIndex(repo: string): string {
  return f.snapshot(repo).filter((l) => /^index\.\d+ /.test(l)).join();
}

describe('the append role', () => {
  test('put of an object already in the repository is refused as an overwrite', async () => {
    const c = await f.open('append');
    const [old] = await committedIds(c);
    await refused(c, 'append', 'put', { id: old, data: Buffer.from('replacement') }, 'may not overwrite an object that is already in the repository');
    await stillServing(c);
    const s = await end(c);
    expect(reasons(s)).toEqual(['put BK_DENY_OVERWRITE']);
    expect(s.result).toBe('denied');
    f.expectUnchanged('main');
  });

  test('put of the manifest id is allowed; rollback leaves the committed state alone', async () => {
    const index = latestIndex('main');
    const c = await f.open('append');
    await allowed(c, 'put', { id: MANIFEST_ID, data: Buffer.from('not really a manifest'), wait: true });
    await allowed(c, 'rollback');
    const s = await end(c);
    expect(s.denials).toEqual([]);
    expect(s.transactions).toEqual([{ state: 'rolled_back', objectsPut: 0, objectsDeleted: 0, manifestWritten: true }]);
    expect(latestIndex('main')).toBe(index);
    expect(await f.archives('main')).toEqual(archivesAtStart);
    f.rebaseline('main'); // borg leaves the uncommitted segment on disk until the next write
  });

  test('put of a new object and delete of that object in the same session are allowed', async () => {
    const index = latestIndex('main');
    const c = await f.open('append');
    await allowed(c, 'put', { id: NEW_ID, data: Buffer.from('a checkpoint archive, say') });
    await allowed(c, 'delete', { id: NEW_ID });
    await allowed(c, 'rollback');
    const s = await end(c);
    expect(s.denials).toEqual([]);
    expect(s.transactions).toEqual([{ state: 'rolled_back', objectsPut: 1, objectsDeleted: 1, manifestWritten: false }]);
    expect(latestIndex('main')).toBe(index);
    f.rebaseline('main');
  });

  test('delete of an object older than the session, or of the manifest, is refused', async () => {
    const c = await f.open('append');
    const [old] = await committedIds(c);
    // Even after a put of its own, which makes the session a writing one.
    await allowed(c, 'put', { id: NEW_ID, data: Buffer.from('new') });
    await refused(c, 'append', 'delete', { id: old }, 'may only delete objects written in the same session');
    await refused(c, 'append', 'delete', { id: MANIFEST_ID, wait: true }, 'only a full grant may delete the manifest');
    await allowed(c, 'rollback');
    await stillServing(c);
    const s = await end(c);
    expect(reasons(s)).toEqual(['delete BK_DENY_DELETE_OLD', 'delete BK_DENY_ROLE']);
    expect(await f.archives('main')).toEqual(archivesAtStart);
    f.rebaseline('main');
  });
});

describe('open(lock=False) allows no writes', () => {
  const expected: Record<'append' | 'prune' | 'full', string[]> = {
    append: ['put BK_DENY_UNLOCKED_WRITE', 'delete BK_DENY_DELETE_OLD', 'commit BK_DENY_UNLOCKED_WRITE'],
    prune: ['put BK_DENY_UNLOCKED_WRITE', 'delete BK_DENY_UNLOCKED_WRITE', 'commit BK_DENY_UNLOCKED_WRITE'],
    full: ['put BK_DENY_UNLOCKED_WRITE', 'delete BK_DENY_UNLOCKED_WRITE', 'commit BK_DENY_UNLOCKED_WRITE'],
  };
  test.each(['append', 'prune', 'full'] as const)('%s: put, delete and commit are refused', async (role) => {
    const c = await f.open(role, '/./main', { lock: false });
    const [old] = await committedIds(c);
    const unlocked = 'opened without a lock';
    // prune may write nothing but the manifest, so that is what it tries.
    const putId = role === 'prune' ? MANIFEST_ID : NEW_ID;
    await refused(c, role, 'put', { id: putId, data: Buffer.from('x'), wait: true }, unlocked);
    await refused(c, role, 'delete', { id: old }, role === 'append' ? 'same session' : unlocked);
    await refused(c, role, 'commit', { ...COMMIT_ARGS, compact: false }, unlocked);
    // Reading still works without a lock.
    await allowed(c, 'get', { id: MANIFEST_ID });
    const s = await end(c);
    expect(reasons(s)).toEqual(expected[role]);
    f.expectUnchanged('main');
  });
});

test('a second open is refused, even of a repository the key may open', async () => {
  const c = await f.open('full');
  const before = await stillServing(c);
  const msgid = c.request('open', { path: '/./secret', create: false, lock_wait: 1, lock: true, exclusive: true, append_only: false, make_parent_dirs: false });
  expectDenied(await c.reply(msgid), { msgid, method: 'open', role: 'full', key: KEYS.full, repo: 'main', why: 'one repository only' });
  // Still "main" (secret holds the manifest only).
  expect(await stillServing(c)).toBe(before);
  expect(before).toBeGreaterThan(1);
  const s = await end(c);
  expect(reasons(s)).toEqual(['open BK_DENY_SECOND_OPEN']);
  f.expectUnchanged('main');
  f.expectUnchanged('secret');
});

describe('save_key', () => {
  test.each(['read', 'append', 'prune'] as const)('%s: refused', async (role) => {
    const c = await f.open(role);
    await refused(c, role, 'save_key', { keydata: Buffer.from('a key the attacker chose') }, 'only a full grant may replace the repository key');
    // The repository (encryption none) still has no key.
    expect(Buffer.from((await allowed(c, 'load_key')).result as Buffer).length).toBe(0);
    const s = await end(c);
    expect(reasons(s)).toEqual(['save_key BK_DENY_SAVE_KEY']);
    f.expectUnchanged('main');
  });
});

describe('break_lock', () => {
  // A full-key session holds the exclusive lock that the others try to break.
  let holder: RpcClient;
  beforeAll(async () => {
    holder = await f.open('full');
  });
  afterAll(async () => {
    if (holder) expect(await f.finish(holder)).toBe(0);
  });

  test.each(['read', 'append', 'prune'] as const)('%s: refused, the lock stays', async (role) => {
    const lockDir = join(f.repoDir('main'), 'lock.exclusive');
    expect(existsSync(lockDir)).toBe(true);
    const c = await f.open(role, '/./main', { lock: false });
    await refused(c, role, 'break_lock', {}, 'only a full grant may break the repository lock');
    await stillServing(c);
    const s = await end(c);
    expect(reasons(s)).toEqual(['break_lock BK_DENY_BREAK_LOCK']);
    expect(existsSync(lockDir)).toBe(true);
    expect(existsSync(join(f.repoDir('main'), 'lock.roster'))).toBe(true);
    await stillServing(holder);
  });
});

describe('inject_exception', () => {
  test.each(ROLES)('%s: refused', async (role) => {
    const c = await f.open(role);
    await refused(c, role, 'inject_exception', { kind: 'IntegrityError' }, 'test hook');
    await stillServing(c);
    const s = await end(c);
    expect(reasons(s)).toEqual(['inject_exception BK_DENY_INJECT']);
    f.expectUnchanged('main');
  });
});

describe('commit', () => {
  // A full key's compaction, destroy and repair are the gate's: test/guard/compaction-gate.test.ts.
  test.each(['append', 'prune'] as const)('%s: only compact=False is allowed', async (role) => {
    const index = latestIndex('main');
    const c = await f.open(role);
    // What `borg compact` sends: the manifest re-put with the same bytes, then commit.
    const manifest = Buffer.from((await allowed(c, 'get', { id: MANIFEST_ID })).result as Buffer);
    await allowed(c, 'put', { id: MANIFEST_ID, data: manifest, wait: true });
    const why = 'only a full grant may compact';
    await refused(c, role, 'commit', {}, why); // a 1.1 client: borg's default is compact=True
    await refused(c, role, 'commit', { ...COMMIT_ARGS, compact: true }, why);
    await refused(c, role, 'commit', { save_space: false, compact: null }, 'wrong type');
    const t = await tuple(c, 'commit', [false]); // the legacy format cannot say compact=False
    expect(t.exceptionClass).toBe('PermissionDenied');
    expect(t.message).toContain(`borgkeep refused commit: ${why}`);
    await allowed(c, 'commit', { ...COMMIT_ARGS, compact: false });
    const s = await end(c);
    expect(reasons(s)).toEqual(['commit BK_DENY_COMPACT', 'commit BK_DENY_BAD_ARGS']);
    // Exactly one transaction reached the repository: the allowed one.
    expect(s.transactions).toEqual([{ state: 'committed', objectsPut: 0, objectsDeleted: 0, manifestWritten: true }]);
    expect(latestIndex('main')).not.toBe(index);
    expect(await f.archives('main')).toEqual(archivesAtStart);
    f.rebaseline('main');
  });
});

describe('destroy and check(repair=True)', () => {
  test.each(['read', 'append', 'prune'] as const)('%s: refused', async (role) => {
    const c = await f.open(role);
    await refused(c, role, 'destroy', {}, 'only a full grant may destroy a repository');
    await refused(c, role, 'check', { repair: true, save_space: false, max_duration: 0 }, 'only a full grant may repair a repository');
    const t = await tuple(c, 'check', [true, false]);
    expect([t.exceptionClass, t.message.split(' (')[0]]).toEqual(['PermissionDenied', 'borgkeep refused check: only a full grant may repair a repository']);
    await stillServing(c);
    const s = await end(c);
    expect(reasons(s)).toEqual(['destroy BK_DENY_DESTROY', 'check BK_DENY_REPAIR']);
    f.expectUnchanged('main');
  });
});

describe('methods borgkeep does not know', () => {
  test('are refused with a reply in the format of the request', async () => {
    const c = await f.open('read');
    for (const method of ['frobnicate', 'get_many', 'scan_low_level', 'prepare_txn', '__init__']) {
      await refused(c, 'read', method, {}, 'borgkeep does not allow this method');
    }
    // borg serve itself would crash on a tuple request for a method it cannot map.
    const msgid = tupleMsgid++;
    c.send(encode([1, msgid, 'frobnicate', [1, 2]]));
    const t = await c.reply(msgid);
    expect(t.raw).toEqual([1, msgid, Buffer.from('PermissionDenied'), Buffer.from(t.message)]);
    expect(t.message).toBe("borgkeep refused frobnicate: borgkeep does not allow this method (key 'hk-read', role read, repository 'main').");
    // scan exists, but has no positional mapping in borg serve.
    const scan = await tuple(c, 'scan', [10, null]);
    expect(scan.raw).toEqual([1, scan.msgid, Buffer.from('PermissionDenied'), Buffer.from(scan.message)]);
    expect(scan.message).toContain('borgkeep refused scan: this method cannot be called in the legacy tuple format');
    await stillServing(c);
    const s = await end(c);
    expect(reasons(s)).toEqual([
      ...['frobnicate', 'get_many', 'scan_low_level', 'prepare_txn', '__init__'].map((m) => `${m} BK_DENY_UNKNOWN_METHOD`),
      'scan BK_DENY_BAD_ARGS',
    ]);
    f.expectUnchanged('main');
  });

  test('calls before open are refused without starting borg serve', async () => {
    const c = f.start(KEYS.full);
    await c.negotiate();
    for (const [method, args] of [['put', { id: NEW_ID, data: Buffer.from('x') }], ['destroy', {}], ['frobnicate', {}]] as const) {
      const msgid = c.request(method, args);
      expectDenied(await c.reply(msgid), { msgid, method, role: 'none', key: KEYS.full, repo: '', why: 'no repository is open in this session' });
    }
    // A second negotiate is not a way back to the start either.
    const msgid = c.request('negotiate', { client_data: MsgMap.of([['client_version', [1, 2, 4, -1]]]) });
    expect((await c.reply(msgid)).message).toContain('borgkeep refused negotiate: negotiate may only be the first call');
    const s = await end(c);
    expect(reasons(s)).toEqual(['put BK_DENY_NOT_OPEN', 'destroy BK_DENY_NOT_OPEN', 'frobnicate BK_DENY_NOT_OPEN', 'negotiate BK_DENY_PROTOCOL']);
    f.expectUnchanged('main');
  });
});

test("borg serve's own exceptions reach the client without server paths or sysinfo", async () => {
  // --debug: borg serve also logs the traceback of every failed call on stderr.
  const c = await f.open('read', '/./main', {}, { command: 'borg serve --debug' });
  const missing = Buffer.alloc(32, 0x09);
  const msgid = c.request('get', { id: missing });
  const r = await c.reply(msgid);
  expect(r.exceptionClass).toBe('ObjectNotFound');
  const raw = r.raw as MsgMap;
  expect((raw.get('exception_args') as Buffer[]).map(String)).toEqual([missing.toString('hex'), '/./main']);
  const text = `Object with key ${missing.toString('hex')} not found in repository /./main.`;
  expect((raw.get('exception_short') as Buffer[]).map(String)).toEqual([text]);
  expect((raw.get('exception_full') as Buffer[]).map(String)).toEqual([text]);
  expect(raw.get('exception_trace')).toBe(true);
  expect(String(raw.get('sysinfo'))).toBe(SCRUBBED_SYSINFO);
  // The legacy format has no room for details: borg's generic text.
  const t = await tuple(c, 'get', [missing]);
  expect(t.raw).toEqual([1, t.msgid, Buffer.from('ObjectNotFound'), Buffer.from('Remote Exception (see remote log for the traceback)')]);
  expect(await f.finish(c)).toBe(0);
  // borg's debug log did reach the client, in the client's terms.
  expect(c.stderrText()).toContain(text);
  expect(c.stderrText()).toContain('Resolved repository path to');
});

test('nothing the server sent names a server path, a PID or sys.argv', () => {
  expect(f.clients.length).toBeGreaterThan(20);
  f.leakCheck();
});

test('the repositories pass borg check and still hold their archives', async () => {
  expect(await f.archives('main')).toEqual(archivesAtStart);
  for (const repo of ['main', 'secret']) {
    const r = await f.env.borg(KEYS.full, ['check', f.env.url(repo)]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  }
});

test('the ledger holds every session closed, with every denial and its reason code', async () => {
  const sessions = await f.closedLedger<{ result: string; endedAt: string | null; denials: Array<{ method: string; reason: string; message: string }> }>();
  expect(sessions.length).toBeGreaterThan(20);
  for (const s of sessions) {
    expect(s.endedAt).not.toBeNull();
    // Sessions that only rolled back may count as aborted; none failed or stayed open.
    expect(s.denials.length > 0 ? ['denied'] : ['ok', 'aborted']).toContain(s.result);
  }
  const codes = new Set(sessions.flatMap((s) => s.denials.map((d) => d.reason)));
  expect([...codes].sort()).toEqual(
    [
      'BK_DENY_BAD_ARGS',
      'BK_DENY_BREAK_LOCK',
      'BK_DENY_COMPACT',
      'BK_DENY_DELETE_OLD',
      'BK_DENY_DESTROY',
      'BK_DENY_INJECT',
      'BK_DENY_NOT_OPEN',
      'BK_DENY_OVERWRITE',
      'BK_DENY_PROTOCOL',
      'BK_DENY_REPAIR',
      'BK_DENY_ROLE',
      'BK_DENY_SAVE_KEY',
      'BK_DENY_SECOND_OPEN',
      'BK_DENY_UNKNOWN_METHOD',
      'BK_DENY_UNLOCKED_WRITE',
    ].sort(),
  );
  for (const d of sessions.flatMap((s) => s.denials)) expect(d.message).toMatch(new RegExp(`^borgkeep refused ${d.method}: `));
});
