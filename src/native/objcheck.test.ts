// The native object checker (native/objcheck.c) against the JavaScript it stands in for: its lz4
// decoder against src/repository/lz4.ts over borg's own blocks and hostile ones (the same answer
// and the same bytes, for every output size), its BLAKE2b against hash-wasm, and whole envelopes
// of every length around BLAKE2b's and AES's block edges through both verifiers; its sealing
// (a pull job's puts) against the JavaScript sealObjectInto.
import { randomBytes } from 'node:crypto';
import { crc32 as zlibCrc32 } from 'node:zlib';

import { blake2b } from 'hash-wasm';
import { describe, expect, it } from 'vitest';

import { createPrng } from '../../test/support/prng.js';
import { plainId, sealEnvelope } from '../../test/support/sealed-objects.js';
import { runPython } from '../../test/support/python.js';
import { createObjectVerifier } from '../archive/verify-object.js';
import { MODE_TYPE_BYTE, createBlake2b256, isBlake2, isEncrypted, sealObjectInto, sealedLength, type BorgKey, type KeyMode } from '../repository/borg-key.js';
import { Lz4Error, Lz4OutputFull, lz4DecompressInto } from '../repository/lz4.js';
import { CHECK, crc32, idHashOf, objcheck, type Objcheck } from './objcheck.js';

const native = (): Objcheck => {
  const n = objcheck();
  if (!n) throw new Error('the native object checker is not built (npm run build; it needs a C compiler)');
  return n;
};

/** What the JavaScript decoder answers, in the native decoder's terms. */
function jsLz4(src: Buffer, dstSize: number): { result: number; out: Buffer } {
  const dst = Buffer.alloc(dstSize);
  try {
    const n = lz4DecompressInto(src, dst);
    return { result: n, out: dst.subarray(0, n) };
  } catch (error) {
    if (error instanceof Lz4OutputFull) return { result: -2, out: Buffer.alloc(0) };
    if (error instanceof Lz4Error) return { result: -1, out: Buffer.alloc(0) };
    throw error;
  }
}

function nativeLz4(src: Buffer, dstSize: number): { result: number; out: Buffer } {
  const dst = Buffer.alloc(dstSize);
  const result = native().lz4(src, dst);
  return { result, out: result >= 0 ? dst.subarray(0, result) : Buffer.alloc(0) };
}

/**
 * lz4 blocks as borg writes them, of the samples (one Python run for all); null for a sample
 * borg stores uncompressed (it does so when lz4 would not make it smaller).
 */
function borgLz4Blocks(samples: Buffer[]): (Buffer | null)[] {
  const packed = Buffer.concat(samples.flatMap((b) => [Buffer.from(Uint32Array.of(b.length).buffer), b]));
  const out = runPython(
    `import sys, struct
from borg.compress import LZ4
lz4, data, at, out = LZ4(), sys.stdin.buffer.read(), 0, []
while at < len(data):
    n = struct.unpack_from('<I', data, at)[0]; block = lz4.compress(data[at + 4:at + 4 + n]); at += 4 + n
    out.append(struct.pack('<I', len(block)) + block)
sys.stdout.buffer.write(b''.join(out))`,
    packed,
  );
  const blocks: (Buffer | null)[] = [];
  for (let at = 0; at < out.length; ) {
    const n = out.readUInt32LE(at);
    const payload = out.subarray(at + 4, at + 4 + n);
    blocks.push(payload[0] === 1 && payload[1] === 0 ? payload.subarray(2) : null);
    at += 4 + n;
  }
  return blocks;
}

