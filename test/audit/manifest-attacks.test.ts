// Manifest rewrites that keep every archive's name and id, and so passed an audit that judged
// archive lists by name and id only (issue 13, finding 4): the real borg client makes real
// backups; a hand-written RPC client with a stolen `append` or `prune` key then reads the
// manifest, rewrites it with borgkeep's own msgpack writer (TAM recomputed, as a client holding
// the key can), and commits it through `borgkeep borg-serve`, so the ledger attributes the write.
// The audit must call each one suspicious; ordinary backups and a prune by the prune key stay
// clean, and the report shows when the server first saw each archive beside the client's time.
// Repositories are unencrypted (`-e none`): its TAM key is public, which is what makes a forged
// manifest authentic here, exactly as a stolen repokey passphrase would elsewhere.

import { createHmac } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { MsgMap, decode, encode, type MsgValue } from '../../src/rpc/msgpack.js';
import { openObject } from '../../src/repository/borg-key.js';
import { makeSourceTree } from '../helpers/borgkeep-env.js';
import { KEYS, MANIFEST_ID, createHostileFixture, expectOk, type HostileFixture, type RoleName } from '../helpers/hostile-fixture.js';

interface JsonTxn {
  id: number;
  verdict: string;
  role: string | null;
  key: string | null;
  reasons: string[];
  archivesAdded: string[] | null;
  archivesRemoved: string[] | null;
  archivesRenamed?: Array<{ id: string; from: string; to: string }> | null;
  archivesRetimed?: Array<{ name: string; id: string; from: string; to: string }> | null;
  archivesPointingAtListed?: Array<{ name: string; id: string; listedAs: string }> | null;
  configChanged?: boolean | null;
  mandatoryFeaturesAdded?: string[] | null;
  serverTime?: string | null;
  tam?: string | null;
}
interface JsonReport {
  verdict: string;
  firstSuspiciousTransaction: number | null;
  transactions: JsonTxn[];
  archives: Array<{ name: string; id: string; time: string; firstSeen?: string | null; firstSeenTransaction?: number | null }> | null;
}

const REPOS = ['clean', 'retime', 'flag', 'rename', 'copy'] as const;
const COMMIT_ARGS = { save_space: false, compact: false, threshold: { float: 0.1 }, cleanup_commits: false };
let fx: HostileFixture;
let started: Date;

const get = (m: MsgMap, k: string) => m.get(k);
const set = (m: MsgMap, k: string, v: MsgValue) => {
  const e = m.entries.find(([key]) => Buffer.isBuffer(key) && key.toString('latin1') === k);
  if (e) e[1] = v;
  else m.entries.push([Buffer.from(k, 'latin1'), v]);
};
/** borg's manifest timestamp format: naive UTC with microseconds. */
const borgNow = () => new Date().toISOString().replace('Z', '000');

/**
 * What a client holding `role`'s key can send: the manifest read, edited, timestamped later (borg
 * clients refuse an older one), signed again with the TAM of mode none, put and committed.
 */
async function rewriteManifest(role: RoleName, repo: string, edit: (archives: MsgMap, manifest: MsgMap) => void): Promise<void> {
  const c = await fx.open(role, `/./${repo}`);
  const got = await c.call('get', { id: MANIFEST_ID });
  expectOk(got, 3);
  const envelope = Buffer.from(got.result as Buffer);
  const m = decode(await openObject(envelope, 'none', null)) as MsgMap;
  edit(get(m, 'archives') as MsgMap, m);
  set(m, 'timestamp', Buffer.from(borgNow()));
  const tam = get(m, 'tam') as MsgMap;
  const salt = get(tam, 'salt') as Buffer;
  set(tam, 'hmac', Buffer.alloc(64));
  const unsigned = encode(m);
  const hmac = createHmac('sha512', Buffer.concat([salt, Buffer.from('manifest')])).update(unsigned).digest();
  set(tam, 'hmac', hmac);
  const plain = encode(m);
  // Type byte of mode none, then "no compression".
  const data = Buffer.concat([envelope.subarray(0, 1), Buffer.from([0, 0]), plain]);
  expectOk(await c.call('put', { id: MANIFEST_ID, data, wait: true }), 4);
  expectOk(await c.call('commit', COMMIT_ARGS), 5);
  expect(await fx.finish(c)).toBe(0);
}

