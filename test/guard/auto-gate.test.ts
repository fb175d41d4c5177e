// The automatic compaction gate (issue 14, scope 3) with the real borg client through the guard
// (the embedded gateway), on repokey repositories: with the key in the vault, a `full` key's routine `borg prune` +
// `borg compact` goes through with no admin action (segment files removed, the coverage recorded
// as an audit by the automatic gate), cycle after cycle; an earlier hostile transaction (an append
// key's `borg delete --force --force` of another machine's archive, before the key was handed
// over) defers the compaction with the audit's reasons in borg's output, the ledger and the alert,
// and nothing is removed. Before borgkeep holds the key, the same prune defers as before.

import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { createAlertEngine } from '../../src/alerts/alert-engine.js';
import { createMonitor } from '../../src/alerts/monitor.js';
import { openStore } from '../../src/store/database.js';
import { createBorgkeepEnv, makeSourceTree, PASSPHRASE, type BorgkeepEnv } from '../helpers/borgkeep-env.js';

let env: BorgkeepEnv;
const GATE_ACTOR = 'automatic gate (key held)';

async function borgOk(key: string, args: string[]) {
  const r = await env.borg(key, args);
  expect(r.code, `borg ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r;
}
let seed = 100;
const create = (key: string, repo: string, name: string) => borgOk(key, ['create', `${env.url(repo)}::${name}`, makeSourceTree(join(env.root, `src-${seed}`), seed++, 3)]);
const list = async (repo: string) => (await borgOk('owner', ['list', '--short', env.url(repo)])).stdout.split('\n').filter(Boolean).sort();

/** Segment files of a repository ("dir/number"). */
async function segments(repo: string): Promise<string[]> {
  const data = join(await env.repoPath(repo), 'data');
  return readdirSync(data).flatMap((d) => readdirSync(join(data, d)).map((s) => `${d}/${s}`)).sort();
}

/** Hands borgkeep the repository's key: `borgkeep repo key NAME --passphrase-file F`. */
async function handKey(repo: string): Promise<void> {
  const file = join(env.root, 'passphrase');
  writeFileSync(file, `${PASSPHRASE}\n`, { mode: 0o600 });
  await env.cliOk(['repo', 'key', repo, '--passphrase-file', file]);
}

interface EventRow {
  kind: string;
  throughTxn: number | null;
  actor: string;
  verdict: string | null;
  detail: string;
}
async function events(repo: string): Promise<EventRow[]> {
  const { events: all } = JSON.parse(await env.cliOk(['ledger', '--json', '--repo', repo, '--limit', '100'])) as { events: EventRow[] };
  return all.filter((e) => ['audit', 'approve', 'compaction', 'compaction-deferred'].includes(e.kind)).reverse();
}

/** The state alerts the running server would raise now (alert-rules.ts through the monitor). */
async function stateAlerts(): Promise<Array<{ rule: string; summary: string; detail: string }>> {
  const store = await openStore({ dataDir: env.dataDir });
  try {
    const engine = createAlertEngine({ store, notifier: { notify: async () => undefined }, now: () => new Date(), repositoryName: async () => null });
    const monitor = createMonitor({ store, engine, now: () => new Date(), sizeOf: async () => null, disk: async () => null });
    await monitor.evaluate('state');
    return (await store.openAlerts()).map((a) => ({ rule: a.rule, summary: a.summary, detail: a.detail }));
  } finally {
    await store.close();
  }
}

beforeAll(async () => {
  // The embedded gateway: one server process for every session, so the test stays quick.
  env = createBorgkeepEnv('auto-gate', 'embedded');
  await env.frontEnd();
  for (const k of ['owner', 'm1', 'm2']) await env.addKey(k);
  for (const repo of ['clean', 'hostile']) {
    await env.cliOk(['repo', 'create', repo]);
    await env.cliOk(['grant', 'owner', repo, '--role', 'full']);
    await env.cliOk(['grant', 'm1', repo, '--role', 'append']);
    await env.cliOk(['grant', 'm2', repo, '--role', 'append']);
    await borgOk('owner', ['init', '-e', 'repokey', env.url(repo)]);
    await create('m1', repo, 'm1-a1');
    await create('m2', repo, 'm2-a1');
    await create('m1', repo, 'm1-a2');
  }
});
afterAll(() => env?.cleanup());

describe('with the key in the vault', () => {
  test("a full key's prune + compact, deferred while borgkeep lacks the key, goes through once it holds it, and again the next cycle, with no admin action", async () => {
    // Without the key: deferred until an approval, as before.
    await borgOk('owner', ['prune', '--keep-last', '1', '--glob-archives', 'm1-*', env.url('clean')]);
    let before = await segments('clean');
    const deferred = await borgOk('owner', ['compact', env.url('clean')]);
    expect(deferred.stderr).toMatch(/compaction deferred: transaction \d+ \(session \d+, key 'owner', full role\) deleted \d+ objects? written by earlier sessions — not verified yet/);
    const kept = await segments('clean');
    expect(before.filter((s) => !kept.includes(s))).toEqual([]);
    expect((await events('clean')).map((e) => e.kind)).toEqual(['compaction-deferred']);

    await handKey('clean');
    for (let cycle = 0; cycle < 2; cycle++) {
      if (cycle > 0) {
        await create('m1', 'clean', `m1-b${cycle}`);
        await borgOk('owner', ['prune', '--keep-last', '1', '--glob-archives', 'm1-*', env.url('clean')]);
      }
      before = await segments('clean');
      const r = await borgOk('owner', ['compact', env.url('clean')]);
      expect(r.stderr).not.toContain('deferred');
      // borg compacted: segments that held the pruned archives' objects are gone.
      const after = await segments('clean');
      expect(before.filter((s) => !after.includes(s)).length).toBeGreaterThan(0);
      const ev = await events('clean');
      const gate = ev.filter((e) => e.actor === GATE_ACTOR);
      expect(gate).toHaveLength(cycle + 1);
      expect(gate.at(-1)).toMatchObject({ kind: 'audit', verdict: 'clean' });
      expect(gate.at(-1)!.detail).toMatch(/verified with the repository key borgkeep holds .* in \d+ ms$/);
      expect(ev.at(-1)!.kind).toBe('compaction');
      expect(ev.filter((e) => e.kind === 'compaction-deferred')).toHaveLength(1);
    }
    expect(await list('clean')).toEqual(['m1-b1', 'm2-a1']);
    await borgOk('owner', ['check', env.url('clean')]);
  });

  test("an append key's delete --force --force before the key was handed over defers the compaction with its reasons; nothing is removed", async () => {
    await borgOk('m1', ['delete', '--force', '--force', `${env.url('hostile')}::m2-a1`]);
    await handKey('hostile');
    await borgOk('owner', ['prune', '--keep-last', '1', '--glob-archives', 'm1-*', env.url('hostile')]);
    const archives = await list('hostile');
    const before = await segments('hostile');
    const r = await borgOk('owner', ['compact', env.url('hostile')]);
    const line = /borgkeep: compaction deferred: the audit with the repository key borgkeep holds found transaction (\d+) \(session \d+, key 'm1', append role\): a session with the append role removed m2-a1/;
    expect(r.stderr).toMatch(line);
    expect(r.stderr).not.toContain(env.dataDir);
    // Nothing was removed: every segment is still there (borg's commit added one), the archives are the same.
    const after = await segments('hostile');
    expect(before.filter((s) => !after.includes(s))).toEqual([]);
    expect(await list('hostile')).toEqual(archives);
    const ev = await events('hostile');
    expect(ev.filter((e) => e.actor === GATE_ACTOR)).toEqual([]);
    expect(ev.at(-1)!.kind).toBe('compaction-deferred');
    expect(ev.at(-1)!.detail).toContain("key 'm1', append role): a session with the append role removed m2-a1");
    const alert = (await stateAlerts()).find((a) => a.rule === 'compaction-deferred' && a.summary.includes("'hostile'"));
    expect(alert?.detail).toContain('a session with the append role removed m2-a1');
  });
});