describe('the native lz4 decoder answers as the JavaScript one does', () => {
  const prng = createPrng(1407);
  const samples = [
    Buffer.from('a'),
    Buffer.from('abcabcabc'.repeat(1000)),
    Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7919) % 251)),
    Buffer.alloc(300_000, 0x41),
    Buffer.from('abcdefghijklmnopqrstuvwxyz0123'.repeat(3)),
    Buffer.from(Array.from({ length: 20_000 }, (_, i) => 'the quick brown fox '.charCodeAt(i % 20) ^ (i % 7 === 0 ? 1 : 0))),
    ...Array.from({ length: 40 }, () => {
      // Text-like: words from a small vocabulary, so matches of every offset and length occur.
      const words = ['borg', 'keep', 'archive', 'chunk', 'a', 'segment', '\n', '0000', 'repository', 'xx'];
      return Buffer.from(Array.from({ length: prng.range(1, 3000) }, () => prng.pick(words)).join(prng.pick([' ', '', '/'])));
    }),
  ];
  const compressed = borgLz4Blocks(samples);
  const blocks = compressed.filter((b): b is Buffer => b !== null);
  const decompressed = samples.filter((_, i) => compressed[i] !== null);

  it("borg's blocks decode to the same bytes, and say 'full' alike for every output too small", () => {
    for (const [i, block] of blocks.entries()) {
      const size = decompressed[i].length;
      for (const dstSize of [size, size + 7, size + 100, size - 1, Math.floor(size / 2), 0, 5]) {
        if (dstSize < 0) continue;
        const js = jsLz4(block, dstSize);
        const c = nativeLz4(block, dstSize);
        expect(c.result, `sample ${i}, output ${dstSize}`).toBe(js.result);
        expect(c.out.equals(js.out), `sample ${i}, output ${dstSize}`).toBe(true);
      }
      expect(nativeLz4(block, size).out.equals(decompressed[i]), `sample ${i} (${size} bytes)`).toBe(true);
    }
    expect(blocks.length).toBeGreaterThan(30);
  });

  it('hostile blocks (cut, extended, bytes changed, random) get the same answer', () => {
    let refused = 0;
    let cases = 0;
    const compare = (block: Buffer, dstSize: number, what: string): void => {
      const js = jsLz4(block, dstSize);
      const c = nativeLz4(block, dstSize);
      cases++;
      if (js.result < 0) refused++;
      expect(c.result, what).toBe(js.result);
      expect(c.out.equals(js.out), what).toBe(true);
    };
    for (const [i, block] of blocks.entries()) {
      const size = decompressed[i].length;
      for (let cut = 1; cut <= 16 && cut < block.length; cut++) compare(block.subarray(0, block.length - cut), size, `sample ${i} cut ${cut}`);
      compare(Buffer.concat([block, Buffer.from([0])]), size + 10, `sample ${i} extended`);
      for (let k = 0; k < 150; k++) {
        const b = Buffer.from(block);
        const changes = prng.range(1, 3);
        for (let c = 0; c < changes; c++) {
          // Near the end (the end-of-block rules) or anywhere (tokens, offsets, lengths).
          const at = prng.next() < 0.5 ? b.length - 1 - prng.int(Math.min(24, b.length)) : prng.int(b.length);
          b[at] = prng.pick([0, 0xff, 0x0f, 0xf0, prng.int(256)]);
        }
        compare(b, prng.pick([size, size * 2 + 64, Math.max(0, size - prng.int(50))]), `sample ${i} mutation ${k}`);
      }
    }
    for (let i = 0; i < 3000; i++) compare(prng.bytes(prng.range(1, 40)), prng.range(0, 2000), `random block ${i}`);
    // Tokens of all kinds followed by long lengths and offsets that point before the start.
    for (let i = 0; i < 500; i++) {
      const parts = [prng.int(256), ...Array.from({ length: prng.range(0, 6) }, () => prng.pick([255, 255, 0, prng.int(256)]))];
      compare(Buffer.concat([Buffer.from(parts), prng.bytes(prng.range(0, 600))]), prng.range(0, 70_000), `crafted block ${i}`);
    }
    expect(refused).toBeGreaterThan(cases / 4);
    expect(refused).toBeLessThan(cases);
  });

  it('an empty block and an empty output', () => {
    expect(native().lz4(Buffer.alloc(0), Buffer.alloc(10))).toBe(-1);
    expect(native().lz4(Buffer.from([0x10, 0x61]), Buffer.alloc(0))).toBe(-2);
    expect(native().lz4(Buffer.from([0x00]), Buffer.alloc(0))).toBe(0);
  });
});

describe("the native BLAKE2b-256 is borg's", () => {
  it('for every length around the block size, and a large input', async () => {
    const prng = createPrng(2);
    const out = Buffer.alloc(32);
    const state = native().blake2bState();
    for (const n of [...Array.from({ length: 300 }, (_, i) => i), 1023, 1024, 1025, 1 << 20]) {
      const data = prng.bytes(n);
      native().blake2bUpdate(state, null);
      native().blake2bUpdate(state, data);
      native().blake2bDigest(state, out);
      expect(out.toString('hex'), `${n} bytes`).toBe(await blake2b(data, 256));
    }
  });
});

/** A key of `mode` with random parts, and envelopes sealed under it as borg's client seals them. */
function keyOf(mode: KeyMode): BorgKey {
  return { repositoryId: randomBytes(32), encKey: randomBytes(32), encHmacKey: randomBytes(32), idKey: randomBytes(isBlake2(mode) ? 128 : 32), tamRequired: true };
}

/** An lz4 block of literals only (what lz4 makes of data it cannot compress). */
function lz4Literals(data: Buffer): Buffer {
  const n = data.length;
  if (n < 15) return Buffer.concat([Buffer.from([n << 4]), data]);
  const lengths = [0xf0];
  let left = n - 15;
  for (; left >= 255; left -= 255) lengths.push(255);
  lengths.push(left);
  return Buffer.concat([Buffer.from(lengths), data]);
}

