// The repository's `nonce` file against a hostile client (issue 13, finding 2): borg 1.2 lets any
// session that holds the lock (and, with lock=False, any session) rewrite it through
// commit_nonce_reservation, and once it reads 2^64-1 every encrypted `borg create` fails. The
// guard lets only writing roles in locked sessions reserve, from the file's current value and at
// most as far as borg itself reserves at once. The stock client must keep working: several
// creates, and a create after many reservations.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { makeSourceTree } from '../helpers/borgkeep-env.js';
import { KEYS, createHostileFixture, expectDenied, expectOk, type HostileFixture, type RoleName } from '../helpers/hostile-fixture.js';
import type { RpcClient } from '../helpers/rpc-client.js';

let f: HostileFixture;

beforeAll(async () => {
  f = await createHostileFixture({ label: 'nonce', encryption: 'repokey' });
});
afterAll(() => f?.cleanup());

const MAX_NONCE = 2n ** 64n - 1n;
/** borg 1.2's NONCE_SPACE_RESERVATION (crypto/nonces.py), in AES blocks. */
const NONCE_SPACE_RESERVATION = 2n ** 28n;
/** The most one stock reservation moves the nonce: that plus the blocks of a 20 MiB object (MAX_OBJECT_SIZE). */
const MAX_NONCE_RESERVATION = NONCE_SPACE_RESERVATION + (20n * 1024n * 1024n) / 16n;

/** The repository's nonce file as borg reads it. */
function repoNonce(): bigint {
  return BigInt(`0x${readFileSync(join(f.repoDir('main'), 'nonce'), 'latin1')}`);
}

async function refused(c: RpcClient, role: RoleName, method: string, args: Record<string, bigint | number | null>, why: string): Promise<void> {
  const msgid = c.request(method, args);
  expectDenied(await c.reply(msgid), { msgid, method, role, key: KEYS[role], repo: 'main', why });
}

const reasons = (c: RpcClient) => [...new Set(f.session(c).denials.map((d) => `${d.method} ${d.reason}`))];

describe('a read key', () => {
  test.each([
    ['locked, exclusive', { lock: true, exclusive: true }],
    ['unlocked', { lock: false }],
  ] as const)('may neither ask for nor reserve nonce space (%s)', async (_name, openArgs) => {
    const before = repoNonce();
    const c = await f.open('read', '/./main', openArgs);
    await refused(c, 'read', 'get_free_nonce', {}, 'the read role may not reserve nonce space');
    await refused(c, 'read', 'commit_nonce_reservation', { next_unreserved: MAX_NONCE, start_nonce: before }, 'the read role may not reserve nonce space');
    await refused(c, 'read', 'commit_nonce_reservation', { next_unreserved: before + 1000n, start_nonce: before }, 'the read role may not reserve nonce space');
    expect(await f.finish(c)).toBe(0);
    expect(reasons(c)).toEqual(['get_free_nonce BK_DENY_ROLE', 'commit_nonce_reservation BK_DENY_ROLE']);
    expect(repoNonce()).toBe(before);
    f.expectUnchanged('main');
  });
});

