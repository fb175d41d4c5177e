// --writes-per-day counts backups: sessions that commit new objects besides the manifest. The
// limit is claimed in the store at a session's first new object, after borg holds the lock and
// before that object is forwarded, so sessions racing each other cannot all get past it; a
// borgmatic run's prune and compact do not use it up; a claim of a session that ended without
// committing is given back.

import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { makeSourceTree } from '../helpers/borgkeep-env.js';
import { OPEN_DEFAULTS, createHostileFixture, expectDenied, expectOk, type HostileFixture } from '../helpers/hostile-fixture.js';
import type { Reply, RpcClient } from '../helpers/rpc-client.js';

const RACERS = 4;
const LIMIT_WHY = 'the grant allows 1 backup per 24 hours and it is used up';

let f: HostileFixture;

beforeAll(async () => {
  f = await createHostileFixture({
    label: 'backups-per-day',
    repos: [
      { name: 'race-a', init: true },
      { name: 'race-b', init: true },
      { name: 'daily', init: true },
      { name: 'released', init: true },
    ],
  });
  const env = f.env;
  const added = new Set<string>();
  for (const [key, repo, role] of [
    ['bp-racer', 'race-a', 'append'],
    ['bp-racer', 'race-b', 'append'],
    ['bp-owner', 'daily', 'full'],
    ['bp-release', 'released', 'append'],
  ] as const) {
    if (!added.has(key)) await env.addKey(key);
    added.add(key);
    await env.cliOk(['grant', key, repo, '--role', role, '--writes-per-day', '1']);
  }
});
afterAll(() => f?.cleanup());

const commitArgs = { save_space: false, compact: false, threshold: { float: 0.1 }, cleanup_commits: false } as const;

/** Sessions of `repo` whose committed transactions put new objects (the ledger's backups). */
function backupsIn(repo: string): number {
  const db = f.db();
  try {
    const row = db
      .prepare(
        `select count(distinct s.id) as n from sessions s join transactions t on t.session_id = s.id
         where s.repository_name = ? and t.state = 'committed' and t.objects_put > 0`,
      )
      .get(repo) as { n: number };
    return row.n;
  } finally {
    db.close();
  }
}

describe('sessions racing each other under a limit of 1', () => {
  // A: each sends open, a put of new data and a commit in one burst. B: a hostile client's
  // variant, an empty commit first (what today's guard decided the limit on, before borg had
  // even taken the lock), then the data and a second commit.
  test.each([
    ['race-a', 'open, put, commit'],
    ['race-b', 'open, commit, put, commit'],
  ] as const)('%s (%s): exactly one session commits new data; the others are refused at their put', async (repo, shape) => {
    const clients: RpcClient[] = [];
    const puts: number[] = [];
    const commits: number[][] = [];
    for (let i = 0; i < RACERS; i++) {
      const c = f.start('bp-racer');
      clients.push(c);
      void c.negotiate();
      // A long lock_wait: the sessions queue for borg's lock instead of timing out.
      c.request('open', { path: `/./${repo}`, ...OPEN_DEFAULTS, lock_wait: 60 });
      const mine: number[] = [];
      if (shape.startsWith('open, commit')) mine.push(c.request('commit', commitArgs));
      puts.push(c.request('put', { id: randomBytes(32), data: randomBytes(1000), wait: true }));
      mine.push(c.request('commit', commitArgs));
      commits.push(mine);
      c.process.stdin.end(); // the whole session is one burst
    }
    const putReplies: Reply[] = await Promise.all(clients.map((c, i) => c.reply(puts[i]!, 90_000)));
    await Promise.all(clients.map((c, i) => Promise.all(commits[i]!.map((m) => c.reply(m, 90_000)))));
    for (const c of clients) expect(await f.finish(c)).toBe(0);

    const accepted = putReplies.filter((r) => r.exceptionClass === null);
    expect(accepted).toHaveLength(1);
    for (const [i, r] of putReplies.entries()) {
      if (r.exceptionClass !== null) expectDenied(r, { msgid: puts[i]!, method: 'put', role: 'append', key: 'bp-racer', repo, why: LIMIT_WHY });
    }
    expect(backupsIn(repo)).toBe(1);
    const refused = clients.map((c) => f.session(c)).filter((s) => s.denials.some((d) => d.reason === 'BK_DENY_WRITE_LIMIT'));
    expect(refused).toHaveLength(RACERS - 1);
    for (const s of refused) expect(s.transactions.filter((t) => t.objectsPut > 0)).toEqual([]);
  });
});

describe("a borgmatic run (prune, compact, create) with a full key's --writes-per-day 1", () => {
  test('prune and compact do not use the day up: the create works', async () => {
    const env = f.env;
    // Archives to prune, made by another key (its backups are not the owner's).
    for (const name of ['old-1', 'old-2']) await f.borgOk('full', ['create', `${env.url('daily')}::${name}`, makeSourceTree(join(env.root, name), name.length)]);
    const prune = await env.borg('bp-owner', ['prune', '--keep-last', '1', env.url('daily')]);
    expect(prune.stderr).toBe('');
    expect(prune.code).toBe(0);
    // The gate is another part's business: review the prune, so the compaction is allowed.
    await env.cliOk(['approve', 'daily', '--yes']);
    const compact = await env.borg('bp-owner', ['compact', env.url('daily')]);
    expect(compact.stderr).toBe('');
    expect(compact.code).toBe(0);
    const create = await env.borg('bp-owner', ['create', `${env.url('daily')}::today`, makeSourceTree(join(env.root, 'today'), 11)]);
    expect(create.stderr).toBe('');
    expect(create.code).toBe(0);
    expect((await f.archives('daily')).map((a) => a.split(' ')[0])).toEqual(['old-2', 'today']);
  });

  test('a second create the same day is refused at its first data put, and nothing is written', async () => {
    const env = f.env;
    f.rebaseline('daily');
    const r = await env.borg('bp-owner', ['create', `${env.url('daily')}::again`, makeSourceTree(join(env.root, 'again'), 12)]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`borgkeep refused put: ${LIMIT_WHY}`);
    f.expectUnchanged('daily');
    expect((await f.archives('daily')).map((a) => a.split(' ')[0])).toEqual(['old-2', 'today']);
    // A prune the same day still works: it is no backup.
    const prune = await env.borg('bp-owner', ['prune', '--keep-last', '1', env.url('daily')]);
    expect(prune.code, prune.stderr).toBe(0);
    expect((await f.archives('daily')).map((a) => a.split(' ')[0])).toEqual(['today']);
  });
});

test('a claim of a session that ended without committing is given back', async () => {
  const c = f.start('bp-release');
  await c.open('/./released');
  expectOk(await c.call('put', { id: randomBytes(32), data: Buffer.from('started, never committed') }), 3);
  expect(await f.finish(c)).toBe(0);
  expect(f.session(c).result).toBe('aborted');
  const r = await f.env.borg('bp-release', ['create', `${f.env.url('released')}::after`, makeSourceTree(join(f.env.root, 'after'), 13)]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
});

test('nothing the server sent names a server path, a PID or sys.argv', () => {
  f.leakCheck();
});
