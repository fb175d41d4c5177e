// decideCall for every method borg 1.2 calls after `open`, for every role, as ARCHITECTURE.md's
// roles table and fact sheet F.6 ask. Requests are real encoded frames read by parseRequest,
// with the arguments a borg 1.2.4 client sends.

import { describe, expect, it } from 'vitest';
import { parseRequest, type RpcRequest } from '../rpc/messages.js';
import { MsgMap, encode, type EncodableValue, type MsgValue } from '../rpc/msgpack.js';
import type { Role } from '../store/types.js';
import { MANIFEST_ID, MAX_DATA_SIZE, MAX_NONCE_RESERVATION, NONCE_SPACE_RESERVATION, checkArgs, decideCall, isKnownMethod, type Decision, type DenyReason, type PolicyContext } from './grant-policy.js';

const ROLES: readonly Role[] = ['read', 'append', 'prune', 'full'];

const id = (b: number): Buffer => Buffer.alloc(32, b);
/** Committed before the session, not written by it. */
const OLD = id(0x01);
/** Never seen. */
const NEW = id(0x02);
/** Put by this session, not committed yet. */
const MINE = id(0x03);
/** Put by this session and committed by one of its checkpoints. */
const MINE_COMMITTED = id(0x04);

/** What `borg key change-passphrase` (borg 1.2.4) sent as keydata for a throw-away repository. */
const KEY_BLOB = Buffer.from(
  [
    'hqlhbGdvcml0aG2mc2hhMjU2pGRhdGHaAN4RCbjJvuL4dLsOUGUc+pL4YR5LXp5tWN83aU',
    'LymolLT6gDc7MAd5LZNw8rfRK25VNwrQE51RzRn8zBRuxEWTa49Tf2blGbMyf0uuvOEMsj',
    'TOJuZKhw0BOseqeOoMldM9TxWvOttTT9/uazg4cR2kcf5mtqTIRthUBI+4yonhe0buCJ2z',
    'S1MSLWWm5tU6JeN+cPQmzGlGTDnxvFYfPvnQxHRoVs4mLxmbocgdPnt5PBe9sWphaAQIps',
    'v41Hsp30dLZEIph9LMvKKgnkdZLN3+XiChREuvGHALTbr55Kn9KkaGFzaNoAIM44z00Zp/',
    'n6x+Mnl1EF/hdo9Pt2CY/DxYmuQhCVzUU5qml0ZXJhdGlvbnPOAAGGoKRzYWx02gAgOvUD',
    '9TJlljkDcTYK+ZWfacdffp4Emitkn73gRzaLaMqndmVyc2lvbgE=',
  ].join('\n'),
);

/** The repository's nonce file in most cases: after `borg init`'s first reservation. */
const REPO_NONCE = 268435484n;

function ctxFor(role: Role, over: Partial<PolicyContext> = {}): PolicyContext {
  const committed = [OLD, MINE_COMMITTED, MANIFEST_ID];
  const mine = [MINE, MINE_COMMITTED];
  return {
    role,
    unlocked: false,
    justCreated: false,
    existsCommitted: (x) => committed.some((c) => c.equals(x)),
    putBySession: (x) => mine.some((c) => c.equals(x)),
    currentNonce: () => REPO_NONCE,
    ...over,
  };
}

/** A dict request as the borg client encodes it, read back by parseRequest. */
function req(method: string, args: Array<[string, EncodableValue]> = [], msgid = 9): RpcRequest {
  return parseRequest(encode(MsgMap.of([['i', msgid], ['m', Buffer.from(method)], ['a', MsgMap.of(args as Array<[string, MsgValue]>)]])));
}

/** A request built directly, for payloads too large to be worth encoding. */
function rawReq(method: string, args: Array<[string, MsgValue]>): RpcRequest {
  return { format: 'dict', msgid: 1, method, args: new Map(args), unmappable: false, frame: Buffer.alloc(0) };
}

type Expect = 'ok' | DenyReason;
const ok = 'ok' as const;

const COMMIT = (compact: boolean): Array<[string, EncodableValue]> => [['save_space', false], ['compact', compact], ['threshold', 0.1], ['cleanup_commits', false]];
const data = Buffer.from('\x00\x01encrypted-chunk', 'latin1');

