// The repository every role-matrix test starts from: one borgkeep installation with a key per
// role on repository "main" (initialised by the full key, two archives), and an empty,
// uninitialised repository "fresh" granted to every key for the `init` cases.
// It is built once per transport and run (12 files use it: test/roles, test/gateway/roles-*),
// through that transport, and each file gets a copy (test/helpers/shared-template.ts).

import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';

import { createBorgkeepEnv, makeSourceTree, type BorgkeepEnv, type RunResult } from './borgkeep-env.js';
import { sharedTemplate } from './shared-template.js';

export const KEYS = { full: 'admin-key', append: 'writer-key', prune: 'pruner-key', read: 'reader-key' } as const;
export type RoleName = keyof typeof KEYS;

export interface RoleFixture {
  env: BorgkeepEnv;
  src: string;
  /** The path base-1 and base-2 were made from, as the archives hold it: `src`, or the same
   *  tree's path in the installation the shared copy was built in. */
  archivedSrc: string;
  main: string;
  fresh: string;
  /** Archives of "main" as the full key sees them: "name id" lines, sorted. */
  archives(): Promise<string[]>;
  /** `borg check` with the full key; fails the test unless it passes. */
  assertIntact(): Promise<void>;
  as(role: RoleName, args: readonly string[], opts?: Parameters<BorgkeepEnv['borg']>[2]): Promise<RunResult>;
}

/** What a fixture's installation holds, under its root: the data directory, borg's client side
 *  (security and cache folders), the SSH keys, and the source tree the archives were made from. */
const FIXTURE_DIRS = ['data', 'client', 'ssh-keys', 'src'];
const ARCHIVED_SRC = 'archived-src';

export async function createRoleFixture(label: string, transport: BorgkeepEnv['transport'] = 'forced-command'): Promise<RoleFixture> {
  const template = await sharedTemplate(`role-fixture-${transport}`, async (dir) => {
    const built = createBorgkeepEnv(`${label}-template`, transport);
    try {
      await populate(built);
      // Nothing may be running on the installation while it is copied.
      if (transport !== 'forced-command') await (await built.frontEnd()).stop();
      for (const d of FIXTURE_DIRS) cpSync(join(built.root, d), join(dir, d), { recursive: true });
      writeFileSync(join(dir, ARCHIVED_SRC), join(built.root, 'src'));
    } finally {
      await built.cleanup();
    }
  });
  const env = createBorgkeepEnv(label, transport);
  if (!template) {
    await populate(env);
    return fixtureOn(env, join(env.root, 'src'));
  }
  for (const d of FIXTURE_DIRS) cpSync(join(template, d), join(env.root, d), { recursive: true });
  return fixtureOn(env, readFileSync(join(template, ARCHIVED_SRC), 'utf8'));
}

async function populate(env: BorgkeepEnv): Promise<void> {
  await env.cliOk(['repo', 'create', 'main']);
  await env.cliOk(['repo', 'create', 'fresh']);
  for (const [role, key] of Object.entries(KEYS)) {
    await env.addKey(key);
    await env.cliOk(['grant', key, 'main', '--role', role]);
    await env.cliOk(['grant', key, 'fresh', '--role', role]);
  }
  const src = makeSourceTree(join(env.root, 'src'), 1);
  const main = env.url('main');
  const { ok } = access(env);
  await ok('full', ['init', '-e', 'repokey', main]);
  await ok('full', ['create', `${main}::base-1`, src]);
  makeSourceTree(join(env.root, 'src'), 2, 7);
  await ok('full', ['create', `${main}::base-2`, src]);
}

function access(env: BorgkeepEnv) {
  const as = (role: RoleName, args: readonly string[], opts?: Parameters<BorgkeepEnv['borg']>[2]) => env.borg(KEYS[role], args, opts);
  const ok = async (role: RoleName, args: readonly string[]) => {
    const r = await as(role, args);
    if (r.code !== 0) throw new Error(`borg ${args.join(' ')} as ${role} failed (${r.code}): ${r.stderr}`);
    return r;
  };
  return { as, ok };
}

function fixtureOn(env: BorgkeepEnv, archivedSrc: string): RoleFixture {
  const src = join(env.root, 'src');
  const main = env.url('main');
  const { as, ok } = access(env);
  return {
    env,
    src,
    archivedSrc,
    main,
    fresh: env.url('fresh'),
    as,
    async archives() {
      const r = await ok('full', ['list', '--json', main]);
      const list = JSON.parse(r.stdout) as { archives: Array<{ name: string; id: string }> };
      return list.archives.map((a) => `${a.name} ${a.id}`).sort();
    },
    async assertIntact() {
      const r = await as('full', ['check', main]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    },
  };
}

/** Asserts that borg failed and printed borgkeep's refusal naming `method`. */
export function expectRefused(r: RunResult, method: string): void {
  expect(r.code, `expected a refusal, got exit ${r.code}: ${r.stderr}`).not.toBe(0);
  expect(r.stderr).toContain(`borgkeep refused ${method}`);
}

export function expectOk(r: RunResult): void {
  expect(r.code, r.stderr).toBe(0);
}
