// The compaction gate as coverage of transactions, decided at the moment of compaction from the
// history on disk (src/audit/compaction-gate.ts): the stock borg client for what it can do (a
// repository that only received backups compacts at once; a removal defers `borg compact`, which
// still succeeds and frees nothing; an approval covers what it names and nothing written later),
// the hand-written RPC client for what it cannot (a compacting commit in the same session as the
// deletes, destroy and check --repair, a legacy tuple-format commit).

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { encode } from '../../src/rpc/msgpack.js';
import { makeSourceTree } from '../helpers/borgkeep-env.js';
import { KEYS, MANIFEST_ID, createHostileFixture, expectDenied, expectOk, type HostileFixture } from '../helpers/hostile-fixture.js';

let f: HostileFixture;
const REPO = 'gated';
const COMMIT_ARGS = { save_space: false, threshold: { float: 0.1 }, cleanup_commits: false };

beforeAll(async () => {
  f = await createHostileFixture({ label: 'compaction-gate', repos: [{ name: REPO, init: true }] });
  for (const [i, name] of ['a1', 'a2', 'a3'].entries()) {
    await f.borgOk('full', ['create', `${f.env.url(REPO)}::${name}`, makeSourceTree(join(f.env.root, `src-${name}`), 10 + i)]);
  }
});
afterAll(() => f?.cleanup());

/** Segment files of the repository ("dir/number"). */
const segments = (): string[] => {
  const data = join(f.repoDir(REPO), 'data');
  return readdirSync(data).flatMap((d) => readdirSync(join(data, d)).map((s) => `${d}/${s}`)).sort();
};
const events = (kind: string) => {
  const db = f.db();
  try {
    return db
      .prepare("select e.kind, e.through_txn as throughTxn, e.actor, e.detail from repository_events e join repositories r on r.id = e.repository_id where r.name = ? and e.kind = ? order by e.id")
      .all(REPO, kind) as Array<{ kind: string; throughTxn: number | null; actor: string; detail: string }>;
  } finally {
    db.close();
  }
};
const gate = async () => (JSON.parse(await f.env.cliOk(['repo', 'show', REPO, '--json'])) as { gate: { open: boolean; why: string; waitingTxn: number | null } }).gate;
const compact = () => f.borgOk('full', ['compact', f.env.url(REPO)]);

