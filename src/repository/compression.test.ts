// Decompression of borg's payloads against borg's own compressors (borg.compress, run by the
// Python that runs borg) as the oracle, and the LZ4 block decoder against hostile blocks.
import { createHash } from 'node:crypto';

import { expect, test } from 'vitest';

import { createPrng } from '../../test/support/prng.js';
import { runPython } from '../../test/support/python.js';
import { ObjectError, decompressPayload } from './borg-key.js';
import { Lz4Error, lz4BlockDecompress } from './lz4.js';

const SAMPLES = [
  Buffer.alloc(0),
  Buffer.from('a'),
  Buffer.from('abcabcabc'.repeat(1000)),
  Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7919) % 251)),
  Buffer.alloc(300_000, 0x41), // match lengths far past 15 + 255
  Buffer.concat([Buffer.from('header'), Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * i) % 256)), Buffer.alloc(1000)]),
];

function borgCompress(spec: string, data: Buffer): Buffer {
  return runPython(
    'import sys\nfrom borg.compress import CompressionSpec\nc = CompressionSpec(sys.argv[1]).compressor\nsys.stdout.buffer.write(c.compress(sys.stdin.buffer.read()))',
    data,
    [spec],
  );
}

test.each(['lz4', 'zstd,3', 'zlib,6', 'lzma,1', 'none', 'obfuscate,3,lz4', 'obfuscate,1,zstd,1', 'obfuscate,2,lzma,0'])(
  '%s payloads written by borg decompress to the original',
  async (spec) => {
    for (const sample of SAMPLES) {
      const payload = borgCompress(spec, sample);
      expect((await decompressPayload(payload)).equals(sample), `${spec}, ${sample.length} bytes`).toBe(true);
    }
  },
);

test('a damaged lzma payload is one sentence', async () => {
  const payload = borgCompress('lzma,1', SAMPLES[2]);
  payload[payload.length - 20] ^= 0xff;
  await expect(decompressPayload(payload)).rejects.toThrow(ObjectError);
});

test('hostile LZ4 blocks end in an Lz4Error, never in a bad read or unbounded output', () => {
  const cases: Array<[string, number[]]> = [
    ['a match before the start', [0x04, 0x61, 0x05, 0x00]],
    ['a zero offset', [0x14, 0x61, 0x00, 0x00]],
    ['literals past the end', [0xf0, 0x10, 0x61]],
    ['a length that never ends', [0xf0, 0xff, 0xff]],
    ['a cut offset', [0x14, 0x61, 0x01]],
  ];
  for (const [what, bytes] of cases) expect(() => lz4BlockDecompress(Buffer.from(bytes), 1 << 20), what).toThrow(Lz4Error);
  // A tiny block that would expand past the limit.
  const bomb = Buffer.concat([Buffer.from([0x1f, 0x61, 0x01, 0x00]), Buffer.alloc(5000, 0xff), Buffer.from([0x00, 0x10])]);
  expect(() => lz4BlockDecompress(bomb, 1000)).toThrow(/more than 1000 bytes/);
});

test('unknown compression headers and truncated payloads are one sentence each', async () => {
  await expect(decompressPayload(Buffer.from([0x09, 0x09, 1, 2]))).rejects.toThrow('unknown compression header 09 09');
  await expect(decompressPayload(Buffer.from([0x01]))).rejects.toThrow('shorter than its compression header');
});

test('damaged zlib and zstd payloads are an ObjectError, not the library error (fuzz findings)', async () => {
  // zlib: the Adler-32 check and a distance before the start, as the reader fuzzer found them.
  const zlib = borgCompress('zlib,6', SAMPLES[2]);
  const badCheck = Buffer.from(zlib);
  badCheck[badCheck.length - 2] ^= 0xff;
  await expect(decompressPayload(badCheck)).rejects.toThrow(new ObjectError('the zlib payload cannot be decompressed: incorrect data check'));
  await expect(decompressPayload(Buffer.from([0x78, 0x9c, 0x63, 0x00, 0x82, 0xff, 0xff]))).rejects.toThrow(ObjectError);
  // zstd: not a frame at all, and a frame cut short.
  await expect(decompressPayload(Buffer.concat([Buffer.from([0x03, 0x00]), Buffer.from('not zstd at all')]))).rejects.toThrow(ObjectError);
  const zstd = borgCompress('zstd,3', SAMPLES[3]);
  await expect(decompressPayload(zstd.subarray(0, zstd.length - 7))).rejects.toThrow(ObjectError);
});

