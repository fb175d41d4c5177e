// Retention run by the server, with the real borg client: a repository of archives spread over
// months, its key handed to the vault, a policy set with the CLI and run once. What remains must be
// exactly what borg's own `borg prune --dry-run --list` with the same flags keeps on a copy of the
// same repository; the compaction runs when the history is verified and is deferred (a warning,
// with the reason) when it is not; the ledger has sessions of kind 'retention'; without a held
// key no policy can be set.

import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { PASSPHRASE, createBorgkeepEnv, makeSourceTree, run, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { startEmbedded } from '../helpers/ssh-transports.js';

let env: BorgkeepEnv;
let src: string;

const HOST_TIMES = [
  '2025-01-03T10:00:00',
  '2025-01-20T10:00:00',
  '2025-02-05T10:00:00',
  '2025-02-18T10:00:00',
  '2025-03-02T10:00:00',
  '2025-03-15T10:00:00',
  '2025-04-01T10:00:00',
  '2025-04-08T10:00:00',
  '2025-04-09T10:00:00',
  '2025-04-10T08:00:00',
  '2025-04-10T18:00:00',
  '2025-04-11T10:00:00',
];
const OTHER_TIMES = ['2025-01-05T12:00:00', '2025-03-05T12:00:00', '2025-04-10T12:00:00'];
const FLAGS = ['--keep-daily', '2', '--keep-weekly', '2', '--keep-monthly', '3'];

async function borgOk(args: string[]): Promise<string> {
  const r = await env.borg('admin', args);
  expect(r.code, `borg ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r.stdout;
}
const listed = async () => (await borgOk(['list', '--short', env.url('main')])).split('\n').filter(Boolean).sort();

async function createArchive(name: string, time: string | null, seed: number): Promise<void> {
  makeSourceTree(src, seed);
  const r = await env.borg('admin', ['create', ...(time ? ['--timestamp', time] : []), `${env.url('main')}::${name}`, '.'], { cwd: src });
  expect(r.code, r.stderr).toBe(0);
}

/** borg's own answer: `borg prune --dry-run --list` with the same flags, on a copy of the repository. */
async function borgWouldPrune(flags: readonly string[]): Promise<string[]> {
  const copy = join(env.root, `copy-${Date.now()}`);
  cpSync(await env.repoPath('main'), copy, { recursive: true });
  const base = join(env.root, `copy-base-${Date.now()}`);
  mkdirSync(base);
  const r = await run('borg', ['prune', '--dry-run', '--list', ...flags, copy], {
    env: { PATH: process.env.PATH, HOME: base, BORG_BASE_DIR: base, BORG_PASSPHRASE: PASSPHRASE, BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes', LANG: 'C.UTF-8' },
  });
  expect(r.code, r.stderr).toBe(0);
  return [...r.stderr.matchAll(/^Would prune:\s+(\S+)/gm)].map((m) => m[1]!).sort();
}

interface RunJson {
  result: string;
  detail: string;
  pruned: string[];
  compacted: boolean;
  deferred: string | null;
  sessions: number[];
}

async function runNow(): Promise<{ code: number; run: RunJson; stderr: string }> {
  const r = await env.cli(['repo', 'retention', 'main', '--run-now', '--json']);
  return { code: r.code, run: JSON.parse(r.stdout) as RunJson, stderr: r.stderr };
}

beforeAll(async () => {
  env = createBorgkeepEnv('retention');
  await env.repoWithKeys('main', { admin: 'full' });
  src = join(env.root, 'src');
  await borgOk(['init', '-e', 'repokey-blake2', env.url('main')]);
  let seed = 0;
  for (const t of HOST_TIMES) await createArchive(`host-${t.replace(/:/g, '')}`, t, seed++);
  for (const t of OTHER_TIMES) await createArchive(`other-${t.replace(/:/g, '')}`, t, seed++);
  // Archives dated months before the server saw them are what the audit calls suspicious: an
  // admin reviewed this back-fill and compacted, so the history the retention run is judged on
  // starts here, as on a repository that has been backing up for months.
  await env.cliOk(['approve', 'main', '--yes', '--as', 'ann']);
  await borgOk(['compact', env.url('main')]);
}, 300_000);

afterAll(async () => {
  await env?.cleanup();
});

describe('retention run by the server', () => {
  test('no policy without a held key: one sentence, nothing stored', async () => {
    const r = await env.cli(['repo', 'retention', 'main', '--keep-daily', '2']);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/does not hold the key of repository 'main'/);
    const shown = JSON.parse(await env.cliOk(['repo', 'retention', 'main', '--json'])) as { policy: unknown; keyHeld: boolean };
    expect(shown).toMatchObject({ policy: null, keyHeld: false });
  });

  test("prunes what borg prune would with the same flags, then compacts, in sessions of kind 'retention'", async () => {
    const before = await listed();
    expect(before).toHaveLength(15);
    const expected = await borgWouldPrune([...FLAGS, '--prefix', 'host-']);
    expect(expected.length).toBeGreaterThan(3);

    const passFile = join(env.root, 'passphrase');
    writeFileSync(passFile, `${PASSPHRASE}\n`, { mode: 0o600 });
    await env.cliOk(['repo', 'key', 'main', '--passphrase-file', passFile]);
    await env.cliOk(['repo', 'retention', 'main', ...FLAGS, '--prefix', 'host-', '--schedule', '0 4 * * *']);
    const shown = JSON.parse(await env.cliOk(['repo', 'retention', 'main', '--json'])) as { keyHeld: boolean; policy: Record<string, unknown>; nextRunAt: string };
    expect(shown.keyHeld).toBe(true);
    expect(shown.policy).toMatchObject({ keepDaily: 2, keepWeekly: 2, keepMonthly: 3, keepYearly: null, prefix: 'host-', schedule: '0 4 * * *', lastRunAt: null });
    expect(new Date(shown.nextRunAt).getTime()).toBeGreaterThan(Date.now());

    const { code, run: r, stderr } = await runNow();
    expect(code, stderr).toBe(0);
    expect(r.result, r.detail).toBe('ok');
    expect(r.compacted).toBe(true);
    expect([...r.pruned].sort()).toEqual(expected);
    expect(await listed()).toEqual(before.filter((a) => !expected.includes(a)));
    expect(r.sessions).toHaveLength(2);

    const ledger = JSON.parse(await env.cliOk(['ledger', '--repo', 'main', '--json'])) as {
      sessions: Array<{ id: number; kind: string; keyId: number | null; role: string; result: string; transactions: Array<{ state: string; objectsDeleted: number }> }>;
      events: Array<{ kind: string; actor: string }>;
    };
    const retention = ledger.sessions.filter((s) => s.kind === 'retention');
    expect(retention.map((s) => s.id).sort()).toEqual([...r.sessions].sort());
    for (const s of retention) expect(s).toMatchObject({ keyId: null, role: 'full', result: 'ok' });
    expect(retention.some((s) => s.transactions.some((t) => t.state === 'committed' && t.objectsDeleted > 0))).toBe(true);
    expect(ledger.sessions.filter((s) => s.kind !== 'retention').every((s) => s.kind === 'client')).toBe(true);
    expect(ledger.events.find((e) => e.kind === 'compaction')?.actor).toMatch(/the server's retention run \(session \d+\)/);

    const after = JSON.parse(await env.cliOk(['repo', 'retention', 'main', '--json'])) as { policy: { lastResult: string; lastDetail: string; lastRunAt: string } };
    expect(after.policy.lastResult).toBe('ok');
    expect(after.policy.lastDetail).toMatch(new RegExp(`pruned ${expected.length} of 12 archives; compacted`));

    const check = await env.borg('admin', ['check', env.url('main')]);
    expect(check.code, check.stderr).toBe(0);
  }, 300_000);

  test('a compaction over history that is not verified is deferred: the run warns with the reason, the prune stands', async () => {
    // Two backups of today, then a change written behind borgkeep's back (no ledger session): the
    // audit with the held key cannot call that clean, so the gate must not make anything permanent.
    await createArchive('host-today-1', null, 100);
    await createArchive('host-today-2', null, 101);
    const path = await env.repoPath('main');
    const base = join(env.root, 'local-base');
    mkdirSync(base, { recursive: true });
    const local = await run('borg', ['delete', `${path}::other-2025-01-05T120000`], {
      env: { PATH: process.env.PATH, HOME: base, BORG_BASE_DIR: base, BORG_PASSPHRASE: PASSPHRASE, BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes', LANG: 'C.UTF-8' },
    });
    expect(local.code, local.stderr).toBe(0);
    const before = await listed();
    const expected = await borgWouldPrune([...FLAGS, '--prefix', 'host-']);
    expect(expected.length).toBeGreaterThan(0);

    const { code, run: r, stderr } = await runNow();
    expect(code, stderr).toBe(0);
    expect(r.result).toBe('warning');
    expect(r.compacted).toBe(false);
    expect(r.deferred).toMatch(/written outside borgkeep: no ledger session made this transaction; an unattributed writer removed other-2025-01-05T120000/);
    expect(r.detail).toMatch(/compaction deferred: /);
    expect([...r.pruned].sort()).toEqual(expected);
    expect(await listed()).toEqual(before.filter((a) => !expected.includes(a)));

    const ledger = JSON.parse(await env.cliOk(['ledger', '--repo', 'main', '--json'])) as { events: Array<{ kind: string; actor: string }> };
    expect(ledger.events[0]).toMatchObject({ kind: 'compaction-deferred' });
    expect(ledger.events[0]!.actor).toMatch(/retention run/);
    const shown = JSON.parse(await env.cliOk(['repo', 'retention', 'main', '--json'])) as { policy: { lastResult: string; lastDetail: string } };
    expect(shown.policy.lastResult).toBe('warning');
  }, 300_000);

  test('--off turns it off; bad values are one sentence and change nothing', async () => {
    for (const [args, message] of [
      [['--keep-within', '30 days'], /keepWithin: is not a duration/],
      [['--keep-daily', '0'], /--keep-daily must be a whole number/],
      [['--keep-daily', '2', '--prefix', 'a*'], /prefix: is not an archive-name prefix/],
      [['--keep-daily', '2', '--schedule', 'every day'], /is not a cron pattern/],
      [['--schedule', '0 5 * * *'], /needs at least one of keep-last/],
      [['--off', '--keep-daily', '2'], /give it alone/],
    ] as const) {
      const r = await env.cli(['repo', 'retention', 'main', ...args]);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(message);
    }
    const still = JSON.parse(await env.cliOk(['repo', 'retention', 'main', '--json'])) as { policy: { keepDaily: number; schedule: string } };
    expect(still.policy).toMatchObject({ keepDaily: 2, schedule: '0 4 * * *' });
    await env.cliOk(['repo', 'retention', 'main', '--off']);
    const off = JSON.parse(await env.cliOk(['repo', 'retention', 'main', '--json'])) as { policy: unknown };
    expect(off.policy).toBeNull();
    const r = await env.cli(['repo', 'retention', 'main', '--run-now']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/has no retention policy/);
  }, 60_000);

  test("borgkeep serve runs the config file's policy on its schedule, and refuses to start with a policy it cannot run", async () => {
    const sessionsBefore = (JSON.parse(await env.cliOk(['ledger', '--repo', 'main', '--json'])) as { sessions: Array<{ kind: string }> }).sessions.filter((s) => s.kind === 'retention').length;
    // A repository whose key borgkeep does not hold: serve says so in one sentence and stops.
    await env.cliOk(['repo', 'create', 'keyless']);
    const bad = join(env.root, 'bad.json');
    writeFileSync(bad, JSON.stringify({ retention: { keyless: { keepDaily: 7 } } }));
    const refused = await env.cli(['serve', '--ssh-listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--config', bad], { timeoutMs: 30_000 });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/^borgkeep: config file, retention\.keyless: borgkeep does not hold the key of repository 'keyless'/);

    const config = join(env.root, 'serve.json');
    writeFileSync(config, JSON.stringify({ retention: { main: { keepDaily: 2, keepWeekly: 2, keepMonthly: 3, prefix: 'host-', schedule: '*/5 * * * * *' } } }));
    const serve = await startEmbedded(env.dataDir, ['--config', config]);
    try {
      const deadline = Date.now() + 90_000;
      let shown: { policy: { lastRunAt: string | null; lastResult: string | null; updatedBy: string; schedule: string } };
      for (;;) {
        shown = JSON.parse(await env.cliOk(['repo', 'retention', 'main', '--json'])) as typeof shown;
        if (shown.policy.lastRunAt !== null || Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 1000));
      }
      expect(shown.policy, serve.log()).toMatchObject({ updatedBy: 'config file', schedule: '*/5 * * * * *' });
      expect(shown.policy.lastRunAt, serve.log()).not.toBeNull();
      // The history still holds the change made behind borgkeep's back: the run warns, the gate defers.
      expect(shown.policy.lastResult).toBe('warning');
      const ledger = JSON.parse(await env.cliOk(['ledger', '--repo', 'main', '--json'])) as { sessions: Array<{ kind: string; result: string }> };
      expect(ledger.sessions.filter((s) => s.kind === 'retention').length).toBeGreaterThanOrEqual(sessionsBefore + 2);
    } finally {
      await serve.stop();
    }
  }, 180_000);
});