describe('the gate decides at the moment of compaction', () => {
  test('a repository that only received backups compacts at once, and its manifest versions are kept first', async () => {
    expect((await gate()).open).toBe(true);
    const before = segments();
    const r = await compact();
    expect(r.stderr).not.toContain('deferred');
    // borg removed the segments that held the superseded manifests.
    expect(before.filter((s) => !segments().includes(s)).length).toBeGreaterThan(0);
    expect(events('compaction')).toHaveLength(1);
    // Kept outside the repository: init's manifest and one per backup.
    const kept = join(f.env.dataDir, 'kept');
    const [dir] = readdirSync(kept);
    const lines = readFileSync(join(kept, dir!, 'transactions.jsonl'), 'utf8').trim().split('\n');
    expect(lines.length).toBeGreaterThanOrEqual(4);
    expect(readdirSync(join(kept, dir!)).filter((n) => n.endsWith('.bin')).length).toBeGreaterThanOrEqual(4);
  });

  test('after a removal, borg compact succeeds but is deferred: nothing is removed, the ledger and the client say why', async () => {
    await f.borgOk('full', ['delete', `${f.env.url(REPO)}::a1`]);
    const g = await gate();
    expect(g.open).toBe(false);
    expect(g.why).toMatch(/^transaction \d+ removed or overwrote data that nobody has verified yet/);
    const before = segments();
    const r = await compact();
    expect(r.stderr).toMatch(
      /borgkeep: compaction deferred: transaction (\d+) \(session \d+, key 'hk-full', full role\) deleted \d+ objects? written by earlier sessions — not verified yet; [\d.]+ [KMG]?B waits? to be freed\. Nothing was removed/,
    );
    expect(r.stderr).toContain("'borgkeep audit gated' (with the passphrase) or approves them with 'borgkeep approve gated'");
    // Every segment is still there (borg's commit added one).
    expect(before.filter((s) => !segments().includes(s))).toEqual([]);
    const deferred = events('compaction-deferred');
    expect(deferred).toHaveLength(1);
    expect(deferred[0]).toMatchObject({ actor: expect.stringContaining("key 'hk-full'") });
    expect(deferred[0]!.detail).toContain(`transaction ${g.waitingTxn}`);
    expect(events('compaction')).toHaveLength(1);
  });

  test('destroy, check --repair and a legacy commit that cannot say compact=False are refused while anything is unverified', async () => {
    f.rebaseline(REPO);
    const c = await f.open('full', `/./${REPO}`);
    const why = 'the history holds changes nobody verified yet: transaction ';
    const expectGate = async (method: string, args: Record<string, unknown>) => {
      const msgid = c.request(method, args as never);
      expectDenied(await c.reply(msgid), { msgid, method, role: 'full', key: KEYS.full, repo: REPO, why });
    };
    await expectGate('destroy', {});
    await expectGate('check', { repair: true, save_space: false });
    const msgid = 424_242;
    c.send(encode([1, msgid, 'commit', [false]]));
    const legacy = await c.reply(msgid);
    expect(legacy.exceptionClass).toBe('PermissionDenied');
    await f.finish(c);
    expect(f.session(c).denials.map((d) => `${d.method} ${d.reason}`)).toEqual(['destroy BK_DENY_GATE', 'check BK_DENY_GATE', 'commit BK_DENY_GATE']);
    f.expectUnchanged(REPO);
  });

  test('an approval covers the transactions it names: compaction then goes through and frees the space', async () => {
    await f.env.cliOk(['approve', REPO, '--yes']);
    expect((await gate()).open).toBe(true);
    const before = segments();
    const r = await compact();
    expect(r.stderr).not.toContain('deferred');
    expect(before.filter((s) => !segments().includes(s)).length).toBeGreaterThan(0);
    expect(events('compaction')).toHaveLength(2);
    const list = await f.borgOk('full', ['list', '--short', f.env.url(REPO)]);
    expect(list.stdout.trim().split('\n').sort()).toEqual(['a2', 'a3']);
  });

  test('a removal after the approval is not covered by it', async () => {
    await f.borgOk('full', ['delete', `${f.env.url(REPO)}::a2`]);
    const before = segments();
    const r = await compact();
    expect(r.stderr).toContain('borgkeep: compaction deferred: transaction ');
    expect(before.filter((s) => !segments().includes(s))).toEqual([]);
  });

  test("a session's own deletes of older objects and its compacting commit, in one go: deferred, nothing removed", async () => {
    await f.env.cliOk(['approve', REPO, '--yes']);
    const c = await f.open('full', `/./${REPO}`);
    const listed = await c.call('list', { limit: 1000, marker: null });
    expectOk(listed, listed.msgid);
    const victim = (listed.result as Buffer[]).find((id) => !id.equals(MANIFEST_ID))!;
    const before = segments();
    // Pipelined as borg does: the commit arrives before the delete's reply.
    const del = c.request('delete', { id: victim, wait: true });
    const commit = c.request('commit', { ...COMMIT_ARGS, compact: true });
    expectOk(await c.reply(del), del);
    expectOk(await c.reply(commit), commit);
    await f.finish(c);
    expect(c.stderrText()).toContain("borgkeep: compaction deferred: this session's own transaction deletes 1 object written by earlier sessions");
    expect(before.filter((s) => !segments().includes(s))).toEqual([]);
    expect(f.session(c)).toMatchObject({ result: 'ok', denials: [] });
    expect(existsSync(f.repoDir(REPO))).toBe(true);
  });
});
