// The limits on a grant, against a client that knows them: backups per day, source
// address ranges, expiry, and a revoked key. Each refusal is a PermissionDenied reply that
// names what ran out (the address, the expiry, the key) and nothing reaches the repository.

import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { makeSourceTree } from '../helpers/borgkeep-env.js';
import type { RpcClient } from '../helpers/rpc-client.js';
import { KEYS, MANIFEST_ID, OPEN_DEFAULTS, createHostileFixture, expectDenied, expectOk, type HostileFixture } from '../helpers/hostile-fixture.js';

const DAILY = 'hk-daily'; // append, --writes-per-day 1
const FENCED = 'hk-fenced'; // read, --from 10.0.0.0/8
const EXPIRED = 'hk-expired'; // read, expiry moved into the past
const REVOKED = 'hk-revoked'; // read, then revoked
const PAST = '2020-01-01T00:00:00.000Z';

let f: HostileFixture;
let archivesAtStart: string[];

beforeAll(async () => {
  f = await createHostileFixture({ label: 'grant-limits' });
  const env = f.env;
  for (const key of [DAILY, FENCED, EXPIRED, REVOKED]) await env.addKey(key);
  await env.cliOk(['grant', DAILY, 'main', '--role', 'append', '--writes-per-day', '1']);
  await env.cliOk(['grant', FENCED, 'main', '--role', 'read', '--from', '10.0.0.0/8']);
  await env.cliOk(['grant', EXPIRED, 'main', '--role', 'read', '--expires', '30d']);
  await env.cliOk(['grant', REVOKED, 'main', '--role', 'read']);
  await env.cliOk(['key', 'revoke', REVOKED]);
  // The CLI refuses an expiry in the past, so move it there behind its back.
  const db = f.db();
  try {
    const r = db.prepare('update grants set expires_at = ? where key_id = (select id from ssh_keys where name = ?)').run(PAST, EXPIRED);
    expect(r.changes).toBe(1);
  } finally {
    db.close();
  }
  archivesAtStart = await f.archives('main');
});
afterAll(() => f?.cleanup());

const NEW_ID = Buffer.alloc(32, 0x5a);

/** Negotiates and sends open("/./main"); returns the client and the open's msgid and reply. */
async function tryOpen(key: string, address?: string) {
  const c = f.start(key, address ? { address } : {});
  await c.negotiate();
  const msgid = c.request('open', { path: '/./main', ...OPEN_DEFAULTS });
  return { c, msgid, reply: await c.reply(msgid) };
}

/** After a refused open nothing is open: the next call is refused too, and the session ends cleanly. */
async function nothingOpen(c: RpcClient, key: string, role: 'read' | 'none', repo: string): Promise<void> {
  const msgid = c.request('get', { id: MANIFEST_ID });
  expectDenied(await c.reply(msgid), { msgid, method: 'get', role, key, repo, why: 'no repository is open' });
  expect(await f.finish(c)).toBe(0);
}

