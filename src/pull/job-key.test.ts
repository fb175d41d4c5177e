// The job key without borg: its blob unlocks with the code that reads repository keys, it has the
// shapes of its mode, and only the modes a job can have get one. (The real borg client loading it
// and its refusal by a real repository's MAC: test/pull/proxy.test.ts.)

import { randomBytes } from 'node:crypto';
import { describe, expect, test } from 'vitest';

import { KeyError, keyBlobProblem, objectId, openObject, sealObject, unlockKey, type BorgKey } from '../repository/borg-key.js';
import { archiveNameAllowed } from './pull-proxy.js';
import { createJobKey, jobKeyModeFor, randomChunkSeed } from './job-key.js';

const hmacKey = (): BorgKey => ({ repositoryId: randomBytes(32), encKey: randomBytes(32), encHmacKey: randomBytes(32), idKey: randomBytes(32), tamRequired: true, chunkSeed: randomChunkSeed() });
const blakeKey = (): BorgKey => ({
  repositoryId: randomBytes(32),
  encKey: randomBytes(32),
  encHmacKey: Buffer.concat([randomBytes(64), Buffer.alloc(64)]),
  idKey: Buffer.concat([randomBytes(64), Buffer.alloc(64)]),
  tamRequired: true,
  chunkSeed: -123456,
});

describe('job key', () => {
  test("its blob is a borg key blob that unlocks with the passphrase to the repository's id key and chunk seed", () => {
    const repo = hmacKey();
    const job = createJobKey(repo, 'repokey');
    expect(job.mode).toBe('repokey');
    expect(keyBlobProblem(Buffer.from(job.blob))).toBeNull();
    const k = unlockKey(job.blob.replace(/\n/g, ''), job.passphrase, job.key.repositoryId);
    expect(k.idKey.equals(repo.idKey)).toBe(true);
    expect(k.chunkSeed).toBe(repo.chunkSeed);
    expect(k.encKey.equals(repo.encKey)).toBe(false);
    expect(k.tamRequired).toBe(true);
  });

  test('a BLAKE2 repository gets a repokey-blake2 job key: 128-byte MAC key, 64 random bytes then 64 zeros; a negative chunk seed survives', () => {
    const repo = blakeKey();
    const job = createJobKey(repo, 'keyfile-blake2');
    expect(job.mode).toBe('repokey-blake2');
    expect(job.key.encHmacKey).toHaveLength(128);
    expect(job.key.encHmacKey.subarray(64).equals(Buffer.alloc(64))).toBe(true);
    expect(job.key.encHmacKey.equals(repo.encHmacKey)).toBe(false);
    expect(unlockKey(job.blob.replace(/\n/g, ''), job.passphrase, job.key.repositoryId).chunkSeed).toBe(-123456);
  });

  test("objects sealed with the repository's key do not open with the job's, and the other way round; ids agree", async () => {
    const repo = hmacKey();
    const job = createJobKey(repo, 'repokey');
    const plain = Buffer.from('some chunk');
    const payload = Buffer.concat([Buffer.from([0, 0]), plain]);
    const byRepo = await sealObject(payload, 'repokey', repo, 5n);
    const byJob = await sealObject(payload, 'repokey', job.key, 5n);
    await expect(openObject(byRepo, 'repokey', job.key)).rejects.toThrow(/MAC does not verify/);
    await expect(openObject(byJob, 'repokey', repo)).rejects.toThrow(/MAC does not verify/);
    expect((await openObject(byRepo, 'repokey', repo)).equals(plain)).toBe(true);
    expect((await objectId('repokey', job.key, plain)).equals(await objectId('repokey', repo, plain))).toBe(true);
  });

  test('no job key for repositories a job cannot take, or a key without its chunk seed', () => {
    for (const mode of ['none', 'authenticated', 'authenticated-blake2'] as const) expect(jobKeyModeFor(mode)).toBeNull();
    expect(() => createJobKey(hmacKey(), 'authenticated')).toThrow(KeyError);
    expect(() => createJobKey({ ...hmacKey(), chunkSeed: undefined }, 'repokey')).toThrow(/no chunk seed/);
    expect(() => createJobKey(hmacKey(), 'repokey-blake2')).toThrow(/not a repokey-blake2 key/);
  });
});

describe("the job's archive names", () => {
  test("the job's name and borg's checkpoints of it, nothing else", () => {
    const ok = (n: string) => archiveNameAllowed(Buffer.from(n), 'web-2026-12-06T10:00:00');
    expect(ok('web-2026-12-06T10:00:00')).toBe(true);
    expect(ok('web-2026-12-06T10:00:00.checkpoint')).toBe(true);
    expect(ok('web-2026-12-06T10:00:00.checkpoint.3')).toBe(true);
    expect(ok('web-2026-12-06T10:00:00.checkpointx')).toBe(false);
    expect(ok('web-2026-12-06T10:00:00.checkpoint.')).toBe(false);
    expect(ok('web-2026-12-06T10:00:00x')).toBe(false);
    expect(ok('other')).toBe(false);
    expect(archiveNameAllowed(Buffer.from([0xff]), '\ufffd')).toBe(false);
  });
});
