// borgmatic (Debian's package) driving a borgkeep repository through the embedded gateway with
// the kind of config file a user writes: init, create, prune, compact and check with a full
// key; borgmatic's default run (prune, compact, create, check), whose archive is made every time
// while compaction waits for a review; and the same config with an append key, where create works
// and prune is refused with borgkeep's reason in borgmatic's output, the archives untouched.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';

import { createBorgkeepEnv, makeSourceTree, PASSPHRASE, run, type BorgkeepEnv, type RunResult } from '../helpers/borgkeep-env.js';

let env: BorgkeepEnv;
let src: string;

/** The repository's gate events, oldest first. */
async function gateEvents(repo: string): Promise<string[]> {
  const { events } = JSON.parse(await env.cliOk(['ledger', '--json', '--repo', repo, '--limit', '100'])) as { events: Array<{ kind: string }> };
  return events
    .map((e) => e.kind)
    .filter((k) => k.startsWith('compaction'))
    .reverse();
}

function configFor(name: string, repo = 'laptop'): string {
  const file = join(env.root, `${name}.yaml`);
  writeFileSync(
    file,
    `location:
    source_directories:
        - ${src}
    repositories:
        - ${env.url(repo)}

storage:
    archive_name_format: 'laptop-{now:%Y-%m-%dT%H:%M:%S.%f}'
    encryption_passphrase: "${PASSPHRASE}"
    ssh_command: ${env.rsh}
    relocated_repo_access_is_ok: true

retention:
    keep_daily: 1
    prefix: 'laptop-'

consistency:
    checks:
        - name: repository
        - name: archives
`,
  );
  return file;
}

function borgmatic(key: string, config: string, args: readonly string[]): Promise<RunResult> {
  const { BORG_PASSPHRASE: _unused, ...clientEnv } = env.borgEnv(key);
  return run('borgmatic', ['--config', config, '--syslog-verbosity', '-1', ...args], { env: clientEnv });
}

async function archives(repo = 'laptop'): Promise<string[]> {
  const r = await env.borg('admin', ['list', '--short', env.url(repo)]);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.split('\n').filter(Boolean).sort();
}

beforeAll(async () => {
  env = createBorgkeepEnv('borgmatic', 'embedded');
  await env.cliOk(['repo', 'create', 'laptop']);
  await env.addKey('admin');
  await env.addKey('backup-only');
  await env.cliOk(['grant', 'admin', 'laptop', '--role', 'full']);
  await env.cliOk(['grant', 'backup-only', 'laptop', '--role', 'append']);
  src = makeSourceTree(join(env.root, 'home'), 1);
  await env.frontEnd();
});
afterAll(() => env?.cleanup());

test('borgmatic with a full key: init, create, prune, compact, check', async () => {
  const config = configFor('full');
  const init = await borgmatic('admin', config, ['init', '--encryption', 'repokey']);
  expect(init.code, init.stderr).toBe(0);
  for (let i = 0; i < 3; i++) {
    makeSourceTree(src, 10 + i);
    const create = await borgmatic('admin', config, ['create']);
    expect(create.code, create.stderr).toBe(0);
  }
  expect(await archives()).toHaveLength(3);
  const prune = await borgmatic('admin', config, ['prune']);
  expect(prune.code, prune.stderr).toBe(0);
  expect(await archives()).toHaveLength(1); // keep_daily 1: all three are from today
  // The prune's removals wait for an admin's review: compaction is deferred (borgmatic carries
  // on), and goes through after the approval.
  const deferred = await borgmatic('admin', config, ['compact']);
  expect(deferred.code, deferred.stderr).toBe(0);
  expect(await gateEvents('laptop')).toEqual(['compaction-deferred']);
  expect((await env.cli(['approve', 'laptop', '--yes'])).code).toBe(0);
  const compact = await borgmatic('admin', config, ['compact']);
  expect(compact.code, compact.stderr).toBe(0);
  expect(await gateEvents('laptop')).toEqual(['compaction-deferred', 'compaction']);
  const check = await borgmatic('admin', config, ['check']);
  expect(check.code, check.stderr).toBe(0);
  // Every session went through; the one that is not "ok" is borgmatic asking whether the
  // repository exists before init: not a denial, so no security alert for it.
  const { sessions } = JSON.parse(await env.cliOk(['ledger', '--json', '--repo', 'laptop'])) as {
    sessions: Array<{ result: string; detail: string | null; denials: unknown[] }>;
  };
  expect(sessions.filter((s) => s.result !== 'ok').map((s) => `${s.result}: ${s.detail}`)).toEqual([
    'error: the repository is not initialised yet (borg init with a full key creates it)',
  ]);
  expect(sessions.flatMap((s) => s.denials)).toEqual([]);
});

test("borgmatic's default run (prune, compact, create, check) with a full key makes its archive every time, with no admin action", async () => {
  await env.cliOk(['repo', 'create', 'daily']);
  await env.cliOk(['grant', 'admin', 'daily', '--role', 'full']);
  const config = configFor('default', 'daily');
  expect((await borgmatic('admin', config, ['init', '--encryption', 'repokey'])).code).toBe(0);
  // A repository that only ever received backups compacts at once.
  makeSourceTree(src, 30);
  const first = await borgmatic('admin', config, []);
  expect(first.code, first.stderr).toBe(0);
  expect(await archives('daily')).toHaveLength(1);
  expect(await gateEvents('daily')).toEqual(['compaction']);
  // The second run's prune keeps the one archive (keep_daily 1) and compacts; the third's removes
  // the older of today's two: that removal is unverified, so compaction is deferred, and the run
  // still makes its archive.
  const made: string[] = [];
  for (let i = 0; i < 2; i++) {
    makeSourceTree(src, 31 + i);
    const before = await archives('daily');
    const r = await borgmatic('admin', config, []);
    expect(r.code, r.stderr).toBe(0);
    const after = await archives('daily');
    const added = after.filter((a) => !before.includes(a));
    expect(added).toHaveLength(1);
    made.push(added[0]!);
  }
  expect(await gateEvents('daily')).toEqual(['compaction', 'compaction', 'compaction-deferred']);
  expect(await archives('daily')).toEqual(expect.arrayContaining([made.at(-1)]));
  // After the review, compaction goes through.
  expect((await env.cli(['approve', 'daily', '--yes'])).code).toBe(0);
  const compact = await borgmatic('admin', config, ['compact']);
  expect(compact.code, compact.stderr).toBe(0);
  expect((await gateEvents('daily')).at(-1)).toBe('compaction');
  const { sessions } = JSON.parse(await env.cliOk(['ledger', '--json', '--repo', 'daily'])) as { sessions: Array<{ denials: unknown[] }> };
  expect(sessions.flatMap((s) => s.denials)).toEqual([]);
});

test('borgmatic with an append key: create works, prune is refused and deletes nothing', async () => {
  const config = configFor('append');
  makeSourceTree(src, 20);
  const create = await borgmatic('backup-only', config, ['create']);
  expect(create.code, create.stderr).toBe(0);
  const before = await archives();
  expect(before).toHaveLength(2);
  const prune = await borgmatic('backup-only', config, ['prune']);
  expect(prune.code).not.toBe(0);
  expect(`${prune.stdout}${prune.stderr}`).toContain('borgkeep refused delete: the append role may only delete objects written in the same session');
  expect(await archives()).toEqual(before);
});