// [name, request, write, [read, append, prune, full]]
const TABLE: Array<[string, () => RpcRequest, boolean, [Expect, Expect, Expect, Expect]]> = [
  ['__len__', () => req('__len__'), false, [ok, ok, ok, ok]],
  ['list (first page)', () => req('list', [['limit', 100000], ['marker', null]]), false, [ok, ok, ok, ok]],
  ['list (next page)', () => req('list', [['limit', 100000], ['marker', OLD]]), false, [ok, ok, ok, ok]],
  ['scan', () => req('scan', [['limit', 100], ['marker', null]]), false, [ok, ok, ok, ok]],
  ['get', () => req('get', [['id', OLD]]), false, [ok, ok, ok, ok]],
  ['get manifest', () => req('get', [['id', MANIFEST_ID]]), false, [ok, ok, ok, ok]],
  ['load_key', () => req('load_key'), false, [ok, ok, ok, ok]],
  ['get_free_nonce', () => req('get_free_nonce'), true, ['BK_DENY_ROLE', ok, ok, ok]],
  ['commit_nonce_reservation', () => req('commit_nonce_reservation', [['next_unreserved', 536889691], ['start_nonce', 268435484]]), true, ['BK_DENY_ROLE', ok, ok, ok]],
  ['rollback', () => req('rollback'), false, [ok, ok, ok, ok]],
  ['check', () => req('check', [['repair', false], ['save_space', false], ['max_duration', 0]]), false, ['BK_DENY_ROLE', ok, ok, ok]],
  ['check --max-duration', () => req('check', [['repair', false], ['save_space', false], ['max_duration', 600]]), false, ['BK_DENY_ROLE', ok, ok, ok]],
  ['check --repair', () => req('check', [['repair', true], ['save_space', false], ['max_duration', 0]]), true, ['BK_DENY_REPAIR', 'BK_DENY_REPAIR', 'BK_DENY_REPAIR', ok]],
  ['put new chunk (async)', () => req('put', [['id', NEW], ['data', data]]), true, ['BK_DENY_ROLE', ok, 'BK_DENY_ROLE', ok]],
  ['put new chunk (sync)', () => req('put', [['id', NEW], ['data', data], ['wait', true]]), true, ['BK_DENY_ROLE', ok, 'BK_DENY_ROLE', ok]],
  ['put manifest', () => req('put', [['id', MANIFEST_ID], ['data', data], ['wait', true]]), true, ['BK_DENY_ROLE', ok, ok, ok]],
  ['put over a committed object', () => req('put', [['id', OLD], ['data', data]]), true, ['BK_DENY_ROLE', 'BK_DENY_OVERWRITE', 'BK_DENY_ROLE', ok]],
  ['put again over own checkpointed object', () => req('put', [['id', MINE_COMMITTED], ['data', data]]), true, ['BK_DENY_ROLE', 'BK_DENY_OVERWRITE', 'BK_DENY_ROLE', ok]],
  ['delete own uncommitted object', () => req('delete', [['id', MINE]]), true, ['BK_DENY_ROLE', ok, ok, ok]],
  ['delete own checkpoint object', () => req('delete', [['id', MINE_COMMITTED]]), true, ['BK_DENY_ROLE', ok, ok, ok]],
  ['delete an older object', () => req('delete', [['id', OLD]]), true, ['BK_DENY_ROLE', 'BK_DENY_DELETE_OLD', ok, ok]],
  ['delete (sync)', () => req('delete', [['id', OLD], ['wait', true]]), true, ['BK_DENY_ROLE', 'BK_DENY_DELETE_OLD', ok, ok]],
  ['delete manifest', () => req('delete', [['id', MANIFEST_ID], ['wait', true]]), true, ['BK_DENY_ROLE', 'BK_DENY_ROLE', 'BK_DENY_ROLE', ok]],
  ['commit(compact=False)', () => req('commit', COMMIT(false)), true, ['BK_DENY_ROLE', ok, ok, ok]],
  ['commit(compact=True)', () => req('commit', COMMIT(true)), true, ['BK_DENY_ROLE', 'BK_DENY_COMPACT', 'BK_DENY_COMPACT', ok]],
  ['commit without compact (1.1 client: compacts)', () => req('commit', [['save_space', false]]), true, ['BK_DENY_ROLE', 'BK_DENY_COMPACT', 'BK_DENY_COMPACT', ok]],
  ['commit without arguments', () => req('commit'), true, ['BK_DENY_ROLE', 'BK_DENY_COMPACT', 'BK_DENY_COMPACT', ok]],
  ['save_key', () => req('save_key', [['keydata', KEY_BLOB]]), true, ['BK_DENY_SAVE_KEY', 'BK_DENY_SAVE_KEY', 'BK_DENY_SAVE_KEY', ok]],
  ['break_lock', () => req('break_lock'), true, ['BK_DENY_BREAK_LOCK', 'BK_DENY_BREAK_LOCK', 'BK_DENY_BREAK_LOCK', ok]],
  ['destroy', () => req('destroy'), true, ['BK_DENY_DESTROY', 'BK_DENY_DESTROY', 'BK_DENY_DESTROY', ok]],
  ['inject_exception', () => req('inject_exception', [['kind', Buffer.from('KeyError')]]), false, ['BK_DENY_INJECT', 'BK_DENY_INJECT', 'BK_DENY_INJECT', 'BK_DENY_INJECT']],
  ['inject_exception without args', () => req('inject_exception'), false, ['BK_DENY_INJECT', 'BK_DENY_INJECT', 'BK_DENY_INJECT', 'BK_DENY_INJECT']],
];