describe.each(['repokey-blake2', 'authenticated-blake2', 'repokey', 'authenticated', 'none'] as const)('whole %s envelopes through both verifiers', (mode) => {
  it('every payload length around the hashes’ and the cipher’s blocks: the same verdicts', async () => {
    const key = mode === 'none' ? null : keyOf(mode);
    const c = await createObjectVerifier(mode, key);
    const js = await createObjectVerifier(mode, key, { useNative: false });
    const prng = createPrng(7);
    let counter = 1;
    for (let n = 0; n < 400; n++) {
      const plain = prng.bytes(n);
      const id = await plainId(mode, key, plain);
      for (const payload of [Buffer.concat([Buffer.from([0, 0]), plain]), Buffer.concat([Buffer.from([1, 0]), lz4Literals(plain)])]) {
        const envelope = await sealEnvelope(mode, key as BorgKey, payload, counter);
        counter += Math.ceil(payload.length / 16);
        expect(await c.verify(id, envelope), `${n} bytes`).toBeNull();
        const wrongId = Buffer.from(id);
        wrongId[31] ^= 1;
        const verdict = await c.verify(wrongId, envelope);
        expect(verdict?.kind, `${n} bytes`).toBe('id');
        expect(verdict).toEqual(await js.verify(wrongId, envelope));
        if (isEncrypted(mode)) {
          const flipped = Buffer.from(envelope);
          flipped[prng.range(33, flipped.length - 1)] ^= 0x80;
          const refusal = await c.verify(id, flipped);
          expect(refusal?.why, `${n} bytes`).toMatch(/MAC does not verify/);
          expect(refusal).toEqual(await js.verify(id, flipped));
        }
      }
    }
  });

  it('a long object (several 64 KiB slices) and one past the output the verifier first holds', async () => {
    const key = mode === 'none' ? null : keyOf(mode);
    const c = await createObjectVerifier(mode, key);
    const prng = createPrng(8);
    for (const n of [65_534, 65_535, 65_536, 200_003, 3 * 1024 * 1024 + 5]) {
      const plain = prng.bytes(n);
      for (const payload of [Buffer.concat([Buffer.from([0, 0]), plain]), Buffer.concat([Buffer.from([1, 0]), lz4Literals(plain)])]) {
        expect(await c.verify(await plainId(mode, key, plain), await sealEnvelope(mode, key as BorgKey, payload, 99)), `${n} bytes`).toBeNull();
      }
    }
  });
});

