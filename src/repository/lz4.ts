// Decompression of a raw LZ4 block (no frame, no size prefix), as borg stores lz4-compressed
// objects (fact sheet C.6). Every read and copy is bounds-checked: a hostile block ends in an
// Lz4Error, never an out-of-range access or unbounded output.
//
// The decoder accepts no block that liblz4's LZ4_decompress_safe (what borg reads with) refuses,
// so that an object the guard verified (verify-object.ts) is one borg can read back: the last
// sequence has literals only and ends the block exactly, a sequence whose literals end within
// 8 bytes of the block's end is that last one, and at least 6 bytes (a token and borg's 5 last
// literals) follow every match. It is stricter than liblz4 in places (an offset of 0, which
// liblz4 copies from uninitialised output; fewer than 5 last literals after a long match) that
// no LZ4 compressor writes.

export class Lz4Error extends Error {}
/** The block decompresses to more than the output holds (a larger output may do). */
export class Lz4OutputFull extends Lz4Error {}

/** Copies shorter than this go by words or bytes: a native call per copy costs more than the copy. */
const SHORT_COPY = 32;
/** LZ4's 2-byte offset, a token and borg's 5 last literals: what must follow a non-last sequence's literals. */
const LAST_SEQUENCE_REACH = 8;
/** The token and 5 last literals that must follow every match (LZ4's LASTLITERALS). */
const AFTER_MATCH = 6;

/**
 * Decompresses `src` into `dst` from its start; returns the output length. Lz4OutputFull when
 * the output would not fit in `dst`, Lz4Error when the block is not one liblz4 reads. Bytes of
 * `dst` past the returned length may have been written. Allocates nothing but two DataViews.
 */
export function lz4DecompressInto(src: Uint8Array, dst: Uint8Array): number {
  const srcEnd = src.length;
  const dstEnd = dst.length;
  if (srcEnd === 0) throw new Lz4Error('the block is empty');
  let ip = 0;
  let op = 0;
  const sv = new DataView(src.buffer, src.byteOffset, src.byteLength);
  const dv = new DataView(dst.buffer, dst.byteOffset, dst.byteLength);
  for (;;) {
    const token = src[ip++];
    let literals = token >>> 4;
    if (literals === 15) {
      let b: number;
      do {
        if (ip >= srcEnd) throw new Lz4Error('the block ends inside a length');
        b = src[ip++];
        literals += b;
      } while (b === 255);
    }
    const literalsEnd = ip + literals;
    if (literalsEnd > srcEnd - LAST_SEQUENCE_REACH) {
      // The last sequence: literals only, up to the block's last byte.
      if (literalsEnd !== srcEnd) throw new Lz4Error(literalsEnd > srcEnd ? 'literals run past the end of the block' : 'the block does not end with literals');
      if (op + literals > dstEnd) throw new Lz4OutputFull('the output is full');
      if (literals < SHORT_COPY) for (; ip < srcEnd; ) dst[op++] = src[ip++];
      else {
        dst.set(src.subarray(ip, srcEnd), op);
        op += literals;
      }
      return op;
    }
    if (op + literals > dstEnd) throw new Lz4OutputFull('the output is full');
    if (literals < SHORT_COPY && op + literals + 8 <= dstEnd) {
      // Eight bytes at a time, two 4-byte words through DataViews (a third of the time of byte
      // copies); up to 7 bytes past the literals are written and then overwritten by what
      // follows. The source has them: a sequence that is not the last leaves 8 bytes after its
      // literals.
      let k = 0;
      do {
        dv.setUint32(op + k, sv.getUint32(ip + k, true), true);
        dv.setUint32(op + k + 4, sv.getUint32(ip + k + 4, true), true);
        k += 8;
      } while (k < literals);
      op += literals;
      ip = literalsEnd;
    } else if (literals < SHORT_COPY) for (; ip < literalsEnd; ) dst[op++] = src[ip++];
    else {
      dst.set(src.subarray(ip, literalsEnd), op);
      op += literals;
      ip = literalsEnd;
    }
    const offset = src[ip] | (src[ip + 1] << 8);
    ip += 2;
    if (offset === 0 || offset > op) throw new Lz4Error('a match refers to data before the start');
    let matchLength = token & 15;
    if (matchLength === 15) {
      let b: number;
      do {
        if (ip >= srcEnd) throw new Lz4Error('the block ends inside a length');
        b = src[ip++];
        matchLength += b;
      } while (b === 255);
    }
    matchLength += 4;
    if (op + matchLength > dstEnd) throw new Lz4OutputFull('the output is full');
    if (srcEnd - ip < AFTER_MATCH) throw new Lz4Error('the block does not end with literals');
    let from = op - offset;
    if (matchLength < 64 && offset >= 4 && op + matchLength + 8 <= dstEnd) {
      // As the literals; in order, so each word read was written before (offset >= 4), and an
      // overlapping match repeats its pattern.
      let k = 0;
      do {
        dv.setUint32(op + k, dv.getUint32(from + k, true), true);
        dv.setUint32(op + k + 4, dv.getUint32(from + k + 4, true), true);
        k += 8;
      } while (k < matchLength);
      op += matchLength;
    } else if (matchLength < SHORT_COPY) {
      for (const end = op + matchLength; op < end; ) dst[op++] = dst[from++];
    } else {
      // An overlapping match (offset < length) repeats the last `offset` bytes: copy them in
      // runs that double, each a whole number of periods, so a long run is a few native copies.
      for (let left = matchLength; left > 0; ) {
        const n = Math.min(left, op - from);
        dst.copyWithin(op, from, from + n);
        op += n;
        left -= n;
      }
    }
  }
}

