// borgmatic (Debian's package) driving a borgkeep repository through the embedded gateway with
// the kind of config file a user writes: init, create, prune, compact and check with a full
// key; and the same config with an append key, where create works and prune is refused with
// borgkeep's reason in borgmatic's output, the archives untouched.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';

import { createBorgkeepEnv, makeSourceTree, PASSPHRASE, run, type BorgkeepEnv, type RunResult } from '../helpers/borgkeep-env.js';

let env: BorgkeepEnv;
let src: string;

function configFor(name: string): string {
  const file = join(env.root, `${name}.yaml`);
  writeFileSync(
    file,
    `location:
    source_directories:
        - ${src}
    repositories:
        - ${env.url('laptop')}

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

async function archives(): Promise<string[]> {
  const r = await env.borg('admin', ['list', '--short', env.url('laptop')]);
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
  // Compaction waits for an admin's review of the history (the compaction gate).
  const refused = await borgmatic('admin', config, ['compact']);
  expect(refused.code).not.toBe(0);
  expect(`${refused.stdout}${refused.stderr}`).toContain('the compaction gate of this repository is closed');
  expect((await env.cli(['approve', 'laptop', '--yes'])).code).toBe(0);
  const compact = await borgmatic('admin', config, ['compact']);
  expect(compact.code, compact.stderr).toBe(0);
  const check = await borgmatic('admin', config, ['check']);
  expect(check.code, check.stderr).toBe(0);
  // Every session went through; the one that is not "ok" is borgmatic asking whether the
  // repository exists before init: not a denial, so no security alert for it.
  const { sessions } = JSON.parse(await env.cliOk(['ledger', '--json', '--repo', 'laptop'])) as {
    sessions: Array<{ result: string; detail: string | null; denials: unknown[] }>;
  };
  expect(sessions.filter((s) => s.result !== 'ok').map((s) => `${s.result}: ${s.detail}`)).toEqual([
    'denied: 1 call(s) refused: commit',
    'error: the repository is not initialised yet (borg init with a full key creates it)',
  ]);
  expect(sessions.flatMap((s) => s.denials).map((d) => (d as { reason: string }).reason)).toEqual(['BK_DENY_GATE']);
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
