// The audit against repositories built by the real borg client through borgkeep in every
// encryption mode of borg 1.2, with every compressor borg offers (lz4, zstd, zlib, lzma, none,
// obfuscation; each command writes its manifest with its own compressor): after each step the archive set
// that `borg list` shows must be what the audit's diffs add up to at that transaction.

import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { PASSPHRASE, createBorgkeepEnv, makeSourceTree, run, type BorgkeepEnv } from '../helpers/borgkeep-env.js';

const MODES = ['none', 'authenticated', 'authenticated-blake2', 'repokey', 'repokey-blake2', 'keyfile', 'keyfile-blake2'] as const;

interface JsonTxn {
  id: number;
  verdict: string;
  archivesAdded: string[] | null;
  archivesRemoved: string[] | null;
  archivesReplaced: string[] | null;
}

let env: BorgkeepEnv;

beforeAll(async () => {
  env = createBorgkeepEnv('audit-modes');
  await env.addKey('admin');
});
afterAll(() => env?.cleanup());

/** The keyfile borg wrote for this repository (keyfile modes), found by the id on its first line. */
function keyFileFor(repoPath: string): string {
  const id = /^id = ([0-9a-f]{64})$/m.exec(readFileSync(join(repoPath, 'config'), 'utf8'))![1];
  const dir = join(env.root, 'client', '.config', 'borg', 'keys');
  const name = readdirSync(dir).find((n) => readFileSync(join(dir, n), 'utf8').startsWith(`BORG_KEY ${id}`));
  if (!name) throw new Error(`no key file for ${id}`);
  return join(dir, name);
}

describe.each(MODES)('encryption %s', (mode) => {
  const repo = `r-${mode}`;
  const url = () => env.url(repo);
  const listedAfter: string[][] = [];
  let onDisk = '';

  async function step(args: string[]): Promise<void> {
    const r = await env.borg('admin', args);
    expect(r.code, `borg ${args.join(' ')}: ${r.stderr}`).toBe(0);
    // What the audit must add up to: `borg list` straight on the repository's directory, as an
    // admin on the server would. No gateway in between: the list only reads, and through borgkeep
    // it cost two more processes (borgkeep and borg serve) per step.
    const list = await run('borg', ['list', '--short', onDisk], { env: env.borgEnv('admin') });
    expect(list.code, list.stderr).toBe(0);
    listedAfter.push(list.stdout.split('\n').filter(Boolean).sort());
  }

  beforeAll(async () => {
    await env.cliOk(['repo', 'create', repo]);
    await env.cliOk(['grant', 'admin', repo, '--role', 'full']);
    onDisk = await env.repoPath(repo);
    const src = join(env.root, `src-${mode}`);
    await step(['init', '-e', mode, url()]);
    makeSourceTree(src, 1);
    await step(['create', '--compression', 'lz4', `${url()}::a1`, src]);
    makeSourceTree(src, 2);
    await step(['create', '--compression', 'zstd,3', `${url()}::a2`, src]);
    makeSourceTree(src, 3);
    await step(['create', '--compression', 'zlib,6', `${url()}::a3`, src]);
    await step(['rename', `${url()}::a1`, 'a1-renamed']);
    await step(['delete', `${url()}::a2`]);
    makeSourceTree(src, 4);
    await step(['create', '--compression', 'obfuscate,3,zstd,1', `${url()}::a4`, src]);
    await step(['create', '--compression', 'none', `${url()}::a5`, src]);
    makeSourceTree(src, 5);
    await step(['create', '--compression', 'lzma,1', `${url()}::a6`, src]);
  }, 240_000);

  test('the audit with the passphrase adds up to what borg list showed after every step', async () => {
    const args = ['audit', repo, '--json'];
    if (mode.startsWith('keyfile')) args.push('--key-file', keyFileFor(await env.repoPath(repo)));
    const r = await env.cli(args, { env: { ...process.env, BORG_PASSPHRASE: PASSPHRASE, BORGKEEP_DATA_DIR: undefined } });
    expect(r.stderr).toBe('');
    const report = JSON.parse(r.stdout) as { verdict: string; manifestsRead: boolean; transactions: JsonTxn[] };
    expect(report.manifestsRead).toBe(true);
    // One transaction per step (each command commits once), every one by the full key.
    expect(report.transactions).toHaveLength(listedAfter.length);
    let archives = new Set<string>();
    report.transactions.forEach((t, i) => {
      expect(t.archivesAdded, `transaction ${t.id}`).not.toBeNull();
      for (const n of t.archivesRemoved ?? []) archives.delete(n);
      for (const n of t.archivesAdded ?? []) archives.add(n);
      expect([...archives].sort(), `after step ${i + 1} (transaction ${t.id})`).toEqual(listedAfter[i]);
    });
    // A full key's rename and delete are listed for review, not alarms.
    expect(report.transactions.map((t) => t.verdict)).toEqual(['ok', 'ok', 'ok', 'ok', 'notice', 'notice', 'ok', 'ok', 'ok']);
    expect(report.verdict).toBe('clean');
    expect(r.code).toBe(0);
    archives = new Set();
  });

  test('without the passphrase: the structural audit, and which checks needed the key', async () => {
    const r = await env.cli(['audit', repo, '--json'], { env: { ...process.env, BORG_PASSPHRASE: undefined, BORGKEEP_DATA_DIR: undefined } });
    expect(r.stderr).toBe('');
    const report = JSON.parse(r.stdout) as { manifestsRead: boolean; checksNeedingKey: string[]; transactions: JsonTxn[] };
    expect(report.transactions).toHaveLength(listedAfter.length);
    // Unencrypted modes need no key for the diffs; the authenticated ones need it for the TAM.
    expect(report.manifestsRead).toBe(mode === 'none' || mode.startsWith('authenticated'));
    expect(report.checksNeedingKey.length === 0).toBe(mode === 'none');
    if (mode.startsWith('authenticated')) expect(report.checksNeedingKey).toEqual(['manifest authentication (TAM)']);
  });
});
