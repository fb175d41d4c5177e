// The role matrix of ARCHITECTURE.md, driven with the real borg 1.2 client through
// `borgkeep borg-serve`. For each role, each command either works as against plain
// `borg serve`, or fails with borgkeep's refusal naming the refused call; after every refusal
// the full key sees the same archives as before and `borg check` passes.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { PASSPHRASE, makeSourceTree } from './borgkeep-env.js';
import { createRoleFixture, expectOk, expectRefused, type RoleFixture, type RoleName } from './role-fixture.js';

/** For each command: null when the role may run it, else the RPC method borgkeep refuses. */
type Expectations = Record<
  'check' | 'init' | 'create' | 'checkpoints' | 'delete' | 'prune' | 'compact' | 'rename' | 'changePassphrase' | 'breakLock',
  string | null
>;

export const EXPECTED: Record<RoleName, Expectations> = {
  // A read key changes no file: not config (borg's server-side check keeps its progress there),
  // not the nonce file (borg reserves nonces before it encrypts anything it would put).
  read: { check: 'check', init: 'open', create: 'get_free_nonce', checkpoints: 'get_free_nonce', delete: 'delete', prune: 'delete', compact: 'put', rename: 'get_free_nonce', changePassphrase: 'save_key', breakLock: 'break_lock' },
  append: { check: null, init: 'open', create: null, checkpoints: null, delete: 'delete', prune: 'delete', compact: 'commit', rename: 'delete', changePassphrase: 'save_key', breakLock: 'break_lock' },
  prune: { check: null, init: 'open', create: 'put', checkpoints: 'put', delete: null, prune: null, compact: 'commit', rename: 'put', changePassphrase: 'save_key', breakLock: 'break_lock' },
  full: { check: null, init: null, create: null, checkpoints: null, delete: null, prune: null, compact: null, rename: null, changePassphrase: null, breakLock: null },
};

/**
 * The commands run over every transport. The decisions do not depend on how the client came in
 * (the guard is the same code behind all three), so the whole matrix runs once, behind the
 * forced command; the SSH front-ends run what proves the way in: the key's identity reaching the
 * guard, data both ways, a refusal's message and exit status, the gate's message on a deferred
 * compaction, and the ledger.
 */
const TRANSPORT_SCOPE = new Set<keyof Expectations>(['check', 'create', 'delete', 'compact']);