/**
 * The bytes of a block that is one run of literals and nothing else (what lz4 makes of data it
 * cannot compress, such as encrypted or random data), or null for any other block.
 */
function literalsOnly(src: Uint8Array): { start: number } | null {
  if (src.length === 0) return null;
  let literals = src[0] >>> 4;
  let ip = 1;
  if (literals === 15) {
    let b: number;
    do {
      if (ip >= src.length) return null;
      b = src[ip++];
      literals += b;
    } while (b === 255);
  }
  return ip + literals === src.length ? { start: ip } : null;
}

/**
 * Decompresses `src`; the output may not grow beyond `maxOutput` bytes. It is a new buffer, or a
 * view of `scratch` when one is given and large enough, or a view of `src` itself when the block
 * is literals only (nothing to decompress, so nothing is copied).
 */
export function lz4BlockDecompress(src: Uint8Array, maxOutput: number, scratch?: Buffer): Buffer {
  const lit = literalsOnly(src);
  if (lit) {
    if (src.length - lit.start > maxOutput) throw new Lz4Error(`the block decompresses to more than ${maxOutput} bytes`);
    return Buffer.from(src.buffer, src.byteOffset + lit.start, src.length - lit.start);
  }
  if (scratch) {
    try {
      return scratch.subarray(0, lz4DecompressInto(src, scratch.length > maxOutput ? scratch.subarray(0, maxOutput) : scratch));
    } catch (error) {
      if (!(error instanceof Lz4OutputFull)) throw error;
      if (scratch.length >= maxOutput) throw new Lz4Error(`the block decompresses to more than ${maxOutput} bytes`);
      // Too small for this block: a new buffer below, as without a scratch.
    }
  }
  let size = Math.min(maxOutput, Math.max(64, src.length * 4));
  for (;;) {
    const out = Buffer.allocUnsafe(size);
    try {
      return out.subarray(0, lz4DecompressInto(src, out));
    } catch (error) {
      if (!(error instanceof Lz4OutputFull)) throw error;
      if (size >= maxOutput) throw new Lz4Error(`the block decompresses to more than ${maxOutput} bytes`);
      size = Math.min(maxOutput, size * 4);
    }
  }
}