describe('a writing key', () => {
  test.each(['append', 'prune', 'full'] as const)('%s: nothing in a session opened with lock=False', async (role) => {
    const before = repoNonce();
    const c = await f.open(role, '/./main', { lock: false });
    await refused(c, role, 'get_free_nonce', {}, 'opened without a lock');
    await refused(c, role, 'commit_nonce_reservation', { next_unreserved: MAX_NONCE, start_nonce: before }, 'opened without a lock');
    expect(await f.finish(c)).toBe(0);
    expect(reasons(c)).toEqual(['get_free_nonce BK_DENY_UNLOCKED_WRITE', 'commit_nonce_reservation BK_DENY_UNLOCKED_WRITE']);
    expect(repoNonce()).toBe(before);
    f.expectUnchanged('main');
  });

  test('append: no jump to 2^64-1 or beyond what borg reserves at once, no reservation from another start; a normal one works', async () => {
    const before = repoNonce();
    const c = await f.open('append');
    const free = await c.call('get_free_nonce');
    expect(BigInt(free.result as number | bigint)).toBe(before);
    await refused(c, 'append', 'commit_nonce_reservation', { next_unreserved: MAX_NONCE, start_nonce: before }, 'more than the');
    await refused(c, 'append', 'commit_nonce_reservation', { next_unreserved: MAX_NONCE - 1n, start_nonce: before }, 'more than the');
    await refused(c, 'append', 'commit_nonce_reservation', { next_unreserved: before + MAX_NONCE_RESERVATION + 1n, start_nonce: before }, 'more than the');
    // A start that is not the file's: the jump would be judged from a value the attacker chose.
    await refused(c, 'append', 'commit_nonce_reservation', { next_unreserved: MAX_NONCE, start_nonce: MAX_NONCE - 10n }, "does not start at the repository's current nonce");
    await refused(c, 'append', 'commit_nonce_reservation', { next_unreserved: before + 100n, start_nonce: null }, "does not start at the repository's current nonce");
    await refused(c, 'append', 'commit_nonce_reservation', { next_unreserved: before - 1n, start_nonce: before }, 'only move forward');
    expect(repoNonce()).toBe(before);
    // What borg reserves: its reservation plus what the object it encrypts needs; at most MAX.
    const normal = before + NONCE_SPACE_RESERVATION + 25_718n;
    let msgid = c.request('commit_nonce_reservation', { next_unreserved: normal, start_nonce: before });
    expectOk(await c.reply(msgid), msgid);
    expect(repoNonce()).toBe(normal);
    msgid = c.request('commit_nonce_reservation', { next_unreserved: normal + MAX_NONCE_RESERVATION, start_nonce: normal });
    expectOk(await c.reply(msgid), msgid);
    expect(repoNonce()).toBe(normal + MAX_NONCE_RESERVATION);
    expect(await f.finish(c)).toBe(0);
    expect(reasons(c)).toEqual(['commit_nonce_reservation BK_DENY_NONCE_JUMP', 'commit_nonce_reservation BK_DENY_NONCE']);
    f.rebaseline('main');
  });
});

describe('the stock borg client', () => {
  test('creates still work after many reservations, and each of its own stays within the bound', async () => {
    // A hostile append key reserves as much as it may, many times over.
    const c = await f.open('append');
    for (let i = 0; i < 200; i++) {
      const now = repoNonce();
      const msgid = c.request('commit_nonce_reservation', { next_unreserved: now + MAX_NONCE_RESERVATION, start_nonce: now });
      expectOk(await c.reply(msgid), msgid);
    }
    expect(await f.finish(c)).toBe(0);
    const src = join(f.env.root, 'nonce-src');
    for (let i = 0; i < 4; i++) {
      makeSourceTree(src, 100 + i, 4 + i);
      const before = repoNonce();
      const role = i % 2 === 0 ? 'append' : 'full';
      await f.borgOk(role, ['create', `${f.env.url('main')}::nonce-${i}`, src]);
      const moved = repoNonce() - before;
      expect(moved, `create ${i} reserved`).toBeGreaterThan(NONCE_SPACE_RESERVATION);
      expect(moved, `create ${i} reserved`).toBeLessThanOrEqual(MAX_NONCE_RESERVATION);
    }
    expect((await f.archives('main')).filter((a) => a.startsWith('nonce-'))).toHaveLength(4);
    const check = await f.env.borg(KEYS.full, ['check', f.env.url('main')]);
    expect(check.stderr).toBe('');
    expect(check.code).toBe(0);
  });
});

test('the ledger holds every session closed and nothing reached the client that names the server', async () => {
  await f.closedLedger();
  f.leakCheck();
});
