// `borgkeep verify` against one repository written by the real borg client (repokey-blake2), as a
// week of backups: an intact repository (exit 0, no alert), a second run that reads only the new
// objects, --all that reads everything, then damage in what each new backup wrote: a flipped bit
// (MAC), a chunk borg deleted (missing), another object's bytes under an id (id mismatch). Each
// is found, named with the archives that depend on it, recorded, and raised as an alert; a full
// run after the damage is repaired ends the alert. A damaged put that a later one superseded, and
// the chunks of an archive borg deleted, are not damage.

import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { afterAll, beforeAll, expect, test } from 'vitest';

import { PASSPHRASE, createBorgkeepEnv, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { stateAlerts } from '../helpers/pull-installation.js';
import { verifyRepository } from '../../src/verify/verify-repository.js';
import { chunksOf, flipBit, locate, repositoryKey, swapContent, verifyJson } from './verify-fixture.js';

let env: BorgkeepEnv;
let repoPath: string;
const src = (day: string) => join(env.root, 'src', day);

/** A day's source folder: `files` files of random bytes (nothing deduplicates across days). */
function day(name: string, files: Record<string, number>): string {
  const dir = src(name);
  mkdirSync(dir, { recursive: true });
  for (const [file, size] of Object.entries(files)) writeFileSync(join(dir, file), randomBytes(size));
  return dir;
}

async function backup(archive: string, dir: string, extra: string[] = []): Promise<void> {
  const r = await env.borg('admin', ['create', ...extra, `${env.url('main')}::${archive}`, dir]);
  expect(r.code, r.stderr).toBe(0);
}

/** Bytes of the repository's segment files. */
function segmentBytes(): number {
  let total = 0;
  for (const d of readdirSync(join(repoPath, 'data'))) for (const f of readdirSync(join(repoPath, 'data', d))) total += statSync(join(repoPath, 'data', d, f)).size;
  return total;
}

const verifyAlerts = async () => (await stateAlerts(env.dataDir)).filter((a) => a.rule === 'verify-damage');

beforeAll(async () => {
  env = createBorgkeepEnv('verify-changed');
  await env.cliOk(['repo', 'create', 'main']);
  await env.addKey('admin');
  await env.cliOk(['grant', 'admin', 'main', '--role', 'full']);
  expect((await env.borg('admin', ['init', '-e', 'repokey-blake2', env.url('main')])).code).toBe(0);
  await backup('monday', day('monday', { 'big.bin': 6_000_000, 'small.bin': 100_000 }));
  repoPath = await env.repoPath('main');
  const pass = join(env.root, 'passphrase');
  writeFileSync(pass, `${PASSPHRASE}\n`, { mode: 0o600 });
  await env.cliOk(['repo', 'key', 'main', '--passphrase-file', pass]);
});
afterAll(() => env?.cleanup());

test('an intact repository: exit 0, every object read the first time, no alert', async () => {
  const { code, report } = await verifyJson(env, 'main');
  expect(code).toBe(0);
  expect(report).toMatchObject({ verdict: 'intact', scope: 'all', findings: [], archivesChecked: ['monday'] });
  expect(report.objectsRead).toBeGreaterThan(3);
  expect(await verifyAlerts()).toEqual([]);
  const text = await env.cliOk(['verify', 'main']);
  expect(text).toMatch(/^repository 'main' is intact: \d+ objects \(.+ read\) in \d+ segments?, the objects written after transaction \d+ through transaction \d+ verified\.$/m);
});

test('a second run reads only the objects written since the last one', async () => {
  await backup('tuesday', day('tuesday', { 'new.bin': 600_000 }));
  const total = segmentBytes();
  const { code, report } = await verifyJson(env, 'main');
  expect(code).toBe(0);
  expect(report).toMatchObject({ verdict: 'intact', scope: 'changed', archivesChecked: ['tuesday'] });
  // The new backup's data (600 kB) and its metadata, not the 6 MB of monday.
  expect(report.bytesRead).toBeGreaterThan(600_000);
  expect(report.bytesRead).toBeLessThan(900_000);
  expect(report.bytesRead).toBeLessThan(total / 5);
});

test('--all reads every object again', async () => {
  const { code, report } = await verifyJson(env, 'main', ['--all']);
  expect(code).toBe(0);
  expect(report).toMatchObject({ verdict: 'intact', scope: 'all', fromTxn: null });
  expect(report.archivesChecked.sort()).toEqual(['monday', 'tuesday']);
  expect(report.bytesRead).toBeGreaterThan(segmentBytes() * 0.95);
});

test('where the last run stopped is trusted only while it is still the repository\'s past (a rollback or a rewritten segment reads everything)', async () => {
  const key = repositoryKey(repoPath);
  const last = await verifyRepository({ repoPath, key, since: null, all: false });
  expect(last).toMatchObject({ scope: 'all', restartedBecause: null });
  const txn = last.through.throughTxn;
  const same = await verifyRepository({ repoPath, key, since: last.through, all: false });
  expect(same).toMatchObject({ scope: 'changed', fromTxn: txn, objectsRead: 0, restartedBecause: null });
  const ahead = await verifyRepository({ repoPath, key, since: { throughTxn: txn + 5, stamp: null }, all: false });
  expect(ahead).toMatchObject({ scope: 'all', restartedBecause: `the repository was rolled back to transaction ${txn}, before the last verified ${txn + 5}` });
  const rewritten = await verifyRepository({ repoPath, key, since: { throughTxn: txn, stamp: '1:2:3' }, all: false });
  expect(rewritten).toMatchObject({ scope: 'all', restartedBecause: `transaction ${txn} was written again since it was verified` });
  expect(rewritten.objectsRead).toBe(last.objectsRead);
});

test('a damaged put that a later one superseded is not damage: only what the index points at counts', async () => {
  // borg init's manifest, in segment 0, was superseded by every later manifest.
  const seg = join(repoPath, 'data', '0', '0');
  const bytes = readFileSync(seg);
  bytes[8 + 41 + 20] ^= 0x01;
  bytes.writeUInt32LE(crc32(bytes.subarray(8 + 4, bytes.readUInt32LE(8 + 4) + 8)), 8);
  writeFileSync(seg, bytes);
  const { code, report } = await verifyJson(env, 'main', ['--all']);
  expect(code).toBe(0);
  expect(report.findings).toEqual([]);
});

test('a flipped bit in an object written since the last run: exit 1, its MAC, the archive named, an alert', async () => {
  await backup('wednesday', day('wednesday', { 'report.bin': 300_000 }));
  const [chunk] = await chunksOf(repoPath, 'wednesday', 'report.bin');
  flipBit(repoPath, chunk!);
  const { code, report } = await verifyJson(env, 'main');
  expect(code).toBe(1);
  expect(report.verdict).toBe('damaged');
  expect(report.findings).toEqual([
    expect.objectContaining({ kind: 'mac', id: chunk!.toString('hex'), archives: ['wednesday'], sentence: expect.stringMatching(/^object [0-9a-f]{16}… in segment \d+ at offset \d+: its MAC does not verify with the repository key\.$/) }),
  ]);
  expect(report.affectedArchives).toEqual(['wednesday']);
  const text = await env.cli(['verify', 'main', '--all']);
  expect(text.code).toBe(1);
  expect(text.stdout).toContain('its MAC does not verify with the repository key. Archives that depend on it: wednesday.');
  expect(text.stdout).toMatch(/^repository 'main' is damaged: 1 finding in /m);
  const alerts = await verifyAlerts();
  expect(alerts).toEqual([expect.objectContaining({ severity: 'critical', summary: "verification found damage in 'main', affecting archive wednesday" })]);
  // Repaired (the bit flipped back), a full run finds it intact and the alert ends.
  flipBit(repoPath, chunk!);
  expect((await verifyJson(env, 'main', ['--all'])).code).toBe(0);
  expect(await verifyAlerts()).toEqual([]);
});

test('a chunk deleted from the repository is missing, named with the archive that references it', async () => {
  await backup('thursday', day('thursday', { 'notes.bin': 200_000 }));
  const [chunk] = await chunksOf(repoPath, 'thursday', 'notes.bin');
  // borg itself deletes it: a DELETE and a commit, as a damaged or hostile client would.
  const del = await env.borg('admin', ['debug', 'delete-obj', env.url('main'), chunk!.toString('hex')]);
  expect(del.code, del.stderr).toBe(0);
  const { code, report } = await verifyJson(env, 'main');
  expect(code).toBe(1);
  expect(report.findings).toEqual([expect.objectContaining({ kind: 'missing', id: chunk!.toString('hex'), archives: ['thursday'] })]);
  expect(report.findings[0]!.sentence).toMatch(/^chunk [0-9a-f]{16}… is missing: a new archive references it, and the repository does not hold it\.$/);
  expect(await verifyAlerts()).toEqual([expect.objectContaining({ summary: "verification found damage in 'main', affecting archive thursday" })]);
});

test('an object whose content does not match its id (another valid object stored under it)', async () => {
  // Uncompressed and under borg's smallest chunk: one chunk per file, of the same stored size.
  await backup('friday', day('friday', { 'a.bin': 100_000, 'b.bin': 100_000 }), ['--compression', 'none']);
  const [a] = await chunksOf(repoPath, 'friday', 'a.bin');
  const [b] = await chunksOf(repoPath, 'friday', 'b.bin');
  expect(locate(repoPath, a!).path).toBe(locate(repoPath, b!).path);
  swapContent(repoPath, a!, b!);
  const { code, report } = await verifyJson(env, 'main');
  expect(code).toBe(1);
  expect(report.findings).toEqual([expect.objectContaining({ kind: 'id-mismatch', id: a!.toString('hex'), archives: ['friday'] })]);
  expect(report.findings[0]!.sentence).toContain('its content does not match its id');
});

test('an archive deleted with borg delete is not damage: its chunks are deleted, and no archive uses them', async () => {
  const del = await env.borg('admin', ['delete', `${env.url('main')}::monday`]);
  expect(del.code, del.stderr).toBe(0);
  const { code, report } = await verifyJson(env, 'main');
  expect(code, JSON.stringify(report.findings)).toBe(0);
  expect(report).toMatchObject({ verdict: 'intact', scope: 'changed', findings: [] });
});
