// `borgkeep repo key` with real borg repositories made through the guard: a repokey and a keyfile
// repository handed over (checked against the repository first), bad input refused in one sentence
// with nothing stored, --forget leaving no trace in the data directory (vault and SQLite files),
// and a vault sealed with a master passphrase refusing a wrong one.

import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { PASSPHRASE, createBorgkeepEnv, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { expectOneSentence } from './cli-harness.js';

let env: BorgkeepEnv;
let files: string;
let keyFile: string;
const vaultDir = () => join(env.dataDir, 'vault');
const entries = () => (existsSync(vaultDir()) ? readdirSync(vaultDir()).filter((n) => !n.startsWith('.')) : []);

async function borgOk(key: string, args: string[]): Promise<void> {
  const r = await env.borg(key, args);
  expect(r.code, `borg ${args.join(' ')}: ${r.stderr}`).toBe(0);
}
const dirName = async (repo: string) => (JSON.parse(await env.cliOk(['repo', 'show', repo, '--json'])) as { dirName: string }).dirName;
const keyHeld = async (repo: string) => (JSON.parse(await env.cliOk(['repo', 'show', repo, '--json'])) as { keyHeld: boolean }).keyHeld;

/** Every file of the data directory (the SQLite database and its WAL included), byte for byte. */
function dataDirFiles(): Buffer[] {
  return readdirSync(env.dataDir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => readFileSync(join(e.parentPath, e.name)));
}
function encodings(secret: string): Buffer[] {
  const u = Buffer.from(secret, 'utf8');
  return [u, Buffer.from(secret, 'utf16le'), Buffer.from(u.toString('hex')), Buffer.from(u.toString('base64')), Buffer.from(u.toString('base64url'))];
}
function expectNoTrace(secret: string): void {
  for (const f of dataDirFiles()) for (const e of encodings(secret)) expect(f.includes(e)).toBe(false);
}

beforeAll(async () => {
  env = createBorgkeepEnv('cli-vault');
  await env.repoWithKeys('rk', { admin: 'full' });
  await env.cliOk(['repo', 'create', 'kf']);
  await env.cliOk(['grant', 'admin', 'kf', '--role', 'full']);
  await env.cliOk(['repo', 'create', 'empty']);
  const src = join(env.root, 'src');
  mkdirSync(src);
  writeFileSync(join(src, 'a.txt'), 'data\n'.repeat(100));
  await borgOk('admin', ['init', '-e', 'repokey-blake2', env.url('rk')]);
  await borgOk('admin', ['create', `${env.url('rk')}::one`, src]);
  await borgOk('admin', ['init', '-e', 'keyfile', env.url('kf')]);
  files = join(env.root, 'secrets');
  mkdirSync(files);
  writeFileSync(join(files, 'right'), `${PASSPHRASE}\n`);
  writeFileSync(join(files, 'wrong'), 'not the passphrase\n');
  const keysDir = join(env.root, 'client', '.config', 'borg', 'keys');
  keyFile = join(keysDir, readdirSync(keysDir)[0]!);
}, 120_000);
afterAll(() => env?.cleanup());

describe('borgkeep repo key', () => {
  test('refuses bad input in one sentence and stores nothing', async () => {
    const right = join(files, 'right');
    expectOneSentence(await env.cli(['repo', 'key', 'rk', '--passphrase-file', join(files, 'wrong')]), "the key of repository 'rk' was not stored: the passphrase is wrong");
    expectOneSentence(await env.cli(['repo', 'key', 'nosuch', '--passphrase-file', right]), /^borgkeep: .*'nosuch'/);
    expectOneSentence(await env.cli(['repo', 'key', 'rk', '--passphrase-file', join(files, 'missing')]), /^borgkeep: cannot read the passphrase file .*missing: there is no such file$/);
    expectOneSentence(await env.cli(['repo', 'key', 'rk', '--passphrase-file', right, '--forget']), /either --forget or --passphrase-file/);
    expectOneSentence(await env.cli(['repo', 'key', 'rk']), /say what to do/);
    expectOneSentence(await env.cli(['repo', 'key', 'rk', '--key-file', keyFile]), /--key-file needs --passphrase-file/);
    expectOneSentence(await env.cli(['repo', 'key', 'kf', '--passphrase-file', right]), /was not stored: .*give its key file/);
    expectOneSentence(await env.cli(['repo', 'key', 'rk', '--passphrase-file', right, '--key-file', keyFile]), /was not stored: .*without a key file/);
    expectOneSentence(await env.cli(['repo', 'key', 'empty', '--passphrase-file', right]), /was not stored: the repository is not initialised yet/);
    expect(entries()).toEqual([]);
    expect(await keyHeld('rk')).toBe(false);
  }, 120_000);

  test('holds a repokey and a keyfile repository key, checked against the repository; forget leaves no trace', async () => {
    const out = await env.cliOk(['repo', 'key', 'rk', '--passphrase-file', join(files, 'right')]);
    expect(out).toBe("borgkeep now holds the key of repository 'rk' (repokey-blake2; it opens the current manifest, 1 archive).\n");
    const kfOut = await env.cliOk(['repo', 'key', 'kf', '--passphrase-file', join(files, 'right'), '--key-file', keyFile]);
    expect(kfOut).toBe("borgkeep now holds the key of repository 'kf' (keyfile; it opens the current manifest, 0 archives).\n");
    expect(entries().sort()).toEqual([await dirName('rk'), await dirName('kf')].sort());
    expect(await keyHeld('rk')).toBe(true);
    expect(await env.cliOk(['repo', 'show', 'rk'])).toContain("borgkeep holds this repository's key");
    expectNoTrace(PASSPHRASE);
    const keyText = readFileSync(keyFile, 'utf8');
    for (const line of keyText.split('\n').filter((l) => l.length > 20)) for (const f of dataDirFiles()) expect(f.includes(Buffer.from(line))).toBe(false);

    const sealed = readFileSync(join(vaultDir(), await dirName('rk')));
    expect(await env.cliOk(['repo', 'key', 'rk', '--forget'])).toBe("borgkeep no longer holds the key of repository 'rk'.\n");
    expect(await env.cliOk(['repo', 'key', 'rk', '--forget'])).toBe("borgkeep did not hold the key of repository 'rk'; nothing changed.\n");
    expect(entries()).toEqual([await dirName('kf')]);
    expect(await keyHeld('rk')).toBe(false);
    // Nothing of the sealed entry is left anywhere in the data directory: vault, database, WAL.
    for (const f of dataDirFiles()) expect(f.includes(sealed.subarray(36))).toBe(false);
    await env.cliOk(['repo', 'key', 'kf', '--forget']);
    expect(entries()).toEqual([]);
    expectNoTrace(PASSPHRASE);
  }, 120_000);

  test('a data directory whose vault uses its master key file refuses a master passphrase', async () => {
    const master = join(files, 'master');
    writeFileSync(master, 'the master passphrase\n');
    // This data directory used its master key file above: switching is refused, not silent.
    expectOneSentence(await env.cli(['repo', 'key', 'rk', '--passphrase-file', join(files, 'right'), '--vault-passphrase-file', master]), /sealed with its master key file/);
  });
});

describe('borgkeep repo key with a master passphrase', () => {
  let env2: BorgkeepEnv;
  afterAll(() => env2?.cleanup());
  test('stores with the master passphrase, refuses a wrong one and fails closed without one', async () => {
    env2 = createBorgkeepEnv('cli-vault-master');
    await env2.repoWithKeys('rk', { admin: 'full' });
    expect((await env2.borg('admin', ['init', '-e', 'repokey', env2.url('rk')])).code).toBe(0);
    const right = join(env2.root, 'right');
    const master = join(env2.root, 'master');
    writeFileSync(right, PASSPHRASE);
    writeFileSync(master, 'the master passphrase\n');
    writeFileSync(join(env2.root, 'bad-master'), 'another master\n');
    expect(await env2.cliOk(['repo', 'key', 'rk', '--passphrase-file', right, '--vault-passphrase-file', master])).toMatch(/^borgkeep now holds the key of repository 'rk' \(repokey;/);
    expect(existsSync(join(env2.dataDir, 'vault-master.key'))).toBe(false);
    expectOneSentence(
      await env2.cli(['repo', 'key', 'rk', '--passphrase-file', right, '--vault-passphrase-file', join(env2.root, 'bad-master')]),
      "the master passphrase is wrong: it does not open this data directory's key vault",
    );
    expectOneSentence(await env2.cli(['repo', 'key', 'rk', '--passphrase-file', right]), /sealed with a master passphrase that this process was not given/);
    // Forgetting needs no master secret.
    expect(await env2.cliOk(['repo', 'key', 'rk', '--forget'])).toBe("borgkeep no longer holds the key of repository 'rk'.\n");
  }, 120_000);
});
