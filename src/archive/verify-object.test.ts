// The verification --verify-objects makes of each put, against objects the real borg 1.2 client
// wrote (none, lz4 and zstd payloads in none, repokey, repokey-blake2, authenticated-blake2
// repositories), and against objects a client holding the key forges.
import { createDecipheriv } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { makeBorgRepository, readBorgObjects, type BorgObjects, type StoredObject } from '../../test/support/borg-objects.js';
import { createPrng } from '../../test/support/prng.js';
import { runPython } from '../../test/support/python.js';
import { plainId, sealEnvelope } from '../../test/support/sealed-objects.js';
import { isEncrypted, type BorgKey } from '../repository/borg-key.js';
import { MANIFEST_ID } from '../repository/manifest.js';
import { objcheck } from '../native/objcheck.js';
import { createObjectVerifier, zstdFrameSize, type ObjectRefusal, type ObjectVerifier } from './verify-object.js';

const MODES = ['none', 'repokey', 'repokey-blake2', 'authenticated-blake2'] as const;

let dir: string;
const repos = new Map<string, BorgObjects>();
let otherRepokey: BorgObjects;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'borgkeep-verify-'));
  const prng = createPrng(14);
  for (const mode of MODES) repos.set(mode, await readBorgObjects(makeBorgRepository(dir, mode, mode, prng)));
  otherRepokey = await readBorgObjects(makeBorgRepository(dir, 'other', 'repokey', prng, ['lz4'], 20_000));
}, 300_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const repo = (mode: string): BorgObjects => repos.get(mode) as BorgObjects;
const chunks = (r: BorgObjects): StoredObject[] => r.objects.filter((o) => !o.id.equals(MANIFEST_ID));
const check = async (v: ObjectVerifier, id: Buffer, envelope: Buffer): Promise<ObjectRefusal | null> => v.verify(id, envelope);

/** The decrypted, still compressed payload of an object (what follows TYPE, MAC, IV). */
function payloadOf(r: BorgObjects, envelope: Buffer): Buffer {
  if (!isEncrypted(r.mode)) return envelope.subarray(1);
  const key = r.key as BorgKey;
  const iv = Buffer.concat([Buffer.alloc(8), envelope.subarray(33, 41)]);
  return createDecipheriv('aes-256-ctr', key.encKey, iv).update(envelope.subarray(41));
}

/** An envelope for `payload` as a client holding the key writes one: right TYPE, valid MAC. */
const seal = (r: BorgObjects, payload: Buffer, counter = 123_456): Promise<Buffer> => sealEnvelope(r.mode, r.key as BorgKey, payload, counter);

/** The id borg gives `plain` in this repository. */
const idOf = (r: BorgObjects, plain: Buffer): Promise<Buffer> => plainId(r.mode, r.key, plain);

function borgCompress(spec: string, data: Buffer): Buffer {
  return runPython('import sys\nfrom borg.compress import CompressionSpec\nsys.stdout.buffer.write(CompressionSpec(sys.argv[1]).compressor.compress(sys.stdin.buffer.read()))', data, [spec]);
}