describe.each(['repokey', 'repokey-blake2'] as const)('sealing in a %s repository (what a pull job stores)', (mode) => {
  it('seals byte for byte as sealObjectInto does, for every length around the blocks, at an offset', async () => {
    const key = keyOf(mode);
    const n = native();
    const v = n.createVerifier(idHashOf(mode), true, key.idKey, key.encHmacKey, key.encKey, true);
    const prng = createPrng(9);
    for (const length of [2, 3, 15, 16, 17, 127, 128, 129, 1000, 65_535, 65_536, 65_537, 200_000]) {
      const payload = Buffer.concat([Buffer.from([0, 0]), prng.bytes(length - 2)]);
      const counter = BigInt(prng.int(2 ** 32)) * 4096n;
      const iv8 = Buffer.alloc(8);
      iv8.writeBigUInt64BE(counter);
      const mine = Buffer.alloc(sealedLength(length) + 9, 0xee);
      n.seal(v, MODE_TYPE_BYTE[mode], iv8, payload, mine, 5);
      const theirs = Buffer.alloc(sealedLength(length) + 9, 0xee);
      await sealObjectInto(payload, mode, key, counter, theirs, 5);
      expect(mine.equals(theirs), `${length} bytes`).toBe(true);
      expect(await sealEnvelope(mode, key, payload, Number(counter)).then((b) => b.equals(mine.subarray(5, 5 + sealedLength(length)))), `${length} bytes`).toBe(true);
    }
  });

  it("opens an object whose MAC does not verify only where the MAC is not checked (a pull job's opener), and the id still decides", async () => {
    const key = keyOf(mode);
    const n = native();
    const checked = n.createVerifier(idHashOf(mode), true, key.idKey, key.encHmacKey, key.encKey, true);
    const unchecked = n.createVerifier(idHashOf(mode), true, key.idKey, key.encHmacKey, key.encKey, false);
    const prng = createPrng(12);
    for (const [header, plain] of [
      [Buffer.from([0, 0]), prng.bytes(100_000)],
      [Buffer.from([1, 0]), prng.bytes(70_000)],
    ] as const) {
      const payload = Buffer.concat([header, header[0] === 1 ? lz4Literals(plain) : plain]);
      const envelope = await sealEnvelope(mode, key, payload, 77);
      const forged = Buffer.from(envelope);
      forged[5] ^= 1; // inside the MAC
      const out = Buffer.alloc(plain.length + 64);
      const scratch = Buffer.alloc(envelope.length);
      const id = Buffer.alloc(32);
      const info = new Int32Array(2);
      expect(n.check(checked, forged, scratch, out, id, info)).toBe(CHECK.mac);
      expect(n.check(checked, envelope, scratch, out, id, info)).toBe(CHECK.ok);
      const expected = await plainId(mode, key, plain);
      expect(id.equals(expected)).toBe(true);
      id.fill(0);
      expect(n.check(unchecked, forged, scratch, out, id, info)).toBe(CHECK.ok);
      expect(id.equals(expected)).toBe(true);
      expect(info[1]).toBe(plain.length);
      // A changed ciphertext is another plaintext, so another id: the caller's id check refuses it.
      const changed = Buffer.from(envelope);
      changed[changed.length - 1] ^= 1;
      id.fill(0);
      const code = n.check(unchecked, changed, scratch, out, id, info);
      if (code === CHECK.ok) expect(id.equals(expected)).toBe(false);
      else expect([CHECK.lz4, CHECK.lz4Full]).toContain(code);
    }
  });

  it('refuses an output too small, an offset past it, and a payload that overlaps it', () => {
    const key = keyOf(mode);
    const n = native();
    const v = n.createVerifier(idHashOf(mode), true, key.idKey, key.encHmacKey, key.encKey, true);
    const iv8 = Buffer.alloc(8);
    const payload = Buffer.alloc(100);
    expect(() => n.seal(v, 3, iv8, payload, Buffer.alloc(140), 0)).toThrow(/too small/);
    expect(() => n.seal(v, 3, iv8, payload, Buffer.alloc(200), 60)).toThrow(/too small/);
    expect(() => n.seal(v, 3, iv8, payload, Buffer.alloc(200), -1)).toThrow(/too small/);
    const shared = Buffer.alloc(400);
    expect(() => n.seal(v, 3, iv8, shared.subarray(0, 100), shared, 50)).toThrow(/overlap/);
    expect(() => n.seal(v, 3, Buffer.alloc(7), payload, Buffer.alloc(200), 0)).toThrow(/Uint8Arrays/);
  });
});

describe("the CRC-32 of segment entries (zlib's)", () => {
  it("is node:zlib's for every length and alignment around the folding's 16 and 64 bytes, whole and continued", () => {
    const n = native();
    const prng = createPrng(13);
    const base = prng.bytes(5000);
    for (let length = 0; length <= 600; length++) {
      for (const at of [0, 1, 7, 15]) {
        const data = base.subarray(at, at + length);
        expect(n.crc32(data), `${length} bytes at ${at}`).toBe(zlibCrc32(data));
        expect(crc32(data)).toBe(zlibCrc32(data));
      }
    }
    for (const length of [1 << 16, (1 << 20) + 13, 8 * 1024 * 1024 + 5]) {
      const data = prng.bytes(length);
      expect(n.crc32(data), `${length} bytes`).toBe(zlibCrc32(data));
      const cut = Math.floor(length / 3);
      expect(n.crc32(data.subarray(cut), n.crc32(data.subarray(0, cut)))).toBe(zlibCrc32(data));
    }
    // The values a segment entry's check meets: all zeros, all ones, and from a crc of 2^32-1.
    for (const fill of [0, 0xff]) expect(n.crc32(Buffer.alloc(1000, fill))).toBe(zlibCrc32(Buffer.alloc(1000, fill)));
    expect(n.crc32(base.subarray(0, 100), 0xffffffff)).toBe(zlibCrc32(base.subarray(0, 100), 0xffffffff));
    expect(() => n.crc32('text' as unknown as Uint8Array)).toThrow(/Uint8Array/);
  });
});

describe('the BLAKE2b state borg-key.ts hashes with', () => {
  it('is hash-wasm’s BLAKE2b-256 fed in parts of every size, and starts again on init', async () => {
    const h = await createBlake2b256();
    const prng = createPrng(11);
    for (const sizes of [[0], [1, 127], [128, 0, 1], [64, 64, 64], [300, 5000, 17], [129], [1 << 20, 3]]) {
      const parts = sizes.map((n) => prng.bytes(n));
      h.init();
      for (const p of parts) h.update(p);
      expect(Buffer.from(h.digest('binary')).toString('hex'), sizes.join('+')).toBe(await blake2b(Buffer.concat(parts), 256));
    }
  });
});
