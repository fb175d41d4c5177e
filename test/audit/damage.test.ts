// Repositories the audit cannot vouch for: damaged or cut segments, a borg 2 entry, a newer
// repository version, an unreadable manifest, a directory that holds no repository. Each gets
// one sentence on stderr and exit 2 ("could not audit"), never a stack trace or a verdict.

import { cpSync, mkdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { afterAll, beforeAll, expect, test } from 'vitest';

import { createBorgkeepEnv, makeSourceTree, type BorgkeepEnv } from '../helpers/borgkeep-env.js';

let env: BorgkeepEnv;
let pristine: string;
let cases = 0;

/** A fresh registered repository holding a copy of the pristine one; returns its name and path. */
async function copyOfPristine(): Promise<{ name: string; path: string }> {
  const name = `case-${++cases}`;
  await env.cliOk(['repo', 'create', name]);
  const path = await env.repoPath(name);
  rmSync(path, { recursive: true, force: true });
  cpSync(pristine, path, { recursive: true });
  return { name, path };
}
const segment = (repo: string, n: number) => join(repo, 'data', '0', String(n));

async function expectCannotAudit(name: string, sentence: RegExp): Promise<void> {
  for (const args of [['audit', name], ['audit', name, '--json']]) {
    const r = await env.cli(args, { env: { ...process.env, BORG_PASSPHRASE: '', BORGKEEP_DATA_DIR: undefined } });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(new RegExp(`^borgkeep: could not audit '${name}': ${sentence.source}`));
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  }
}

beforeAll(async () => {
  env = createBorgkeepEnv('audit-damage');
  await env.cliOk(['repo', 'create', 'main']);
  await env.addKey('admin');
  await env.cliOk(['grant', 'admin', 'main', '--role', 'full']);
  // Mode none: the manifest can be rewritten by the test to look like a newer borg's.
  expect((await env.borg('admin', ['init', '-e', 'none', env.url('main')])).code).toBe(0);
  expect((await env.borg('admin', ['create', `${env.url('main')}::one`, makeSourceTree(join(env.root, 'src'), 1)])).code).toBe(0);
  pristine = await env.repoPath('main');
  // init: segments 0 (manifest) and 1 (commit); create: 2 (chunks), 3 (manifest delete), 4 (manifest), 5 (commit).
  const clean = await env.cli(['audit', 'main']);
  expect(clean.code, clean.stderr).toBe(0);
});
afterAll(() => env?.cleanup());

test('a flipped byte in a committed segment', async () => {
  const { name, path } = await copyOfPristine();
  const seg = readFileSync(segment(path, 3));
  seg[seg.length - 5] ^= 0xff; // inside the DELETE entry's id
  writeFileSync(segment(path, 3), seg);
  await expectCannotAudit(name, /its history is damaged: segment 3 at offset 8: CRC mismatch in a DELETE entry; run 'borg check'/);
});

test('a committed segment cut short', async () => {
  const { name, path } = await copyOfPristine();
  const size = readFileSync(segment(path, 2)).length;
  truncateSync(segment(path, 2), size - 100);
  await expectCannotAudit(name, /its history is damaged: segment 2 at offset \d+: /);
});

test('an entry of borg 2 (tag 3, PUT2)', async () => {
  const { name, path } = await copyOfPristine();
  const seg = readFileSync(segment(path, 2));
  seg[8 + 8] = 3;
  writeFileSync(segment(path, 2), seg);
  await expectCannotAudit(name, /its history is damaged: segment 2 at offset 8: PUT2 entry \(a borg 2 repository; not supported\)/);
});

test('a repository of a newer version', async () => {
  const { name, path } = await copyOfPristine();
  const config = readFileSync(join(path, 'config'), 'utf8').replace(/^version = 1$/m, 'version = 2');
  writeFileSync(join(path, 'config'), config);
  await expectCannotAudit(name, /cannot read the repository: config: repository version 2 is not borg 1\.x's version 1/);
});

test('a manifest written by a newer borg', async () => {
  const { name, path } = await copyOfPristine();
  // Rewrite segment 4's manifest PUT as a well-formed entry (valid CRC) holding a newer manifest.
  const data = Buffer.concat([Buffer.from([0x02, 0x00, 0x00]), Buffer.from('c1c1c1c1', 'hex'), Buffer.from('future')]);
  const body = Buffer.concat([Buffer.alloc(4), Buffer.from([0]), Buffer.alloc(32), data]);
  body.writeUInt32LE(body.length + 4, 0);
  const entry = Buffer.concat([Buffer.alloc(4), body]);
  entry.writeUInt32LE(crc32(body), 0);
  writeFileSync(segment(path, 4), Buffer.concat([Buffer.from('BORG_SEG'), entry]));
  await expectCannotAudit(name, /the manifest of transaction 5 cannot be read: the manifest was written by a newer borg/);
});

test('a directory that holds no repository', async () => {
  const { name, path } = await copyOfPristine();
  rmSync(path, { recursive: true, force: true });
  mkdirSync(path);
  writeFileSync(join(path, 'notes.txt'), 'not a repository\n');
  await expectCannotAudit(name, /its directory holds no borg repository \(there is no config file\)/);
});

test('damage after an audit is still found: a changed segment is read again, not taken from the audit cache', async () => {
  const { name, path } = await copyOfPristine();
  // A copy: no ledger session wrote it, so it is suspicious (1), but it can be audited.
  const first = await env.cli(['audit', name, '--json']);
  expect(first.code, first.stderr).toBe(1);
  expect((JSON.parse(first.stdout) as { transactions: unknown[] }).transactions).toHaveLength(2);
  const seg = readFileSync(segment(path, 3));
  seg[seg.length - 5] ^= 0xff; // same size; a new write
  writeFileSync(segment(path, 3), seg);
  await expectCannotAudit(name, /its history is damaged: segment 3 at offset 8: CRC mismatch in a DELETE entry/);
  // --no-cache reads everything and agrees.
  const plain = await env.cli(['audit', name, '--no-cache']);
  expect(plain.code).toBe(2);
});
