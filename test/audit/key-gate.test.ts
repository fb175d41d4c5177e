// The compaction gate's decision with the repository key held (src/audit/key-gate.ts through
// src/guard/compaction-check.ts), on real repositories that the real borg client wrote locally
// (repokey, so the manifests are encrypted), with the ledger's attributions given by hand: a full
// session's prune is verified by the audit with the key and compaction is allowed, with the
// coverage to record; an append session's `delete --force --force` (a manifest-only removal, which
// the key-less rule lets through) defers it, naming the transaction, the archive and the rule; a
// transaction the guard judged at its commit is not decoded again; without the key the decision
// is the key-less one. Also the decision's time on a repository of 200 transactions.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { readHistory } from '../../src/audit/history.js';
import { checkCompaction, type CompactionCheckDeps } from '../../src/guard/compaction-check.js';
import { unlockKey, type BorgKey } from '../../src/repository/borg-key.js';
import { parseRepoConfig } from '../../src/repository/repo-config.js';
import type { RepositoryEvent } from '../../src/store/history-store.js';
import type { Repository, Role } from '../../src/store/types.js';
import { PASSPHRASE, makeSourceTree, run } from '../helpers/borgkeep-env.js';

const root = mkdtempSync(join(tmpdir(), 'key-gate-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const borgEnv = { ...process.env, BORG_PASSPHRASE: PASSPHRASE, BORG_BASE_DIR: join(root, 'client'), BORG_DELETE_I_KNOW_WHAT_I_AM_DOING: 'YES', LANG: 'C.UTF-8' };
async function borg(args: string[]): Promise<string> {
  const r = await run('borg', args, { env: borgEnv });
  if (r.code !== 0) throw new Error(`borg ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

const repository = (dirName: string): Repository => ({ id: 1, name: dirName, dirName, quotaBytes: null, expectedIntervalSeconds: 86400, createdAt: new Date() });
const keyOf = (path: string): BorgKey => {
  const config = parseRepoConfig(readFileSync(join(path, 'config'), 'utf8'));
  return unlockKey(config.key!, PASSPHRASE, config.id);
};

/** A repository with init and one backup per name; returns its path. */
async function repoWith(name: string, archives: string[]): Promise<string> {
  const path = join(root, name);
  await borg(['init', '-e', 'repokey', path]);
  // An hour apart, oldest first: backups made one after another can start within one second,
  // which borg prune's --keep-last (and the grant's rule) counts once.
  const hoursAgo = (h: number) => new Date(Date.now() - h * 3_600_000).toISOString().slice(0, 19);
  for (const [i, a] of archives.entries()) {
    await borg(['create', '--timestamp', hoursAgo(archives.length - i), `${path}::${a}`, makeSourceTree(join(root, `src-${name}-${i}`), i, 2)]);
  }
  return path;
}

/** The ledger as the gate reads it: each transaction on disk made by a session of `roleOf(id)`. */
async function ledgerFor(path: string, roleOf: (id: number) => Role, checked: (id: number) => boolean = () => false) {
  const h = await readHistory(path);
  return h.transactions.map((t, i) => ({ borgTransactionId: t.id, sessionId: i + 1, keyName: `k-${roleOf(t.id)}`, role: roleOf(t.id), at: new Date(), archiveChecked: checked(t.id) }));
}

function deps(attributions: Awaited<ReturnType<typeof ledgerFor>>, key: BorgKey | null, events: RepositoryEvent[] = []): CompactionCheckDeps {
  return {
    store: { listEvents: async () => events, listCommittedTransactions: async () => attributions },
    dataDir: join(root, 'data'),
    repositoryKey: key ? () => key : undefined,
  };
}
const noPending = { sessionId: 99, deletedOlder: 0, overwritten: 0 };
const lastTxn = async (path: string) => (await readHistory(path)).transactions.at(-1)!.id;

describe('the gate with the key held', () => {
  let pruned: string;
  let pruneTxn: number;
  beforeAll(async () => {
    pruned = await repoWith('pruned', ['a1', 'a2', 'a3']);
    await borg(['prune', '--keep-last', '1', pruned]);
    pruneTxn = await lastTxn(pruned);
  });

  test("a full session's prune: deferred without the key, verified with it (coverage through the newest transaction)", async () => {
    const ledger = await ledgerFor(pruned, () => 'full');
    const without = await checkCompaction(deps(ledger, null), repository('pruned'), pruned, noPending);
    expect(without.decision.allow).toBe(false);
    expect(without.verifiedWithKey ?? null).toBeNull();
    const started = performance.now();
    const withKey = await checkCompaction(deps(ledger, keyOf(pruned)), repository('pruned'), pruned, noPending);
    const ms = performance.now() - started;
    expect(withKey.decision.allow, withKey.why).toBe(true);
    expect(withKey.verifiedWithKey).toMatchObject({ throughTxn: pruneTxn });
    expect(withKey.verifiedWithKey!.detail).toMatch(/verified with the repository key borgkeep holds \(\d+ audited, \d+ manifests? decoded, 0 judged at their commit\) in \d+ ms/);
    expect(ms).toBeLessThan(1000);
  });

  test('the same prune by a prune session is verified; by an append session it is not', async () => {
    const asPrune = await ledgerFor(pruned, (id) => (id === pruneTxn ? 'prune' : 'full'));
    expect((await checkCompaction(deps(asPrune, keyOf(pruned)), repository('pruned'), pruned, noPending)).decision.allow).toBe(true);
    const asAppend = await ledgerFor(pruned, (id) => (id === pruneTxn ? 'append' : 'full'));
    const d = await checkCompaction(deps(asAppend, keyOf(pruned)), repository('pruned'), pruned, noPending);
    expect(d.decision.allow).toBe(false);
    expect(d.why).toContain(`the audit with the repository key borgkeep holds found transaction ${pruneTxn} (session`);
    expect(d.why).toMatch(/a session with the append role removed a1, a2/);
  });

  test("a prune session's removal beyond its grant's retention rule defers it, naming the rule (the judgement the live guard uses)", async () => {
    const asPrune = await ledgerFor(pruned, (id) => (id === pruneTxn ? 'prune' : 'full'));
    const rule = (keepLast: number) => ({ ...deps(asPrune, keyOf(pruned)), retentionOf: () => ({ minAgeSeconds: null, keepLast, prefix: null }) });
    const d = await checkCompaction(rule(3), repository('pruned'), pruned, noPending);
    expect(d.decision.allow).toBe(false);
    expect(d.why).toContain('the prune session removed a1, a2, among the 3 newest archives its --keep-last 3 keeps');
    // Within the rule: verified.
    expect((await checkCompaction(rule(1), repository('pruned'), pruned, noPending)).decision.allow).toBe(true);
    const young = await checkCompaction(
      { ...deps(asPrune, keyOf(pruned)), retentionOf: () => ({ minAgeSeconds: 30 * 86400, keepLast: null, prefix: null }) },
      repository('pruned'),
      pruned,
      noPending,
    );
    expect(young.why).toMatch(/the prune session removed a1, a2, younger than its --min-age 30d by the server's first sighting/);
  });

  test("a prune key whose grant is gone (revoked since) vouches for nothing: its removals defer the compaction", async () => {
    const asPrune = await ledgerFor(pruned, (id) => (id === pruneTxn ? 'prune' : 'full'));
    const base = deps(asPrune, keyOf(pruned));
    const d = await checkCompaction({ ...base, store: { ...base.store, findKey: async () => undefined, findGrant: async () => undefined } }, repository('pruned'), pruned, noPending);
    expect(d.decision.allow).toBe(false);
    expect(d.why).toContain("the prune key's grant on the repository is gone, so its rule cannot vouch for removing a1, a2");
  });

  test('transactions the guard judged at their commit are not decoded again', async () => {
    const ledger = await ledgerFor(pruned, () => 'full', () => true);
    const d = await checkCompaction(deps(ledger, keyOf(pruned)), repository('pruned'), pruned, noPending);
    expect(d.decision.allow).toBe(true);
    expect(d.verifiedWithKey!.detail).toMatch(/\(0 audited, 0 manifests decoded, \d+ judged at their commit\)/);
  });

  test('what an approval covers is not audited again; the asking session\'s own deletes still defer', async () => {
    const ledger = await ledgerFor(pruned, () => 'append');
    const approved: RepositoryEvent = { id: 1, repositoryId: 1, kind: 'approve', throughTxn: pruneTxn, verdict: null, actor: 'ann', detail: '', at: new Date() };
    const d = await checkCompaction(deps(ledger, keyOf(pruned), [approved]), repository('pruned'), pruned, noPending);
    expect(d.decision.allow).toBe(true);
    expect(d.verifiedWithKey ?? null).toBeNull(); // nothing after the approval to cover
    const own = await checkCompaction(deps(ledger, keyOf(pruned), [approved]), repository('pruned'), pruned, { sessionId: 99, deletedOlder: 4, overwritten: 0 });
    expect(own.decision.allow).toBe(false);
    expect(own.why).toContain("this session's own transaction deletes 4 objects written by earlier sessions, which is not on disk to be audited yet");
  });
});

test("an append session's delete --force --force (manifest only): allowed by the key-less rule, deferred with the key", async () => {
  const path = await repoWith('forced', ['host1-a', 'host2-a']);
  await borg(['delete', '--force', '--force', `${path}::host1-a`]);
  const hostile = await lastTxn(path);
  const ledger = await ledgerFor(path, (id) => (id === hostile ? 'append' : 'full'));
  expect((await checkCompaction(deps(ledger, null), repository('forced'), path, noPending)).decision.allow).toBe(true);
  const d = await checkCompaction(deps(ledger, keyOf(path)), repository('forced'), path, noPending);
  expect(d.decision.allow).toBe(false);
  expect(d.verifiedWithKey ?? null).toBeNull();
  expect(d.why).toMatch(new RegExp(`^the audit with the repository key borgkeep holds found transaction ${hostile} \\(session \\d+, key 'k-append', append role\\): a session with the append role removed host1-a`));
});

test('a manifest written back unchanged (borg with-lock; a deferred borg compact leaves the same) is no finding', async () => {
  const path = await repoWith('relocked', ['b1', 'b2']);
  await borg(['prune', '--keep-last', '1', path]);
  await borg(['with-lock', path, 'true']);
  const ledger = await ledgerFor(path, () => 'full');
  const d = await checkCompaction(deps(ledger, keyOf(path)), repository('relocked'), path, noPending);
  expect(d.decision.allow, d.why).toBe(true);
  expect(d.verifiedWithKey).toMatchObject({ throughTxn: await lastTxn(path) });
});

test('a locked vault (the key seam throws) leaves the key-less decision', async () => {
  const path = join(root, 'pruned');
  const ledger = await ledgerFor(path, () => 'full');
  const d = await checkCompaction(
    {
      ...deps(ledger, null),
      repositoryKey: () => {
        throw new Error('the vault is locked');
      },
    },
    repository('pruned'),
    path,
    noPending,
  );
  expect(d.decision.allow).toBe(false);
  expect(d.why).toContain('not verified yet');
});
