// The repository every role-matrix test starts from: one borgkeep installation with a key per
// role on repository "main" (initialised by the full key, two archives), and an empty,
// uninitialised repository "fresh" granted to every key for the `init` cases.

import { join } from 'node:path';
import { expect } from 'vitest';

import { createBorgkeepEnv, makeSourceTree, type BorgkeepEnv, type RunResult } from './borgkeep-env.js';

export const KEYS = { full: 'admin-key', append: 'writer-key', prune: 'pruner-key', read: 'reader-key' } as const;
export type RoleName = keyof typeof KEYS;

export interface RoleFixture {
  env: BorgkeepEnv;
  src: string;
  main: string;
  fresh: string;
  /** Archives of "main" as the full key sees them: "name id" lines, sorted. */
  archives(): Promise<string[]>;
  /** `borg check` with the full key; fails the test unless it passes. */
  assertIntact(): Promise<void>;
  as(role: RoleName, args: readonly string[], opts?: Parameters<BorgkeepEnv['borg']>[2]): Promise<RunResult>;
}

export async function createRoleFixture(label: string, transport: BorgkeepEnv['transport'] = 'forced-command'): Promise<RoleFixture> {
  const env = createBorgkeepEnv(label, transport);
  await env.cliOk(['repo', 'create', 'main']);
  await env.cliOk(['repo', 'create', 'fresh']);
  for (const [role, key] of Object.entries(KEYS)) {
    await env.addKey(key);
    await env.cliOk(['grant', key, 'main', '--role', role]);
    await env.cliOk(['grant', key, 'fresh', '--role', role]);
  }
  const src = makeSourceTree(join(env.root, 'src'), 1);
  const main = env.url('main');
  const as = (role: RoleName, args: readonly string[], opts?: Parameters<BorgkeepEnv['borg']>[2]) => env.borg(KEYS[role], args, opts);
  const ok = async (role: RoleName, args: readonly string[]) => {
    const r = await as(role, args);
    if (r.code !== 0) throw new Error(`borg ${args.join(' ')} as ${role} failed (${r.code}): ${r.stderr}`);
    return r;
  };
  await ok('full', ['init', '-e', 'repokey', main]);
  await ok('full', ['create', `${main}::base-1`, src]);
  makeSourceTree(join(env.root, 'src'), 2, 7);
  await ok('full', ['create', `${main}::base-2`, src]);

  return {
    env,
    src,
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