describe('--writes-per-day 1', () => {
  test('the first backup works', async () => {
    const r = await f.env.borg(DAILY, ['create', `${f.env.url('main')}::daily-1`, makeSourceTree(join(f.env.root, 'daily'), 7)]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(await f.archives('main')).toHaveLength(archivesAtStart.length + 1);
    f.rebaseline('main');
  });

  test("the second session's first write is refused; its reads still work", async () => {
    const c = f.start(DAILY);
    await c.open('/./main');
    expectOk(await c.call('get', { id: MANIFEST_ID }), 2 + 1);
    const why = 'the grant allows 1 backup per 24 hours and it is used up';
    for (const [method, args] of [
      ['put', { id: NEW_ID, data: Buffer.from('a new chunk') }],
      ['put', { id: MANIFEST_ID, data: Buffer.from('a new manifest'), wait: true }],
      ['commit', { save_space: false, compact: false, threshold: { float: 0.1 }, cleanup_commits: false }],
    ] as const) {
      const msgid = c.request(method, args);
      expectDenied(await c.reply(msgid), { msgid, method, role: 'append', key: DAILY, repo: 'main', why });
    }
    expect(typeof (await c.call('__len__')).result).toBe('number');
    expect(await f.finish(c)).toBe(0);
    const s = f.session(c);
    expect([...new Set(s.denials.map((d) => `${d.method} ${d.reason}`))]).toEqual(['put BK_DENY_WRITE_LIMIT', 'commit BK_DENY_WRITE_LIMIT']);
    expect(s.transactions).toEqual([]);
    f.expectUnchanged('main');
  });

  test('a real borg create is refused at its first put, before any data reaches the repository', async () => {
    const r = await f.env.borg(DAILY, ['create', `${f.env.url('main')}::daily-2`, join(f.env.root, 'daily')]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('borgkeep refused put: the grant allows 1 backup per 24 hours');
    f.expectUnchanged('main');
  });

  test('other keys on the same repository are not limited by it', async () => {
    const c = await f.open('append');
    expectOk(await c.call('put', { id: NEW_ID, data: Buffer.from('x') }), 3);
    expectOk(await c.call('rollback'), 4);
    expect(await f.finish(c)).toBe(0);
    f.rebaseline('main'); // borg leaves the rolled-back segment until the next write
  });
});

describe('--from 10.0.0.0/8', () => {
  test('a client at 127.0.0.1 is refused at open, naming its address', async () => {
    const { c, msgid, reply } = await tryOpen(FENCED, '127.0.0.1');
    expectDenied(reply, { msgid, method: 'open', role: 'read', key: FENCED, repo: 'main', why: "the client address 127.0.0.1 is not in the grant's allowed ranges" });
    await nothingOpen(c, FENCED, 'read', 'main');
    expect(f.session(c).denials.map((d) => d.reason)).toEqual(['BK_DENY_ADDRESS', 'BK_DENY_NOT_OPEN']);
  });

  test.each(['10.1.2.3', '::ffff:10.1.2.3'])('a client at %s may open', async (address) => {
    const { c, reply } = await tryOpen(FENCED, address);
    expect(reply.exceptionClass, reply.message).toBeNull();
    expect(typeof (await c.call('__len__')).result).toBe('number');
    expect(await f.finish(c)).toBe(0);
    expect(f.session(c)).toMatchObject({ result: 'ok', denials: [] });
  });

  test('a client at 11.0.0.1 is refused', async () => {
    const { c, msgid, reply } = await tryOpen(FENCED, '11.0.0.1');
    expectDenied(reply, { msgid, method: 'open', role: 'read', key: FENCED, repo: 'main', why: 'the client address 11.0.0.1 is not in' });
    expect(await f.finish(c)).toBe(0);
  });
});

test('an expired grant is refused at open, naming the expiry', async () => {
  const { c, msgid, reply } = await tryOpen(EXPIRED);
  expectDenied(reply, { msgid, method: 'open', role: 'read', key: EXPIRED, repo: 'main', why: `the grant expired on ${PAST}` });
  await nothingOpen(c, EXPIRED, 'read', 'main');
  expect(f.session(c).denials.map((d) => d.reason)).toEqual(['BK_DENY_EXPIRED', 'BK_DENY_NOT_OPEN']);
});

test('a revoked key is refused at open, naming the key', async () => {
  const { c, msgid, reply } = await tryOpen(REVOKED);
  expectDenied(reply, { msgid, method: 'open', role: 'none', key: REVOKED, repo: '/./main', why: `the key '${REVOKED}' was revoked on ` });
  await nothingOpen(c, REVOKED, 'none', '/./main');
  expect(f.session(c).denials.map((d) => d.reason)).toEqual(['BK_DENY_REVOKED', 'BK_DENY_NOT_OPEN']);
});

test('a key borgkeep does not know is refused at open, naming it', async () => {
  const { c, msgid, reply } = await tryOpen('no-such-key');
  expectDenied(reply, { msgid, method: 'open', role: 'none', key: 'no-such-key', repo: '/./main', why: "the key 'no-such-key' is not registered with borgkeep" });
  expect(await f.finish(c)).toBe(0);
});

test('nothing the server sent names a server path, a PID or sys.argv', () => {
  expect(f.clients.length).toBeGreaterThan(6);
  f.leakCheck();
});

test('the repository passes borg check and holds the one daily archive more', async () => {
  f.expectUnchanged('main');
  expect(await f.archives('main')).toHaveLength(archivesAtStart.length + 1);
  const r = await f.env.borg(KEYS.full, ['check', f.env.url('main')]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
});

test('the ledger holds every session closed, with the limits as reason codes', async () => {
  const sessions = await f.closedLedger<{ keyName: string | null; result: string; endedAt: string | null; denials: Array<{ reason: string }> }>();
  for (const s of sessions) expect(s.endedAt).not.toBeNull();
  expect([...new Set(sessions.flatMap((s) => s.denials.map((d) => d.reason)))].sort()).toEqual(
    ['BK_DENY_ADDRESS', 'BK_DENY_EXPIRED', 'BK_DENY_NOT_OPEN', 'BK_DENY_REVOKED', 'BK_DENY_WRITE_LIMIT'].sort(),
  );
  // The daily key wrote in exactly one session.
  const daily = sessions.filter((s) => s.keyName === DAILY);
  expect(daily.map((s) => s.result).sort()).toEqual(['denied', 'denied', 'ok']);
});