// Each test runs twice: with the native checker (native/objcheck.c), what the guard runs where
// it was built, and with the JavaScript it falls back to.
describe.each([
  ['native checker', true],
  ['JavaScript', false],
])('%s', (_name, useNative) => {
  if (useNative) it('the native checker is built here (npm run build; it needs a C compiler)', () => expect(objcheck()).not.toBeNull());
  const verifierFor = (r: BorgObjects, key: BorgKey | null = r.key): Promise<ObjectVerifier> => createObjectVerifier(r.mode, key, { useNative });

  describe.each(MODES)('objects of a %s repository', (mode) => {
    it('every object borg wrote verifies, among them none, lz4 and zstd payloads', async () => {
      const r = repo(mode);
      expect(r.mode).toBe(mode);
      const v = await verifierFor(r);
      const headers = new Set<string>();
      for (const o of r.objects) {
        expect(await check(v, o.id, o.envelope), o.id.toString('hex')).toBeNull();
        headers.add(payloadOf(r, o.envelope).subarray(0, 2).toString('hex'));
      }
      expect([...headers].sort()).toEqual(['0000', '0100', '0300']);
      expect(chunks(r).length).toBeGreaterThan(100);
    });

    it("an object put under another object's id is refused, naming that id", async () => {
      const r = repo(mode);
      const v = await verifierFor(r);
      const [a, b] = chunks(r);
      const refusal = await check(v, b.id, a.envelope);
      expect(refusal).toEqual({ kind: 'id', why: expect.stringContaining(`object ${b.id.subarray(0, 8).toString('hex')}…: its content does not match its id`) });
    });

    it('a flipped byte anywhere is refused', async () => {
      const r = repo(mode);
      const v = await verifierFor(r);
      const o = chunks(r).find((c) => c.envelope.length > 200) as StoredObject;
      for (const at of [1, 20, 35, 45, 100, o.envelope.length - 1]) {
        const bad = Buffer.from(o.envelope);
        bad[at] ^= 0x01;
        const refusal = await check(v, o.id, bad);
        expect(refusal, `byte ${at}`).not.toBeNull();
        if (isEncrypted(mode)) expect(refusal?.why, `byte ${at}`).toMatch(/MAC does not verify/);
      }
    });

    it("another mode's type byte is refused", async () => {
      const r = repo(mode);
      const v = await verifierFor(r);
      const o = chunks(r)[0];
      const bad = Buffer.from(o.envelope);
      bad[0] = bad[0] === 0x03 ? 0x00 : 0x03;
      expect((await check(v, o.id, bad))?.why).toMatch(/type byte \(\d+\) is not the repository's/);
    });

    it('a client with the key cannot store content under an id it does not match, whatever the compressor', async () => {
      const r = repo(mode);
      const v = await verifierFor(r);
      const victim = chunks(r)[3].id;
      const poison = Buffer.from('not what the victim chunk holds '.repeat(100));
      for (const spec of ['none', 'lz4', 'zstd,3', 'zlib,6', 'lzma,1', 'obfuscate,3,lz4']) {
        const envelope = await seal(r, borgCompress(spec, poison));
        expect((await check(v, victim, envelope))?.kind, spec).toBe('id');
        // The same object under its own id is what borg would write: allowed.
        expect(await check(v, await idOf(r, poison), envelope), spec).toBeNull();
      }
    });

    it('the manifest is checked as an envelope, not by id', async () => {
      const r = repo(mode);
      const v = await verifierFor(r);
      const manifest = r.objects.find((o) => o.id.equals(MANIFEST_ID)) as StoredObject;
      expect(await check(v, MANIFEST_ID, manifest.envelope)).toBeNull();
      const garbage = await seal(r, Buffer.from([0x09, 0x09, 1, 2, 3]));
      expect((await check(v, MANIFEST_ID, garbage))?.why).toMatch(/^object 0000000000000000…: its payload cannot be decompressed: unknown compression header 09 09$/);
    });
  });

  describe('payloads borg could not read back are refused', () => {
    const text = Buffer.from('abcdefghij'.repeat(2000) + 'the end of it all');

    it('an lz4 block liblz4 refuses (it ends with a match)', async () => {
      const r = repo('repokey');
      const v = await verifierFor(r);
      const plain = Buffer.from('aaaaaaaaa');
      const envelope = await seal(r, Buffer.from([0x01, 0x00, 0x14, 0x61, 0x01, 0x00]));
      expect((await check(v, await idOf(r, plain), envelope))?.why).toMatch(/lz4 payload is not one borg can read \(the block does not end with literals\)/);
    });

    it('zstd frames that declare more than they hold, or carry more than one frame', async () => {
      const r = repo('repokey-blake2');
      const v = await verifierFor(r);
      const id = await idOf(r, text);
      const frame = borgCompress('zstd,3', text);
      expect(await check(v, id, await seal(r, frame))).toBeNull();
      const body = frame.subarray(2);
      expect(zstdFrameSize(body)).toBe(text.length);
      // The content size field: after magic (4), descriptor (1) and, when not single-segment, the window byte.
      const fhd = body[4];
      const fcsAt = 5 + ((fhd >> 5) & 1 ? 0 : 1);
      const fcsBytes = fhd >> 6 === 0 ? 1 : 1 << (fhd >> 6);
      expect(fcsBytes).toBeGreaterThanOrEqual(2);
      // fzstd's one-shot decoder fills the declared size with leftover literals; the check does not.
      const longer = Buffer.from(frame);
      longer.writeUInt16LE(longer.readUInt16LE(2 + fcsAt) + 1, 2 + fcsAt);
      expect((await check(v, id, await seal(r, longer)))?.why).toMatch('decompresses to less than its frame declares');
      const trailing = Buffer.concat([frame, Buffer.from([0])]);
      expect((await check(v, id, await seal(r, trailing)))?.why).toMatch(/bytes follow its last block/);
      const twice = Buffer.concat([frame, body]);
      expect((await check(v, id, await seal(r, twice)))?.why).toMatch(/bytes follow its last block/);
      const checksummed = Buffer.from(frame);
      checksummed[2 + 4] |= 0x04;
      expect((await check(v, id, await seal(r, Buffer.concat([checksummed, Buffer.alloc(4)]))))?.why).toMatch(/it has a checksum/);
    });

    it('payloads that decompress past borg’s 20 MiB bound', async () => {
      const r = repo('none');
      const v = await verifierFor(r);
      // lz4: 21 MiB of zeros from one literal and one long match.
      const n = 21 * 1024 * 1024;
      const lz4 = borgCompress('lz4', Buffer.alloc(n));
      expect((await check(v, Buffer.alloc(32, 1), await seal(r, lz4)))?.why).toMatch(/decompresses to more than 20971520 bytes/);
      const zstd = borgCompress('zstd,1', Buffer.alloc(n));
      expect((await check(v, Buffer.alloc(32, 1), await seal(r, zstd)))?.why).toMatch(/declares more than 20971520 bytes/);
    });
  });

  describe('keys', () => {
    it("another repository's key (same mode) verifies none of its objects", async () => {
      const v = await createObjectVerifier('repokey', otherRepokey.key, { useNative });
      for (const o of chunks(repo('repokey')).slice(0, 20)) expect((await check(v, o.id, o.envelope))?.why).toMatch(/MAC does not verify/);
    });

    it('a key that does not fit the mode, or no key, cannot make a verifier', async () => {
      await expect(createObjectVerifier('repokey', null, { useNative })).rejects.toThrow(/without its key/);
      await expect(createObjectVerifier('repokey-blake2', repo('repokey').key, { useNative })).rejects.toThrow(/not a repokey-blake2 key/);
      // none needs no key: its ids are plain SHA-256.
      await expect(createObjectVerifier('none', null, { useNative })).resolves.toBeTruthy();
    });
  });
});
