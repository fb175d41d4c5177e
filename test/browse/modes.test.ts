// `borgkeep archives/ls/restore` in every encryption mode borg 1.2 offers (none, authenticated,
// authenticated-blake2, repokey, repokey-blake2, keyfile, keyfile-blake2), one repository each
// written by the real borg client: with the key in the vault (none: without one) the archive is
// listed, a folder lists what `borg list --json-lines` lists, and a restored file has the bytes
// `borg extract --stdout` gives; before the key is handed over, one sentence and exit 1.

import { readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { PASSPHRASE, createBorgkeepEnv, makeSourceTree, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { borgOk, borgkeepBytes, expectRefusal, runBytes } from './browse-fixture.js';

const MODES = ['none', 'authenticated', 'authenticated-blake2', 'repokey', 'repokey-blake2', 'keyfile', 'keyfile-blake2'] as const;

let env: BorgkeepEnv;
const paths = new Map<string, string>();
const refusedBeforeKey = new Map<string, { code: number; stdout: string; stderr: string }>();

/** The keyfile borg wrote for this repository, found by the id on its first line. */
function keyFileFor(repoPath: string): string {
  const id = /^id = ([0-9a-f]{64})$/m.exec(readFileSync(join(repoPath, 'config'), 'utf8'))![1];
  const dir = join(env.root, 'client', '.config', 'borg', 'keys');
  const name = readdirSync(dir).find((n) => readFileSync(join(dir, n), 'utf8').startsWith(`BORG_KEY ${id}`));
  if (!name) throw new Error(`no key file for ${id}`);
  return join(dir, name);
}

beforeAll(async () => {
  env = createBorgkeepEnv('browse-modes');
  const work = join(env.root, 'work');
  makeSourceTree(join(work, 'src'), 1);
  symlinkSync('file-0.txt', join(work, 'src', 'link'));
  const passphrase = join(env.root, 'passphrase');
  writeFileSync(passphrase, `${PASSPHRASE}\n`);
  // One repository per mode, set up side by side: borg mostly waits on its own key derivation.
  await Promise.all(
    MODES.map(async (mode) => {
      const repo = `r-${mode}`;
      await env.cliOk(['repo', 'create', repo]);
      const path = await env.repoPath(repo);
      paths.set(mode, path);
      await borgOk(env, ['init', '-e', mode, path]);
      await borgOk(env, ['create', '-C', 'lz4', `${path}::first`, 'src'], work);
      if (mode === 'none') return;
      refusedBeforeKey.set(mode, await env.cli(['ls', repo, 'first']));
      await env.cliOk(['repo', 'key', repo, '--passphrase-file', passphrase, ...(mode.startsWith('keyfile') ? ['--key-file', keyFileFor(path)] : [])]);
    }),
  );
}, 120_000);
afterAll(() => env?.cleanup());

describe.each(MODES)('encryption %s', (mode) => {
  const repo = `r-${mode}`;

  test('archives, ls and restore read what borg wrote', async () => {
    const path = paths.get(mode)!;
    const archives = JSON.parse(await env.cliOk(['archives', repo, '--json'])) as { archives: Array<{ name: string; files: number; authentication: string }> };
    expect(archives.archives.map((a) => [a.name, a.files])).toEqual([['first', 5]]);
    // Debian's borg 1.2.4 writes archive TAMs (the 1.2.5 fix); without a key (none) there is nothing to check them with.
    expect(archives.archives[0]!.authentication).toBe(mode === 'none' ? 'unchecked' : 'ok');

    const listed = (await borgOk(env, ['list', '--json-lines', `${path}::first`, 'src']))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { path: string; mode: string; size: number; mtime: string; linktarget: string })
      .filter((e) => e.path !== 'src')
      .map((e) => [e.path, e.mode, e.size, e.mtime.slice(0, 26), e.linktarget]);
    const ours = (JSON.parse(await env.cliOk(['ls', repo, 'first', 'src', '--json'])) as { entries: Array<{ path: string; mode: string; size: number; mtime: string; linkTarget: string | null }> }).entries.map((e) => [
      e.path,
      e.mode,
      e.size,
      e.mtime.slice(0, 26),
      e.linkTarget ?? '',
    ]);
    expect(ours).toEqual(listed.sort((a, b) => String(a[0]).localeCompare(String(b[0]))));

    const restored = await borgkeepBytes(env, ['restore', repo, 'first', 'src/file-3.txt']);
    expect(restored.stderr).toBe('');
    const extracted = await runBytes('borg', ['extract', '--stdout', `${path}::first`, 'src/file-3.txt'], { env: env.borgEnv('admin') });
    expect(extracted.code, extracted.stderr).toBe(0);
    expect(restored.stdout.equals(extracted.stdout)).toBe(true);
    expect(restored.stdout.length).toBeGreaterThan(1000);
  });

  // An unencrypted repository needs no key: the tests above read it without one.
  if (mode !== 'none') {
    test('before its key is handed over: one sentence, exit 1', () => {
      expectRefusal(refusedBeforeKey.get(mode)!, new RegExp(`no key is held for repository '${repo}'`), paths.get(mode)!);
    });
  }
});
