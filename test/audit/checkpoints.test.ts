// A backup's own course is not an alarm: an append key's `borg create` that writes checkpoints
// (each checkpoint transaction removes the previous checkpoint archive and its metadata object,
// written by the same session) and then finishes, audits clean with and without the passphrase.

import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';

import { PASSPHRASE, createBorgkeepEnv, type BorgkeepEnv } from '../helpers/borgkeep-env.js';

let env: BorgkeepEnv;

beforeAll(async () => {
  env = createBorgkeepEnv('audit-checkpoints');
  await env.repoWithKeys('main', { admin: 'full', laptop: 'append' });
  expect((await env.borg('admin', ['init', '-e', 'repokey-blake2', env.url('main')])).code).toBe(0);
  const big = join(env.root, 'big');
  mkdirSync(big);
  writeFileSync(join(big, 'random.bin'), randomBytes(12 * 1024 * 1024));
  const r = await env.borg('laptop', ['create', '--checkpoint-interval', '1', '--upload-ratelimit', '2048', '--compression', 'none', `${env.url('main')}::nightly`, big]);
  expect(r.code, r.stderr).toBe(0);
});
afterAll(() => env?.cleanup());

test('a backup with checkpoints audits clean, its checkpoints listed, one session doing it all', async () => {
  const r = await env.cli(['audit', 'main', '--json'], { env: { ...process.env, BORG_PASSPHRASE: PASSPHRASE, BORGKEEP_DATA_DIR: undefined } });
  const report = JSON.parse(r.stdout) as {
    verdict: string;
    transactions: Array<{ verdict: string; reasons: string[]; session: number | null; objectsDeleted: number; archivesAdded: string[]; archivesRemoved: string[]; checkpointsPromoted: string[] }>;
  };
  expect(report.transactions.filter((t) => t.verdict !== 'ok').map((t) => t.reasons)).toEqual([]);
  expect(r.code).toBe(0);
  const backup = report.transactions.slice(1);
  expect(backup.length).toBeGreaterThanOrEqual(2); // at least one checkpoint, then the archive
  expect(new Set(backup.map((t) => t.session)).size).toBe(1);
  expect(backup.some((t) => t.objectsDeleted > 0)).toBe(true);
  expect(backup.at(-1)?.archivesAdded).toEqual(['nightly']);
  expect(backup.at(-1)?.checkpointsPromoted).toEqual(['nightly.checkpoint']);
  const plain = await env.cli(['audit', 'main'], { env: { ...process.env, BORG_PASSPHRASE: undefined, BORGKEEP_DATA_DIR: undefined } });
  expect(plain.code, plain.stdout).toBe(0);
});
