// Decompression of a raw LZ4 block (no frame, no size prefix), as borg stores lz4-compressed
// objects (fact sheet C.6). Every read and copy is bounds-checked: a hostile block ends in an
// Lz4Error, never an out-of-range access or unbounded output.

export class Lz4Error extends Error {}

/** Copies shorter than this go byte by byte. */
const SHORT_COPY = 32;

/** Decompresses `src`; the output may not grow beyond `maxOutput` bytes. */
export function lz4BlockDecompress(src: Uint8Array, maxOutput: number): Buffer {
  let out = Buffer.allocUnsafe(Math.min(maxOutput, Math.max(64, src.length * 4)));
  let op = 0;
  let ip = 0;
  const ensure = (n: number): void => {
    if (op + n > maxOutput) throw new Lz4Error(`the block decompresses to more than ${maxOutput} bytes`);
    if (op + n <= out.length) return;
    const grown = Buffer.allocUnsafe(Math.min(maxOutput, Math.max(out.length * 2, op + n)));
    out.copy(grown, 0, 0, op);
    out = grown;
  };
  const length = (base: number): number => {
    let n = base;
    if (base === 15) {
      for (;;) {
        if (ip >= src.length) throw new Lz4Error('the block ends inside a length');
        const b = src[ip++];
        n += b;
        if (b !== 255) break;
      }
    }
    return n;
  };
  while (ip < src.length) {
    const token = src[ip++];
    const literals = length(token >> 4);
    if (ip + literals > src.length) throw new Lz4Error('literals run past the end of the block');
    ensure(literals);
    // Short runs byte by byte: a view per copy costs more than the copy.
    if (literals < SHORT_COPY) for (let i = 0; i < literals; i++) out[op++] = src[ip++];
    else {
      out.set(src.subarray(ip, ip + literals), op);
      op += literals;
      ip += literals;
    }
    if (ip === src.length) break; // the last sequence has literals only
    if (ip + 2 > src.length) throw new Lz4Error('the block ends inside a match offset');
    const offset = src[ip] | (src[ip + 1] << 8);
    ip += 2;
    if (offset === 0 || offset > op) throw new Lz4Error('a match refers to data before the start');
    const matchLength = length(token & 15) + 4;
    ensure(matchLength);
    // Overlapping copies (offset < length) repeat the pattern: copy byte by byte.
    if (matchLength >= SHORT_COPY && offset >= matchLength) {
      out.copyWithin(op, op - offset, op - offset + matchLength);
      op += matchLength;
    } else for (let i = 0; i < matchLength; i++, op++) out[op] = out[op - offset];
  }
  return out.subarray(0, op);
}