const entry = (archives: MsgMap, name: string) => archives.get(name) as MsgMap;

async function audit(repo: string): Promise<{ code: number; report: JsonReport; text: string }> {
  const env = { ...process.env, BORG_PASSPHRASE: undefined, BORGKEEP_DATA_DIR: undefined };
  const r = await fx.env.cli(['audit', repo, '--json'], { env });
  expect(r.stderr).toBe('');
  const t = await fx.env.cli(['audit', repo], { env });
  return { code: r.code, report: JSON.parse(r.stdout) as JsonReport, text: t.stdout };
}
const last = (r: JsonReport) => r.transactions.at(-1) as JsonTxn;

beforeAll(async () => {
  started = new Date();
  fx = await createHostileFixture({ label: 'audit-manifest', repos: REPOS.map((name) => ({ name, init: true })) });
  const src = makeSourceTree(join(fx.env.root, 'tree'), 7);
  for (const repo of REPOS) {
    await fx.env.cliOk(['grant', KEYS.append, repo, '--role', 'append']);
    await fx.env.cliOk(['grant', KEYS.prune, repo, '--role', 'prune']);
    for (const name of ['mon', 'tue']) await fx.borgOk('append', ['create', `${fx.env.url(repo)}::${name}`, src]);
  }
}, 300_000);
afterAll(() => fx?.cleanup());

describe('still clean', () => {
  test('ordinary backups by append and a prune by the prune key audit clean; the archive list shows when the server first saw each', async () => {
    await fx.borgOk('prune', ['prune', '--keep-last', '1', fx.env.url('clean')]);
    const { code, report, text } = await audit('clean');
    expect(report.transactions.filter((t) => t.verdict === 'suspicious')).toEqual([]);
    expect(code).toBe(0);
    expect(last(report)).toMatchObject({ role: 'prune', archivesRemoved: ['mon'], archivesRenamed: [], archivesRetimed: [], configChanged: false, tam: 'ok' });
    const [tue] = report.archives ?? [];
    expect(tue.name).toBe('tue');
    const created = report.transactions.find((t) => t.archivesAdded?.includes('tue')) as JsonTxn;
    expect(tue.firstSeenTransaction).toBe(created.id);
    expect(tue.firstSeen).toBe(created.serverTime);
    expect(new Date(tue.firstSeen as string).getTime()).toBeGreaterThanOrEqual(started.getTime() - 1000);
    expect(text).toMatch(new RegExp(`tue  time ${tue.time}  first seen by the server ${tue.firstSeen} \\(transaction ${created.id}\\)`));
  });
});

