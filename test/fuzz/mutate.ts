// Byte-level mutations shared by the fuzz targets: flips, interesting values, insertions,
// deletions, truncation, splices from another seed. All driven by one seeded PRNG, so an input
// is a pure function of its seed.

import type { Prng } from '../support/prng.js';

/** Values that sit on the edges of msgpack's and borg's length and type fields. */
const INTERESTING_BYTES = [0x00, 0x01, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc7, 0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd3, 0xd4, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff];
const INTERESTING_U32 = [0, 1, 8, 9, 40, 41, 0x7f, 0x80, 0xff, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, 20 * 1024 * 1024, 20 * 1024 * 1024 + 1];

/** One mutation of `buf` (a new buffer; `buf` is not changed). `other` is another seed to splice from. */
export function mutateOnce(prng: Prng, buf: Buffer, other?: Buffer): Buffer {
  const len = buf.length;
  const at = len > 0 ? prng.int(len) : 0;
  switch (prng.int(len === 0 ? 2 : 11)) {
    case 0: // insert random bytes
      return Buffer.concat([buf.subarray(0, at), prng.bytes(prng.range(1, 16)), buf.subarray(at)]);
    case 1: // insert an interesting byte
      return Buffer.concat([buf.subarray(0, at), Buffer.from([prng.pick(INTERESTING_BYTES)]), buf.subarray(at)]);
    case 2: {
      const b = Buffer.from(buf);
      b[at] ^= 1 << prng.int(8);
      return b;
    }
    case 3: {
      const b = Buffer.from(buf);
      b[at] = prng.pick(INTERESTING_BYTES);
      return b;
    }
    case 4: {
      const b = Buffer.from(buf);
      b[at] = prng.int(256);
      return b;
    }
    case 5: {
      // an interesting 32-bit value, either byte order (segment headers are LE, msgpack BE)
      const b = Buffer.from(buf);
      if (at + 4 <= len) {
        const v = prng.pick(INTERESTING_U32);
        if (prng.int(2) === 0) b.writeUInt32LE(v >>> 0, at);
        else b.writeUInt32BE(v >>> 0, at);
      }
      return b;
    }
    case 6: // delete a run
      return Buffer.concat([buf.subarray(0, at), buf.subarray(Math.min(len, at + prng.range(1, 64)))]);
    case 7: // truncate
      return buf.subarray(0, at);
    case 8: {
      // duplicate a run in place
      const end = Math.min(len, at + prng.range(1, 64));
      return Buffer.concat([buf.subarray(0, end), buf.subarray(at, end), buf.subarray(end)]);
    }
    case 9: {
      // splice in a run of another seed (or of this one)
      const src = other && other.length > 0 ? other : buf;
      const from = prng.int(src.length);
      const piece = src.subarray(from, Math.min(src.length, from + prng.range(1, 256)));
      return Buffer.concat([buf.subarray(0, at), piece, buf.subarray(Math.min(len, at + (prng.int(2) === 0 ? 0 : piece.length)))]);
    }
    default: {
      // add or subtract a small number from a byte (lengths, counts)
      const b = Buffer.from(buf);
      b[at] = (b[at] + prng.range(-4, 4)) & 0xff;
      return b;
    }
  }
}

/** 1 to `max` stacked mutations, fewer more often (most inputs stay close to a real one). */
export function mutate(prng: Prng, buf: Buffer, other?: Buffer, max = 8): Buffer {
  const n = 1 + Math.floor(prng.next() ** 2 * max);
  let out = buf;
  for (let i = 0; i < n; i++) out = mutateOnce(prng, out, other);
  return out;
}

/** A 32-bit seed for input `index` of `target` in the run with `runSeed` (FNV-1a over the three). */
export function inputSeed(runSeed: number, target: string, index: number): number {
  let h = 0x811c9dc5;
  const mix = (byte: number) => {
    h ^= byte & 0xff;
    h = Math.imul(h, 0x01000193) >>> 0;
  };
  for (const c of Buffer.from(`${runSeed >>> 0}:${target}:${index}`)) mix(c);
  return h >>> 0;
}
