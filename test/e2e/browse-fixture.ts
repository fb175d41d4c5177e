// The repository the browsing e2e tests open: 'main' initialised with the real borg client through
// the harness's embedded gateway, one archive per step (each step first changes the tree under
// `work/tree`, then `borg create ::NAME tree` from `work`), and its key handed to the vault with
// `borgkeep repo key`, as an admin would.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';

import { PASSPHRASE } from '../helpers/borgkeep-env.js';
import type { ConsoleHarness } from './browser-harness.js';

/** Makes the archives in order; returns the work folder (its `tree` is what was backed up last). */
export async function archiveTrees(h: ConsoleHarness, steps: ReadonlyArray<readonly [archive: string, change: (tree: string) => void]>): Promise<string> {
  const work = join(h.env.root, 'work');
  const tree = join(work, 'tree');
  mkdirSync(tree, { recursive: true });
  writeFileSync(join(h.env.root, 'passphrase'), `${PASSPHRASE}\n`);
  const borgOk = async (args: string[]) => {
    const r = await h.env.borg('admin', args, { cwd: work });
    expect(r.code, r.stderr).toBe(0);
  };
  await borgOk(['init', '-e', 'repokey', h.env.url('main')]);
  for (const [archive, change] of steps) {
    change(tree);
    await borgOk(['create', `${h.env.url('main')}::${archive}`, 'tree']);
  }
  await h.env.cliOk(['repo', 'key', 'main', '--passphrase-file', join(h.env.root, 'passphrase')]);
  return work;
}