describe('suspicious', () => {
  test("an append key moving the newest archive's time back to 2015 (same name and id)", async () => {
    const before = await audit('retime');
    expect(before.code).toBe(0);
    const tueBefore = before.report.archives?.find((a) => a.name === 'tue');
    await rewriteManifest('append', 'retime', (archives) => set(entry(archives, 'tue'), 'time', Buffer.from('2015-01-01T00:00:00.000000')));
    // borg itself now lists "tue" as the oldest archive, so `prune --keep-last` would take it.
    const listed = JSON.parse((await fx.borgOk('full', ['list', '--json', fx.env.url('retime')])).stdout) as { archives: Array<{ name: string; id: string; time: string }> };
    expect(listed.archives.find((a) => a.name === 'tue')).toMatchObject({ id: tueBefore?.id, time: '2015-01-01T00:00:00.000000' });

    const { code, report } = await audit('retime');
    expect(code).toBe(1);
    const t = last(report);
    // The forged manifest is authentic (TAM ok): only the judgement of its content can tell.
    expect(t).toMatchObject({ verdict: 'suspicious', role: 'append', archivesAdded: [], archivesRemoved: [], tam: 'ok' });
    expect(t.archivesRetimed).toEqual([{ name: 'tue', id: tueBefore?.id, from: tueBefore?.time, to: '2015-01-01T00:00:00.000000' }]);
    expect(t.reasons).toContain(`a session with the append role changed the time of archive tue from ${tueBefore?.time} to 2015-01-01T00:00:00.000000 (same archive id)`);
    // The server's first sighting does not move with the client's time.
    const tue = report.archives?.find((a) => a.name === 'tue');
    expect(tue).toMatchObject({ time: '2015-01-01T00:00:00.000000', firstSeen: tueBefore?.firstSeen });
  });

  test('an append key writing a mandatory feature flag into the config: borg refuses the repository, the audit says why', async () => {
    await rewriteManifest('append', 'flag', (_archives, m) => {
      set(m, 'config', MsgMap.of([['feature_flags', MsgMap.of([['write', MsgMap.of([['mandatory', [Buffer.from('borgkeep-test-unknown')]]])]])]]));
    });
    const create = await fx.env.borg(KEYS.append, ['create', `${fx.env.url('flag')}::wed`, join(fx.env.root, 'tree')]);
    expect(create.code).not.toBe(0);
    expect(create.stderr).toContain('borgkeep-test-unknown');
    const { code, report } = await audit('flag');
    expect(code).toBe(1);
    const t = last(report);
    expect(t).toMatchObject({ verdict: 'suspicious', role: 'append', configChanged: true, mandatoryFeaturesAdded: ['write:borgkeep-test-unknown'] });
    expect(t.reasons).toContain(
      "a session with the append role changed the manifest's config: mandatory feature flag write:borgkeep-test-unknown added, which make borg refuse to work with the repository",
    );
  });

  test('a prune key renaming an archive in the manifest only (same id)', async () => {
    await rewriteManifest('prune', 'rename', (archives) => {
      const e = archives.entries.find(([k]) => Buffer.isBuffer(k) && k.toString() === 'mon') as [MsgValue, MsgValue];
      e[0] = Buffer.from('mon-kept-forever');
    });
    const { code, report } = await audit('rename');
    expect(code).toBe(1);
    const t = last(report);
    expect(t).toMatchObject({ verdict: 'suspicious', role: 'prune', archivesAdded: ['mon-kept-forever'], archivesRemoved: ['mon'] });
    expect(t.archivesRenamed).toEqual([{ id: expect.stringMatching(/^[0-9a-f]{64}$/), from: 'mon', to: 'mon-kept-forever' }]);
    expect(t.reasons).toContain('a session with the prune role renamed archive mon to mon-kept-forever in the manifest only (same archive id)');
  });

  test('a prune key adding an entry that points at an existing archive', async () => {
    await rewriteManifest('prune', 'copy', (archives) => {
      archives.entries.push([Buffer.from('zz-copy'), MsgMap.of([['id', entry(archives, 'mon').get('id') as Buffer], ['time', Buffer.from(borgNow())]])]);
    });
    const { code, report } = await audit('copy');
    expect(code).toBe(1);
    const t = last(report);
    expect(t).toMatchObject({ verdict: 'suspicious', role: 'prune', archivesAdded: ['zz-copy'], archivesRemoved: [] });
    expect(t.archivesPointingAtListed).toEqual([{ name: 'zz-copy', id: expect.stringMatching(/^[0-9a-f]{64}$/), listedAs: 'mon' }]);
    expect(t.reasons).toContain('a session with the prune role added zz-copy, an entry pointing at archive mon, which is already listed');
    expect(t.reasons).toContain('a session with the prune role added zz-copy; it may only remove archives');
  });
});

test('the sightings outlive the audit: a later audit keeps the first one', async () => {
  const db = fx.db();
  try {
    const rows = db.prepare("select s.name, s.first_seen_at, s.transaction_id from archive_sightings s join repositories r on r.id = s.repository_id where r.name = 'retime' order by s.name").all() as Array<{ name: string; first_seen_at: string; transaction_id: number }>;
    expect(rows.map((r) => r.name)).toEqual(['mon', 'tue']);
    const { report } = await audit('retime');
    const tue = report.archives?.find((a) => a.name === 'tue');
    expect(tue?.firstSeen).toBe(rows[1].first_seen_at);
  } finally {
    db.close();
  }
});