export function defineRoleMatrix(role: RoleName, transport: RoleFixture['env']['transport'] = 'forced-command'): void {
  const expected = EXPECTED[role];
  const whole = transport === 'forced-command';
  /** `test`, for the commands this transport runs; the others are not defined at all. */
  const runs = (command: keyof Expectations): typeof test | ((...args: Parameters<typeof test>) => void) =>
    whole || TRANSPORT_SCOPE.has(command) ? test : () => undefined;
  let f: RoleFixture;

  beforeAll(async () => {
    f = await createRoleFixture(`role-${role}-${transport}`, transport);
  });
  afterAll(() => f?.env.cleanup());

  /** Runs a command that may change the repository; checks the outcome the role allows. */
  async function attempt(refusedMethod: string | null, args: string[], opts?: Parameters<RoleFixture['as']>[2]) {
    const before = await f.archives();
    const r = await f.as(role, args, opts);
    if (refusedMethod === null) {
      expectOk(r);
    } else {
      expectRefused(r, refusedMethod);
      expect(r.stderr).toContain(`role ${role}`);
      expect(await f.archives()).toEqual(before);
      await f.assertIntact();
    }
    return { r, before };
  }

  describe(`role ${role} (${transport})`, () => {
    test(`list and info work, check ${expected.check ? 'is refused' : 'works'}`, async () => {
      const list = await f.as(role, ['list', '--short', f.main]);
      expectOk(list);
      expect(list.stdout.split('\n').filter(Boolean).sort()).toEqual(['base-1', 'base-2']);
      expectOk(await f.as(role, ['info', `${f.main}::base-1`]));
      const check = await f.as(role, ['check', f.main]);
      if (expected.check === null) expectOk(check);
      else expectRefused(check, expected.check);
    });

    test('extract restores the files', async () => {
      const out = join(f.env.root, `extract-${role}`);
      mkdirSync(out);
      const r = await f.as(role, ['extract', `${f.main}::base-2`], { cwd: out });
      expectOk(r);
      // borg extracts to the path the archive was made from (the shared fixture's, when copied).
      const restored = readFileSync(join(out, f.archivedSrc.slice(1), 'file-6.txt'), 'utf8');
      expect(restored).toBe(readFileSync(join(f.src, 'file-6.txt'), 'utf8'));
    });

    runs('init')(`init ${expected.init ? 'is refused' : 'works'}`, async () => {
      const r = await f.as(role, ['init', '-e', 'repokey', f.fresh]);
      if (expected.init === null) {
        expectOk(r);
        expectOk(await f.as(role, ['list', f.fresh]));
      } else {
        expectRefused(r, expected.init);
        expect(r.stderr).toContain('only a full grant may create');
        // Nothing was created on disk.
        const list = await f.as('full', ['list', f.fresh]);
        expect(list.code).not.toBe(0);
        expect(list.stderr).toMatch(/does not exist/);
      }
    });

    runs('create')(`create ${expected.create ? 'is refused' : 'works'}`, async () => {
      makeSourceTree(f.src, 10, 3);
      const { before } = await attempt(expected.create, ['create', `${f.main}::${role}-new`, f.src]);
      if (expected.create === null) {
        expect(await f.archives()).toHaveLength(before.length + 1);
        await f.assertIntact();
      }
    });

    runs('checkpoints')(`create with checkpoints ${expected.checkpoints ? 'is refused' : 'writes and removes checkpoints'}`, async () => {
      const big = join(f.env.root, `big-${role}`);
      mkdirSync(big, { recursive: true });
      writeFileSync(join(big, 'random.bin'), randomBytes(12 * 1024 * 1024));
      const { before } = await attempt(expected.checkpoints, [
        'create',
        '--checkpoint-interval',
        '1',
        '--upload-ratelimit',
        '4096',
        '--compression',
        'none',
        `${f.main}::${role}-cp`,
        big,
      ]);
      if (expected.checkpoints === null) {
        const after = await f.archives();
        expect(after).toHaveLength(before.length + 1);
        expect(after.some((a) => a.includes('.checkpoint'))).toBe(false);
        // The backup is the newest session that wrote (the full-key list after it did not).
        const ledger = JSON.parse(await f.env.cliOk(['ledger', '--json', '--limit', '5'])) as {
          sessions: Array<{ transactions: Array<{ state: string; manifestWritten: boolean }> }>;
        };
        const backup = ledger.sessions.find((s) => s.transactions.length > 0);
        const committed = backup?.transactions.filter((t) => t.state === 'committed' && t.manifestWritten) ?? [];
        expect(committed.length, 'a checkpointed backup commits more than once').toBeGreaterThan(1);
        await f.assertIntact();
      }
    });

    runs('rename')(`rename ${expected.rename ? 'is refused' : 'works'}`, async () => {
      await attempt(expected.rename, ['rename', `${f.main}::base-2`, 'base-2-renamed']);
      if (expected.rename === null) expect((await f.archives()).some((a) => a.startsWith('base-2-renamed '))).toBe(true);
    });

    runs('delete')(`delete ${expected.delete ? 'is refused' : 'works'}`, async () => {
      await attempt(expected.delete, ['delete', `${f.main}::base-1`]);
      if (expected.delete === null) expect((await f.archives()).some((a) => a.startsWith('base-1 '))).toBe(false);
    });

    runs('prune')(`prune ${expected.prune ? 'is refused' : 'works'}`, async () => {
      await attempt(expected.prune, ['prune', '--keep-last', '1', f.main]);
      if (expected.prune === null) expect(await f.archives()).toHaveLength(1);
    });

    runs('compact')(`compact ${expected.compact ? 'is refused' : 'is deferred while removals wait for review, and goes through after an approval'}`, async () => {
      if (expected.compact === null) {
        // The full key deleted and pruned archives above: compacting would make that permanent
        // before anyone verified it, so borg's commit goes through without compaction.
        const deferred = await f.as('full', ['compact', f.main]);
        expectOk(deferred);
        expect(deferred.stderr).toContain('borgkeep: compaction deferred: transaction ');
        expect(deferred.stderr).toContain("approves them with 'borgkeep approve main'");
        await f.env.cliOk(['approve', 'main', '--yes']);
        const done = await f.as('full', ['compact', f.main]);
        expectOk(done);
        expect(done.stderr).not.toContain('deferred');
      } else {
        await attempt(expected.compact, ['compact', f.main]);
      }
      await f.assertIntact();
    });

    runs('changePassphrase')(`key change-passphrase ${expected.changePassphrase ? 'is refused' : 'works'}`, async () => {
      await attempt(expected.changePassphrase, ['key', 'change-passphrase', f.main], { env: { BORG_NEW_PASSPHRASE: PASSPHRASE } });
      expectOk(await f.as('full', ['list', f.main]));
    });

    runs('breakLock')(`break-lock ${expected.breakLock ? 'is refused' : 'works'}`, async () => {
      await attempt(expected.breakLock, ['break-lock', f.main]);
    });

    test('the ledger has every session closed, with the refusals', async () => {
      const { sessions: ledger } = JSON.parse(await f.env.cliOk(['ledger', '--json', '--limit', '500'])) as {
        sessions: Array<{ result: string; role: string | null; denials: Array<{ method: string; reason: string }> }>;
      };
      expect(ledger.every((s) => s.result !== 'open')).toBe(true);
      const mine = ledger.filter((s) => s.role === role);
      const refusedMethods = mine.flatMap((s) => s.denials.map((d) => d.method));
      const ran = (Object.keys(expected) as Array<keyof Expectations>).filter((c) => whole || TRANSPORT_SCOPE.has(c));
      const expectedRefusals = ran.map((c) => expected[c]).filter((m): m is string => m !== null);
      for (const m of expectedRefusals) expect(refusedMethods).toContain(m);
      // A full key is refused nothing: a compaction before the review is deferred, not refused.
      if (expectedRefusals.length === 0) {
        expect(mine.filter((s) => s.result !== 'ok').flatMap((s) => s.denials.map((d) => `${d.method} ${d.reason}`))).toEqual([]);
      }
    });
  });
}