test("the LZ4 decoder accepts no block borg's liblz4 refuses, and reads every other as liblz4 does", () => {
  // Real blocks cut, extended and mutated near their end (where LZ4's end-of-block rules are),
  // and short random ones; borg's own LZ4 (liblz4's LZ4_decompress_safe) is the oracle.
  const prng = createPrng(1404);
  const blocks: Buffer[] = [];
  for (const sample of [SAMPLES[2], SAMPLES[3], SAMPLES[5], Buffer.from('abcdefghijklmnopqrstuvwxyz0123'.repeat(3))]) {
    const block = borgCompress('lz4', sample).subarray(2);
    blocks.push(block);
    for (let cut = 1; cut <= 12; cut++) blocks.push(block.subarray(0, block.length - cut));
    for (let i = 0; i < 40; i++) {
      const b = Buffer.from(block);
      b[b.length - 1 - prng.int(Math.min(24, b.length))] = prng.int(256);
      blocks.push(b);
    }
  }
  for (let i = 0; i < 300; i++) blocks.push(prng.bytes(prng.range(1, 14)));
  const packed = Buffer.concat(blocks.flatMap((b) => [Buffer.from(Uint32Array.of(b.length).buffer), b]));
  const oracle = runPython(
    `import sys, struct, hashlib
from borg.compress import LZ4
lz4, data, at = LZ4(), sys.stdin.buffer.read(), 0
while at < len(data):
    n = struct.unpack_from('<I', data, at)[0]; block = data[at + 4:at + 4 + n]; at += 4 + n
    try:
        print(hashlib.sha256(lz4.decompress(b'\\x01\\x00' + block)).hexdigest())
    except Exception:
        print('refused')`,
    packed,
  )
    .toString()
    .trim()
    .split('\n');
  expect(oracle).toHaveLength(blocks.length);
  let accepted = 0;
  for (const [i, block] of blocks.entries()) {
    let mine: string;
    try {
      mine = createHash('sha256').update(lz4BlockDecompress(block, 1 << 24)).digest('hex');
      accepted++;
    } catch (error) {
      expect(error, `block ${i}`).toBeInstanceOf(Lz4Error);
      continue; // stricter than liblz4 is allowed (an offset of 0, short last literals)
    }
    expect(oracle[i], `block ${i}: ${block.toString('hex').slice(0, 80)}`).toBe(mine);
  }
  expect(accepted).toBeGreaterThan(20);
});

test('lz4 with a scratch buffer: the same bytes, from the scratch or a new buffer when it is too small; literals alone are not copied', async () => {
  for (const sample of [...SAMPLES, Buffer.from(Array.from({ length: 100_000 }, (_, i) => (i * 2654435761) >>> 24))]) {
    const payload = borgCompress('lz4', sample);
    for (const scratch of [Buffer.alloc(sample.length + 10), Buffer.alloc(Math.max(0, sample.length - 1)), Buffer.alloc(0)]) {
      expect((await decompressPayload(payload, 0, scratch)).equals(sample), `${sample.length} bytes, scratch ${scratch.length}`).toBe(true);
    }
  }
  // A block of literals alone (borg stores data lz4 cannot shrink with the "none" header, but
  // another writer may not): given back as a view of the payload, nothing copied.
  const literals = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 2654435761) >>> 24));
  const lengths: number[] = [];
  for (let left = literals.length - 15; ; left -= 255) {
    lengths.push(Math.min(left, 255));
    if (left < 255) break;
  }
  const payload = Buffer.concat([Buffer.from([0x01, 0x00, 0xf0, ...lengths]), literals]);
  const out = await decompressPayload(payload, 0, Buffer.alloc(400_000));
  expect(out.equals(literals)).toBe(true);
  expect(out.buffer).toBe(payload.buffer);
  expect(() => lz4BlockDecompress(payload.subarray(2), 299_999)).toThrow(/more than 299999 bytes/);
  expect(() => lz4BlockDecompress(borgCompress('lz4', SAMPLES[4]).subarray(2), 1000, Buffer.alloc(2000))).toThrow(/more than 1000 bytes/);
});
