// Issue 14's "borgmatic unchanged": Debian's borgmatic 1.7.7 on three machines sharing one
// repokey repository whose key borgkeep holds, through the embedded gateway, for several
// simulated days (each day's archives carry that day's time through borg's --timestamp): a
// trusted machine with a `full` key runs borgmatic's default actions (prune, compact, create,
// check; keep_daily 1 of its own archives), two machines with `append` keys (their own ssh keys,
// homes and borgmatic configs, archive names prefixed by host) run `borgmatic create`. Every run
// succeeds and every compaction goes through, the prunes' removals verified by the automatic gate,
// with no admin action. Then one append machine turns hostile: the stock client's
// `borg delete --force --force` of the other machine's archive and a hand-written client's forged
// re-creation of it are refused at once, a critical alert is raised, and there is nothing to roll
// back (same last transaction, same archives, `borg check` clean).

import { createCipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';

import { readHistory } from '../../src/audit/history.js';
import { openObject, unlockKey } from '../../src/repository/borg-key.js';
import { parseRepoConfig } from '../../src/repository/repo-config.js';
import { MsgMap, decode, encode, type MsgValue } from '../../src/rpc/msgpack.js';
import { openStore } from '../../src/store/database.js';
import { createBorgkeepEnv, makeSourceTree, PASSPHRASE, run, type BorgkeepEnv, type RunResult } from '../helpers/borgkeep-env.js';
import { startRpcClient, OPEN_DEFAULTS } from '../helpers/rpc-client.js';

const REPO = 'shared';
const MACHINES = { trusted: 'full', m1: 'append', m2: 'append' } as const;
type Machine = keyof typeof MACHINES;
const DAYS = 3;
const DAY_MS = 24 * 3600 * 1000;

let env: BorgkeepEnv;

/** Each machine's own home (borg's cache, security dir and config) and source tree. */
const home = (m: Machine) => join(env.root, `machine-${m}`);

/**
 * A machine's borgmatic config for `day` (1 = the oldest): its archives are named after the host
 * and carry the day's time; the trusted machine prunes its own archives to the newest day.
 */
function configFor(m: Machine, day: number, timestamp: string): string {
  const file = join(home(m), 'borgmatic.yaml');
  writeFileSync(
    file,
    `location:
    source_directories:
        - ${join(home(m), 'src')}
    repositories:
        - ${env.url(REPO)}

storage:
    archive_name_format: '${m}-day${day}-{now:%H%M%S%f}'
    encryption_passphrase: "${PASSPHRASE}"
    ssh_command: ${env.rsh}
    relocated_repo_access_is_ok: true
    extra_borg_options:
        create: --timestamp ${timestamp}

retention:
    keep_daily: 1
    prefix: '${m}-'

consistency:
    prefix: '${m}-'
`,
  );
  return file;
}

function borgmatic(m: Machine, config: string, args: readonly string[]): Promise<RunResult> {
  const { BORG_PASSPHRASE: _unused, ...base } = env.borgEnv(m);
  return run('borgmatic', ['--config', config, '--syslog-verbosity', '-1', ...args], { env: { ...base, HOME: home(m), BORG_BASE_DIR: home(m) } });
}

async function archives(): Promise<string[]> {
  const r = await env.borg('trusted', ['list', '--short', env.url(REPO)], { env: { HOME: home('trusted'), BORG_BASE_DIR: home('trusted') } });
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.split('\n').filter(Boolean).sort();
}

async function events(): Promise<Array<{ kind: string; actor: string; detail: string }>> {
  const { events: all } = JSON.parse(await env.cliOk(['ledger', '--json', '--repo', REPO, '--limit', '200'])) as { events: Array<{ kind: string; actor: string; detail: string }> };
  return all.reverse();
}

beforeAll(async () => {
  env = createBorgkeepEnv('borgmatic-days', 'embedded');
  await env.cliOk(['repo', 'create', REPO]);
  for (const [m, role] of Object.entries(MACHINES)) {
    mkdirSync(join(home(m as Machine), 'src'), { recursive: true });
    await env.addKey(m);
    await env.cliOk(['grant', m, REPO, '--role', role]);
  }
  await env.frontEnd();
  const init = await borgmatic('trusted', configFor('trusted', 0, new Date().toISOString().slice(0, 19)), ['init', '--encryption', 'repokey']);
  expect(init.code, init.stderr).toBe(0);
  const pass = join(env.root, 'passphrase');
  writeFileSync(pass, `${PASSPHRASE}\n`, { mode: 0o600 });
  await env.cliOk(['repo', 'key', REPO, '--passphrase-file', pass]);
});
afterAll(() => env?.cleanup());

test('borgmatic on three machines for several days: every run succeeds, compaction included, with no admin action', async () => {
  const start = Date.now() - DAYS * DAY_MS;
  for (let day = 1; day <= DAYS; day++) {
    const timestamp = new Date(start + day * DAY_MS).toISOString().slice(0, 19);
    for (const m of Object.keys(MACHINES) as Machine[]) {
      makeSourceTree(join(home(m), 'src'), day * 10 + m.length, 3);
      // The trusted machine's default run: prune, compact, create, check.
      const r = await borgmatic(m, configFor(m, day, timestamp), m === 'trusted' ? [] : ['create']);
      expect(r.code, `${m} on day ${day}: ${r.stdout}${r.stderr}`).toBe(0);
      expect(r.stderr).not.toContain('deferred');
    }
  }
  const names = await archives();
  // The trusted machine's prune (before its create) keeps the newest day: the last two days are
  // there; the append machines' archives are all there.
  expect(names.filter((n) => n.startsWith('trusted-')).map((n) => n.split('-')[1])).toEqual([`day${DAYS - 1}`, `day${DAYS}`]);
  for (const m of ['m1', 'm2']) expect(names.filter((n) => n.startsWith(`${m}-`)).map((n) => n.split('-')[1])).toEqual(['day1', 'day2', 'day3']);

  const ev = await events();
  expect(ev.filter((e) => e.kind === 'compaction-deferred')).toEqual([]);
  expect(ev.filter((e) => e.kind === 'compaction')).toHaveLength(DAYS);
  // The prunes of days 2 and on removed archives: verified by the gate with the held key.
  expect(ev.filter((e) => e.actor === 'automatic gate (key held)').length).toBeGreaterThanOrEqual(1);
  expect(ev.filter((e) => e.kind === 'approve')).toEqual([]);
  const { sessions } = JSON.parse(await env.cliOk(['ledger', '--json', '--repo', REPO, '--limit', '200'])) as { sessions: Array<{ denials: unknown[] }> };
  expect(sessions.flatMap((s) => s.denials)).toEqual([]);
  // Nine borgmatic runs: about 40 s on an idle machine; the bound is for a loaded one.
}, 300_000);

/** What the hostile machine can do with the repository key it holds: seal a manifest of its own. */
function sealManifest(repoDir: string, manifest: MsgMap): Buffer {
  const config = parseRepoConfig(readFileSync(join(repoDir, 'config'), 'utf8'));
  const key = unlockKey(config.key!, PASSPHRASE, config.id);
  const tam = manifest.get('tam') as MsgMap;
  const salt = tam.get('salt') as Buffer;
  const setKey = (m: MsgMap, k: string, v: MsgValue) => {
    const e = m.entries.find(([x]) => Buffer.isBuffer(x) && x.toString('latin1') === k);
    if (e) e[1] = v;
    else m.entries.push([Buffer.from(k, 'latin1'), v]);
  };
  setKey(tam, 'hmac', Buffer.alloc(64));
  const tamKey = Buffer.from(hkdfSync('sha512', Buffer.concat([key.idKey, key.encKey, key.encHmacKey]), salt, Buffer.from('borg-metadata-authentication-manifest'), 64));
  setKey(tam, 'hmac', createHmac('sha512', tamKey).update(encode(manifest)).digest());
  const plain = Buffer.concat([Buffer.from([0, 0]), encode(manifest)]);
  // A nonce far beyond borg's reservations: this test's only encrypted put.
  const iv = Buffer.concat([Buffer.from([0x7f]), randomBytes(7)]);
  const cipher = createCipheriv('aes-256-ctr', key.encKey, Buffer.concat([Buffer.alloc(8), iv]));
  const ct = Buffer.concat([cipher.update(plain), cipher.final()]);
  const mac = createHmac('sha256', key.encHmacKey).update(Buffer.concat([iv, ct])).digest();
  return Buffer.concat([Buffer.from([0x03]), mac, iv, ct]);
}

test('one append machine turns hostile: delete --force --force and a forged re-creation are refused at once, an alert is raised, nothing to roll back', async () => {
  const repoDir = await env.repoPath(REPO);
  const before = await archives();
  const lastTxn = async () => (await readHistory(repoDir)).transactions.at(-1)?.id;
  const txnBefore = await lastTxn();
  const victim = before.find((n) => n.startsWith('m2-day3'))!;

  // The stock client: borg delete --force --force of the other machine's archive.
  const del = await env.borg('m1', ['delete', '--force', '--force', `${env.url(REPO)}::${victim}`], { env: { HOME: home('m1'), BORG_BASE_DIR: home('m1') } });
  expect(del.code).not.toBe(0);
  expect(`${del.stdout}${del.stderr}`).toMatch(/borgkeep refused/);

  // A hand-written client: the manifest with the victim's entry pointing at an archive of its
  // own (a forged re-creation under the same name), sealed and authenticated with the key.
  const c = startRpcClient(env, 'm1');
  await c.open(`/./${REPO}`, { ...OPEN_DEFAULTS });
  const got = await c.call('get', { id: Buffer.alloc(32) });
  expect(got.exceptionClass).toBeNull();
  const config = parseRepoConfig(readFileSync(join(repoDir, 'config'), 'utf8'));
  const key = unlockKey(config.key!, PASSPHRASE, config.id);
  const plain = await openObject(Buffer.from(got.result as Buffer), 'repokey', key);
  const manifest = decode(plain) as MsgMap;
  const list = manifest.get('archives') as MsgMap;
  const own = list.entries.find(([n]) => Buffer.isBuffer(n) && n.toString().startsWith('m1-day3'))!;
  const target = list.entries.find(([n]) => Buffer.isBuffer(n) && n.toString() === victim)!;
  target[1] = own[1];
  const ts = manifest.entries.find(([k]) => Buffer.isBuffer(k) && k.toString() === 'timestamp')!;
  ts[1] = Buffer.from(new Date().toISOString().replace('Z', '000'));
  const put = await c.call('put', { id: Buffer.alloc(32), data: sealManifest(repoDir, manifest), wait: true });
  const commit = put.exceptionClass === null ? await c.call('commit', { save_space: false, compact: false, threshold: { float: 0.1 }, cleanup_commits: false }) : put;
  expect(commit.exceptionClass).not.toBeNull();
  expect(commit.message).toMatch(/borgkeep refused/);
  await c.close();

  // Nothing to roll back: the same last transaction, the same archives, borg check clean.
  expect(await lastTxn()).toBe(txnBefore);
  expect(await archives()).toEqual(before);
  const check = await env.borg('trusted', ['check', env.url(REPO)], { env: { HOME: home('trusted'), BORG_BASE_DIR: home('trusted') } });
  expect(check.code, check.stderr).toBe(0);

  // The refusals are in the ledger, and the server raised a critical alert for the key.
  let alerts: Array<{ rule: string; severity: string; summary: string }> = [];
  for (let i = 0; i < 50 && !alerts.some((a) => a.rule === 'denial'); i++) {
    await new Promise((r) => setTimeout(r, 200));
    const store = await openStore({ dataDir: env.dataDir });
    try {
      alerts = (await store.openAlerts()).map((a) => ({ rule: a.rule, severity: a.severity, summary: a.summary }));
    } finally {
      await store.close();
    }
  }
  expect(alerts.find((a) => a.rule === 'denial')).toMatchObject({ severity: 'critical', summary: expect.stringContaining("'m1'") });
}, 120_000);