const UNKNOWN = ['scan_low_level', 'get_many', 'preload', 'async_response', 'segments', 'prepare_txn', 'frobnicate', 'constructor', 'toString', '__proto__', 'hasOwnProperty', '__init__', 'close'];

function expectDecision(d: Decision, want: Expect, write: boolean, label: string): void {
  if (want === ok) {
    expect(d, label).toEqual({ allow: true, write });
  } else {
    expect(d, label).toMatchObject({ allow: false, reason: want });
    if (!d.allow) expect(d.why.length, label).toBeGreaterThan(10);
  }
}

describe('decideCall', () => {
  describe('every method for every role, in a locked session', () => {
    for (const [name, make, write, expected] of TABLE) {
      it(name, () => {
        for (const [i, role] of ROLES.entries()) expectDecision(decideCall(make(), ctxFor(role)), expected[i], write, `${name} as ${role}`);
      });
    }
  });

  it('refuses every write in an unlocked (lock=False) session, but lets full break a lock there', () => {
    for (const [name, make, write, expected] of TABLE) {
      for (const [i, role] of ROLES.entries()) {
        const d = decideCall(make(), ctxFor(role, { unlocked: true }));
        let want = expected[i];
        if (want === ok && write && name !== 'break_lock') want = 'BK_DENY_UNLOCKED_WRITE';
        expectDecision(d, want, write, `${name} as ${role}, unlocked`);
      }
    }
    // `borg break-lock` opens with lock=False: that is the one write it may do there
    expect(decideCall(req('break_lock'), ctxFor('full', { unlocked: true }))).toEqual({ allow: true, write: true });
    expect(decideCall(req('check', [['repair', true]]), ctxFor('full', { unlocked: true }))).toMatchObject({ allow: false, reason: 'BK_DENY_UNLOCKED_WRITE' });
  });

  it('allows save_key right after open(create=True) (borg init), and only then', () => {
    const saveKey = req('save_key', [['keydata', KEY_BLOB]]);
    for (const role of ['append', 'prune', 'full'] as const) {
      expect(decideCall(saveKey, ctxFor(role, { justCreated: true }))).toEqual({ allow: true, write: true });
    }
    for (const role of ['append', 'prune'] as const) {
      expect(decideCall(saveKey, ctxFor(role, { justCreated: false }))).toMatchObject({ allow: false, reason: 'BK_DENY_SAVE_KEY' });
    }
    expect(decideCall(saveKey, ctxFor('full', { justCreated: true, unlocked: true }))).toMatchObject({ allow: false, reason: 'BK_DENY_UNLOCKED_WRITE' });
  });

  it('refuses save_key with anything but a well-formed borg 1.2 key blob, also from a full key', () => {
    const b64 = (m: Array<[string, EncodableValue]>) => Buffer.from(encode(MsgMap.of(m as Array<[string, MsgValue]>)).toString('base64'));
    const fields = (over: Record<string, EncodableValue> = {}, drop = ''): Array<[string, EncodableValue]> =>
      (
        [
          ['algorithm', Buffer.from('sha256')],
          ['data', Buffer.alloc(222, 7)],
          ['hash', Buffer.alloc(32, 1)],
          ['iterations', 100000],
          ['salt', Buffer.alloc(32, 2)],
          ['version', 1],
        ] as Array<[string, EncodableValue]>
      )
        .filter(([k]) => k !== drop)
        .map(([k, v]) => [k, k in over ? over[k] : v]);
    expect(decideCall(req('save_key', [['keydata', b64(fields())]]), ctxFor('full'))).toEqual({ allow: true, write: true });
    const junk: Array<[string, Buffer]> = [
      ['text', Buffer.from('a key the attacker chose')],
      ['empty', Buffer.alloc(0)],
      ['base64 of junk', Buffer.from(Buffer.from('junk junk junk').toString('base64'))],
      ['bad base64', Buffer.from(KEY_BLOB.toString('latin1').replace('hqlh', 'hq!h'))],
      ['truncated', KEY_BLOB.subarray(0, 200)],
      ['no salt', b64(fields({}, 'salt'))],
      ['an extra field', b64([...fields(), ['argon2', 1]])],
      ['version 2', b64(fields({ version: 2 }))],
      ["borg 2's argon2", b64(fields({ algorithm: Buffer.from('argon2 chacha20-poly1305') }))],
      ['short salt', b64(fields({ salt: Buffer.alloc(8) }))],
      ['empty data', b64(fields({ data: Buffer.alloc(0) }))],
      ['too large', Buffer.alloc(9000, 0x41)],
    ];
    for (const [name, keydata] of junk) {
      for (const c of [ctxFor('full'), ctxFor('append', { justCreated: true })]) {
        const d = decideCall(req('save_key', [['keydata', keydata]]), c);
        expect(d, name).toMatchObject({ allow: false, reason: 'BK_DENY_SAVE_KEY' });
        if (!d.allow) expect(d.why, name).toMatch(/^the key data is not an encrypted borg 1\.2 key: /);
      }
    }
  });

  it('refuses unknown methods for every role', () => {
    for (const method of UNKNOWN) {
      for (const role of ROLES) {
        expect(decideCall(req(method), ctxFor(role)), `${method} as ${role}`).toMatchObject({ allow: false, reason: 'BK_DENY_UNKNOWN_METHOD' });
      }
      expect(isKnownMethod(method), method).toBe(false);
    }
    // negotiate and open are the guard's own business, never a policy allow
    for (const method of ['negotiate', 'open']) {
      expect(isKnownMethod(method)).toBe(true);
      for (const role of ROLES) expect(decideCall(req(method, [['client_data', 2]]), ctxFor(role)).allow).toBe(false);
    }
    for (const [name, make] of TABLE) expect(isKnownMethod(make().method), name).toBe(true);
  });

  it('refuses unknown arguments', () => {
    const cases: RpcRequest[] = [
      req('get', [['id', OLD], ['wait', true]]),
      req('__len__', [['x', 1]]),
      req('commit', [...COMMIT(false), ['force', true]]),
      req('put', [['id', NEW], ['data', data], ['overwrite', true]]),
      req('delete', [['id', MINE], ['toString', null]]),
      req('list', [['limit', 1], ['__proto__', null]]),
      req('check', [['repair', false], ['constructor', false]]),
      req('break_lock', [['force', true]]),
    ];
    for (const r of cases) {
      const d = decideCall(r, ctxFor('full'));
      expect(d, r.method).toMatchObject({ allow: false, reason: 'BK_DENY_BAD_ARGS' });
      if (!d.allow) expect(d.why).toMatch(/unknown argument/);
    }
  });

  it('refuses missing and wrongly typed arguments', () => {
    const cases: Array<[string, RpcRequest]> = [
      ['get without id', req('get')],
      ['get id of 31 bytes', req('get', [['id', Buffer.alloc(31)]])],
      ['get id of 33 bytes', req('get', [['id', Buffer.alloc(33)]])],
      ['get id as int', req('get', [['id', 5]])],
      ['get id nil', req('get', [['id', null]])],
      ['put without data', req('put', [['id', NEW]])],
      ['put without id', req('put', [['data', data]])],
      ['put data as int', req('put', [['id', NEW], ['data', 1]])],
      ['put data nil', req('put', [['id', NEW], ['data', null]])],
      ['put data as array', req('put', [['id', NEW], ['data', [data]]])],
      ['put wait as int', req('put', [['id', NEW], ['data', data], ['wait', 1]])],
      ['delete id as string of 3', req('delete', [['id', 'abc']])],
      ['commit compact as 0', req('commit', [['compact', 0]])],
      ['commit compact nil', req('commit', [['compact', null]])],
      ['commit threshold as string', req('commit', [['compact', false], ['threshold', '0.1']])],
      ['commit threshold infinite', req('commit', [['compact', false], ['threshold', Infinity]])],
      ['commit threshold NaN', req('commit', [['compact', false], ['threshold', NaN]])],
      ['list limit negative', req('list', [['limit', -1], ['marker', null]])],
      ['list limit fractional', req('list', [['limit', 1.5], ['marker', null]])],
      ['list limit as string', req('list', [['limit', '10'], ['marker', null]])],
      ['list marker of 16 bytes', req('list', [['limit', 10], ['marker', Buffer.alloc(16)]])],
      ['scan marker as int', req('scan', [['limit', 10], ['marker', 3]])],
      ['check repair as string', req('check', [['repair', 'yes']])],
      ['check repair nil', req('check', [['repair', null]])],
      ['check max_duration negative', req('check', [['max_duration', -5]])],
      ['save_key without keydata', req('save_key')],
      ['save_key keydata as map', req('save_key', [['keydata', MsgMap.of([['k', 1]])]])],
      ['nonce without start_nonce', req('commit_nonce_reservation', [['next_unreserved', 5]])],
      ['nonce without next', req('commit_nonce_reservation', [['start_nonce', 5]])],
      ['nonce next nil', req('commit_nonce_reservation', [['next_unreserved', null], ['start_nonce', null]])],
      ['nonce next negative', req('commit_nonce_reservation', [['next_unreserved', -1], ['start_nonce', null]])],
      ['nonce next as bytes', req('commit_nonce_reservation', [['next_unreserved', Buffer.alloc(8)], ['start_nonce', null]])],
    ];
    for (const [name, r] of cases) {
      for (const role of ROLES) expect(decideCall(r, ctxFor(role)), `${name} as ${role}`).toMatchObject({ allow: false, reason: 'BK_DENY_BAD_ARGS' });
      expect(checkArgs(r), name).not.toBeNull();
    }
    // optional and nullable arguments may be left out or nil
    for (const r of [req('list'), req('list', [['limit', null], ['marker', null]]), req('scan'), req('check'), req('commit', [['compact', false]]), req('put', [['id', NEW], ['data', Buffer.alloc(0)]])]) {
      expect(checkArgs(r), r.method).toBeNull();
    }
  });

  it('refuses a put larger than borg accepts, for every role', () => {
    const atLimit = rawReq('put', [['id', NEW], ['data', Buffer.alloc(MAX_DATA_SIZE)]]);
    const over = rawReq('put', [['id', NEW], ['data', Buffer.alloc(MAX_DATA_SIZE + 1)]]);
    expect(MAX_DATA_SIZE).toBe(20 * 1024 * 1024 - 41);
    expect(decideCall(atLimit, ctxFor('full'))).toEqual({ allow: true, write: true });
    expect(decideCall(atLimit, ctxFor('append'))).toEqual({ allow: true, write: true });
    for (const role of ROLES) expect(decideCall(over, ctxFor(role))).toMatchObject({ allow: false, reason: 'BK_DENY_BAD_ARGS' });
  });

  describe('nonce reservations', () => {
    const nonce = (next: EncodableValue, start: EncodableValue): RpcRequest => req('commit_nonce_reservation', [['next_unreserved', next], ['start_nonce', start]]);
    const at = (current: bigint | null | 'unreadable', role: Role = 'append') => ctxFor(role, { currentNonce: () => current });
    const WRITERS = ['append', 'prune', 'full'] as const;

    it("allow borg's own reservations: init's first, a create's, one for the largest object borg encrypts", () => {
      expect(MAX_NONCE_RESERVATION).toBe(2n ** 28n + (20n * 1024n * 1024n) / 16n);
      for (const role of WRITERS) {
        // What borg 1.2.4 sent: init (no nonce file yet), then a create of a 400 kB chunk.
        expect(decideCall(nonce(268435484, null), at(null, role))).toEqual({ allow: true, write: true });
        expect(decideCall(nonce(536896658, 268435484), at(268435484n, role))).toEqual({ allow: true, write: true });
        expect(decideCall(nonce(REPO_NONCE + MAX_NONCE_RESERVATION, REPO_NONCE), at(REPO_NONCE, role))).toEqual({ allow: true, write: true });
        // 64-bit nonces arrive as bigints
        const high = 2n ** 63n;
        expect(decideCall(nonce(high + NONCE_SPACE_RESERVATION, high), at(high, role))).toEqual({ allow: true, write: true });
      }
    });

    it('refuse a jump further than borg reserves at once, to 2^64-1 above all', () => {
      for (const role of WRITERS) {
        for (const next of [REPO_NONCE + MAX_NONCE_RESERVATION + 1n, 2n ** 64n - 1n, 2n ** 64n - 2n]) {
          expect(decideCall(nonce(next, REPO_NONCE), at(REPO_NONCE, role)), `${next} as ${role}`).toMatchObject({ allow: false, reason: 'BK_DENY_NONCE_JUMP' });
        }
        expect(decideCall(nonce(MAX_NONCE_RESERVATION + 1n, null), at(null, role))).toMatchObject({ allow: false, reason: 'BK_DENY_NONCE_JUMP' });
      }
    });

    it("refuse a reservation that does not start at the repository's nonce, or moves it back", () => {
      expect(decideCall(nonce(REPO_NONCE + 100n, REPO_NONCE - 1n), at(REPO_NONCE))).toMatchObject({ allow: false, reason: 'BK_DENY_NONCE' });
      expect(decideCall(nonce(REPO_NONCE + 100n, null), at(REPO_NONCE))).toMatchObject({ allow: false, reason: 'BK_DENY_NONCE' });
      expect(decideCall(nonce(100, 0), at(null))).toMatchObject({ allow: false, reason: 'BK_DENY_NONCE' });
      expect(decideCall(nonce(REPO_NONCE - 1n, REPO_NONCE), at(REPO_NONCE))).toMatchObject({ allow: false, reason: 'BK_DENY_NONCE' });
      expect(decideCall(nonce(REPO_NONCE + 100n, REPO_NONCE), at('unreadable'))).toMatchObject({ allow: false, reason: 'BK_DENY_NONCE' });
    });

    it('are refused to the read role and in an unlocked session, before the file is read', () => {
      const unread = () => {
        throw new Error('the nonce file must not be read');
      };
      for (const r of [req('get_free_nonce'), nonce(REPO_NONCE + 1n, REPO_NONCE)]) {
        expect(decideCall(r, ctxFor('read', { currentNonce: unread }))).toMatchObject({ allow: false, reason: 'BK_DENY_ROLE' });
        expect(decideCall(r, ctxFor('read', { currentNonce: unread, unlocked: true }))).toMatchObject({ allow: false, reason: 'BK_DENY_ROLE' });
        for (const role of WRITERS) {
          expect(decideCall(r, ctxFor(role, { currentNonce: unread, unlocked: true }))).toMatchObject({ allow: false, reason: 'BK_DENY_UNLOCKED_WRITE' });
        }
      }
    });
  });

  it('asks the repository about the id the request names', () => {
    const asked: string[] = [];
    const ctx = ctxFor('append', {
      existsCommitted: (x) => (asked.push(`committed:${x[0]}`), x.equals(OLD)),
      putBySession: (x) => (asked.push(`mine:${x[0]}`), x.equals(MINE)),
    });
    expect(decideCall(req('put', [['id', NEW], ['data', data]]), ctx).allow).toBe(true);
    expect(decideCall(req('put', [['id', OLD], ['data', data]]), ctx)).toMatchObject({ reason: 'BK_DENY_OVERWRITE' });
    expect(decideCall(req('delete', [['id', MINE]]), ctx).allow).toBe(true);
    expect(decideCall(req('delete', [['id', NEW]]), ctx)).toMatchObject({ reason: 'BK_DENY_DELETE_OLD' });
    expect(asked).toEqual(['committed:2', 'committed:1', 'mine:3', 'mine:2']);
    // the manifest always exists; rewriting it is what every backup does
    const manifestCtx = ctxFor('append', { existsCommitted: () => true });
    expect(decideCall(req('put', [['id', MANIFEST_ID], ['data', data], ['wait', true]]), manifestCtx)).toEqual({ allow: true, write: true });
    // ... while deleting it is not, even when the session just wrote it
    expect(decideCall(req('delete', [['id', MANIFEST_ID]]), ctxFor('append', { putBySession: () => true }))).toMatchObject({ allow: false, reason: 'BK_DENY_ROLE' });
    expect(decideCall(req('delete', [['id', MANIFEST_ID]]), ctxFor('prune', { putBySession: () => true }))).toMatchObject({ allow: false, reason: 'BK_DENY_ROLE' });
  });

  describe('legacy tuple requests', () => {
    const tuple = (method: string, argv: EncodableValue[]): RpcRequest => parseRequest(encode([1, 5, method, argv]));

    it('decides mappable tuple calls like dict calls', () => {
      expect(decideCall(tuple('get', [OLD]), ctxFor('read'))).toEqual({ allow: true, write: false });
      expect(decideCall(tuple('put', [NEW, data]), ctxFor('append'))).toEqual({ allow: true, write: true });
      expect(decideCall(tuple('put', [OLD, data]), ctxFor('append'))).toMatchObject({ allow: false, reason: 'BK_DENY_OVERWRITE' });
      // a tuple commit has only save_space: compact defaults to True on the server
      expect(decideCall(tuple('commit', [false]), ctxFor('append'))).toMatchObject({ allow: false, reason: 'BK_DENY_COMPACT' });
      expect(decideCall(tuple('commit', [false]), ctxFor('full'))).toEqual({ allow: true, write: true });
      expect(decideCall(tuple('check', [true, false]), ctxFor('prune'))).toMatchObject({ allow: false, reason: 'BK_DENY_REPAIR' });
    });

    it('refuses unmappable tuple calls (they would crash borg serve)', () => {
      for (const role of ROLES) {
        // methods borg serve has no positional mapping for
        expect(decideCall(tuple('scan', [100, null]), ctxFor(role))).toMatchObject({ allow: false, reason: 'BK_DENY_BAD_ARGS' });
        // too few positional arguments
        expect(decideCall(tuple('put', [NEW]), ctxFor(role))).toMatchObject({ allow: false, reason: 'BK_DENY_BAD_ARGS' });
        expect(decideCall(tuple('get', []), ctxFor(role))).toMatchObject({ allow: false, reason: 'BK_DENY_BAD_ARGS' });
        expect(decideCall(tuple('commit_nonce_reservation', [5]), ctxFor(role))).toMatchObject({ allow: false, reason: 'BK_DENY_BAD_ARGS' });
        expect(decideCall(tuple('frobnicate', []), ctxFor(role))).toMatchObject({ allow: false, reason: 'BK_DENY_UNKNOWN_METHOD' });
        expect(decideCall(tuple('inject_exception', [Buffer.from('KeyError')]), ctxFor(role))).toMatchObject({ allow: false, reason: 'BK_DENY_INJECT' });
      }
    });
  });
});
