// `borgkeep verify` in an HMAC-SHA256 mode (repokey) and without encryption (none, where only the
// id check can see a flipped bit), each written by the real borg client: intact, then a flipped
// bit in the next backup found and named. And what it cannot verify is exit 2 with one sentence
// and nothing on stdout: an encrypted repository whose key borgkeep does not hold, a repository
// no client has initialised, a name that does not exist.

import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { PASSPHRASE, createBorgkeepEnv, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { stateAlerts } from '../helpers/pull-installation.js';
import { chunksOf, flipBit, verifyJson } from './verify-fixture.js';

let env: BorgkeepEnv;
let pass: string;

function tree(name: string, size: number): string {
  const dir = join(env.root, 'src', name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'data.bin'), randomBytes(size));
  return dir;
}

async function cannotVerify(name: string, sentence: RegExp): Promise<void> {
  for (const args of [['verify', name], ['verify', name, '--json'], ['verify', name, '--all']]) {
    const r = await env.cli(args);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd()).toMatch(new RegExp(`^borgkeep: could not verify '${name}': ${sentence.source}`));
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).not.toContain(env.dataDir);
  }
}

beforeAll(async () => {
  env = createBorgkeepEnv('verify-modes');
  await env.addKey('admin');
  pass = join(env.root, 'passphrase');
  writeFileSync(pass, `${PASSPHRASE}\n`, { mode: 0o600 });
});
afterAll(() => env?.cleanup());

describe.each([
  ['repokey', 'mac'],
  ['none', 'id-mismatch'],
] as const)('encryption %s', (mode, kind) => {
  const repo = `r-${mode}`;
  test(`intact, then a flipped bit in the next backup is found (${kind}) and named`, async () => {
    await env.cliOk(['repo', 'create', repo]);
    await env.cliOk(['grant', 'admin', repo, '--role', 'full']);
    expect((await env.borg('admin', ['init', '-e', mode, env.url(repo)])).code).toBe(0);
    expect((await env.borg('admin', ['create', `${env.url(repo)}::first`, tree(`${mode}-1`, 400_000)])).code).toBe(0);
    if (mode !== 'none') {
      // Encrypted: nothing to verify without the key.
      await cannotVerify(repo, /the repository is encrypted \(repokey\) and borgkeep holds no key for it: hand it over with 'borgkeep repo key'$/);
      await env.cliOk(['repo', 'key', repo, '--passphrase-file', pass]);
    }
    const first = await verifyJson(env, repo);
    expect(first.code).toBe(0);
    expect(first.report).toMatchObject({ verdict: 'intact', findings: [], archivesChecked: ['first'] });

    expect((await env.borg('admin', ['create', '--compression', 'none', `${env.url(repo)}::second`, tree(`${mode}-2`, 300_000)])).code).toBe(0);
    const repoPath = await env.repoPath(repo);
    const [chunk] = await chunksOf(repoPath, 'second', 'data.bin');
    flipBit(repoPath, chunk!);
    const { code, report } = await verifyJson(env, repo);
    expect(code).toBe(1);
    expect(report.findings).toEqual([expect.objectContaining({ kind, id: chunk!.toString('hex'), archives: ['second'] })]);
    expect(report.objectsRead).toBeLessThan(first.report.objectsRead + 10);
    const alerts = (await stateAlerts(env.dataDir)).filter((a) => a.rule === 'verify-damage' && a.summary.includes(`'${repo}'`));
    expect(alerts).toEqual([expect.objectContaining({ severity: 'critical', summary: `verification found damage in '${repo}', affecting archive second` })]);
  });
});

test('a repository no client has initialised, and one that does not exist, cannot be verified', async () => {
  await env.cliOk(['repo', 'create', 'empty']);
  await cannotVerify('empty', /the repository is not initialised yet \(no borg init has run\)$/);
  await cannotVerify('nosuch', /no repository named 'nosuch'$/);
});
