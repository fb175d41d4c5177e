// borg's msgpack dialect, read and written exactly as borg does it (fact sheet A.2, A.3).
//
// borg packs bytes and text alike as the msgpack *str* family and never emits bin or ext;
// both of its RPC unpackers reject bin/ext outright. So here:
//  - scanFrame() measures one complete top-level value without decoding it, enforcing the
//    unpacker limits of the receiving side before a single byte is forwarded;
//  - decode() turns a scanned frame into values whose strings are zero-copy Buffer views;
//  - encode() writes raw strings as borg does (fixstr, then 0xda, then 0xdb; never 0xd9).
// Nothing here throws on hostile input except through the returned `invalid` result or a
// FrameError; a frame that scanFrame() accepted always decodes.

export interface UnpackLimits {
  readonly maxArrayLen: number;
  readonly maxMapLen: number;
  readonly maxStrLen: number;
  /** Largest complete frame; borg's max_buffer_size. */
  readonly maxFrameSize: number;
  /** Nesting depth; borg has no explicit limit, but no borg message nests deeper than 5. */
  readonly maxDepth: number;
}

/** borg's MAX_OBJECT_SIZE: the largest segment entry, and the server's max_str_len. */
export const MAX_OBJECT_SIZE = 20 * 1024 * 1024;
/** borg's RPC BUFSIZE (10 MiB); max_buffer_size = 3 * max(BUFSIZE, MAX_OBJECT_SIZE). */
export const MAX_BUFFER_SIZE = 3 * Math.max(10 * 1024 * 1024, MAX_OBJECT_SIZE);
/** borg's LIST_SCAN_LIMIT: the client accepts arrays this long (list results). */
export const LIST_SCAN_LIMIT = 100_000;

/** get_limited_unpacker('server'): what `borg serve` accepts from a client. */
export const SERVER_LIMITS: UnpackLimits = {
  maxArrayLen: 100,
  maxMapLen: 100,
  maxStrLen: MAX_OBJECT_SIZE,
  maxFrameSize: MAX_BUFFER_SIZE,
  maxDepth: 16,
};

/** get_limited_unpacker('client'): what the borg client accepts from the server. */
export const CLIENT_LIMITS: UnpackLimits = {
  maxArrayLen: LIST_SCAN_LIMIT,
  maxMapLen: 100,
  maxStrLen: MAX_OBJECT_SIZE,
  maxFrameSize: MAX_BUFFER_SIZE,
  maxDepth: 16,
};

export type MsgValue = null | boolean | number | bigint | Buffer | MsgValue[] | MsgMap;

/** A msgpack map, keys kept in wire order (borg's requests and replies are ordered). */
export class MsgMap {
  constructor(readonly entries: Array<[MsgValue, MsgValue]> = []) {}

  /** The value under a raw key equal to `name` (ASCII), or undefined. */
  get(name: string): MsgValue | undefined {
    for (const [k, v] of this.entries) if (Buffer.isBuffer(k) && k.length === name.length && k.toString('latin1', 0, k.length) === name) return v;
    return undefined;
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  /** Builds a map with raw-string keys from plain entries, in the given order. */
  static of(entries: Array<[string, MsgValue]>): MsgMap {
    return new MsgMap(entries.map(([k, v]) => [Buffer.from(k, 'latin1'), v]));
  }
}

export type ScanResult =
  | { readonly kind: 'complete'; readonly end: number }
  | { readonly kind: 'incomplete'; readonly need: number }
  | { readonly kind: 'invalid'; readonly reason: string };

export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FrameError';
  }
}

const INCOMPLETE = -1;

/**
 * Measures the top-level value starting at `start`. `complete.end` is the offset just past it;
 * `incomplete.need` is the total buffer length (from 0) needed before another attempt can make
 * progress, so a caller can wait for that many bytes instead of rescanning on every chunk.
 */
export function scanFrame(buf: Uint8Array, start: number, limits: UnpackLimits): ScanResult {
  // Iterative walk with an explicit stack of "values still owed" per open container, so
  // nesting cannot overflow the JS stack.
  let pos = start;
  const owed: number[] = [1];
  let need = 0;
  const fail = (reason: string): ScanResult => ({ kind: 'invalid', reason });
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);

  while (owed.length > 0) {
    if (owed[owed.length - 1] === 0) {
      owed.pop();
      continue;
    }
    owed[owed.length - 1] -= 1;
    if (pos - start > limits.maxFrameSize) return fail(`a message is larger than ${limits.maxFrameSize} bytes`);
    if (pos >= buf.length) {
      need = pos + 1;
      break;
    }
    const b = buf[pos];
    let headerLen = 1;
    let strLen = -1;
    let children = 0;
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) {
      // fixint, negative fixint, nil, false, true
    } else if (b >= 0xa0 && b <= 0xbf) {
      strLen = b & 0x1f;
    } else if (b >= 0x90 && b <= 0x9f) {
      children = b & 0x0f;
      if (children > limits.maxArrayLen) return fail(`an array has ${children} elements, more than the limit of ${limits.maxArrayLen}`);
    } else if (b >= 0x80 && b <= 0x8f) {
      const n = b & 0x0f;
      if (n > limits.maxMapLen) return fail(`a map has ${n} entries, more than the limit of ${limits.maxMapLen}`);
      children = 2 * n;
    } else {
      switch (b) {
        case 0xcc: case 0xd0: headerLen = 2; break;
        case 0xcd: case 0xd1: headerLen = 3; break;
        case 0xce: case 0xd2: case 0xca: headerLen = 5; break;
        case 0xcf: case 0xd3: case 0xcb: headerLen = 9; break;
        case 0xd9: headerLen = 2; break;
        case 0xda: headerLen = 3; break;
        case 0xdb: headerLen = 5; break;
        case 0xdc: case 0xde: headerLen = 3; break;
        case 0xdd: case 0xdf: headerLen = 5; break;
        case 0xc4: case 0xc5: case 0xc6:
          return fail('a message contains a bin-typed element, which borg never sends');
        case 0xc7: case 0xc8: case 0xc9: case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
          return fail('a message contains an ext-typed element, which borg never sends');
        default:
          return fail(`a message contains the reserved byte 0x${b.toString(16)}`);
      }
      if (pos + headerLen > buf.length) {
        need = pos + headerLen;
        break;
      }
      switch (b) {
        case 0xd9: strLen = buf[pos + 1]; break;
        case 0xda: strLen = view.getUint16(pos + 1); break;
        case 0xdb: strLen = view.getUint32(pos + 1); break;
        case 0xdc: case 0xdd: {
          children = b === 0xdc ? view.getUint16(pos + 1) : view.getUint32(pos + 1);
          if (children > limits.maxArrayLen) return fail(`an array has ${children} elements, more than the limit of ${limits.maxArrayLen}`);
          break;
        }
        case 0xde: case 0xdf: {
          const n = b === 0xde ? view.getUint16(pos + 1) : view.getUint32(pos + 1);
          if (n > limits.maxMapLen) return fail(`a map has ${n} entries, more than the limit of ${limits.maxMapLen}`);
          children = 2 * n;
          break;
        }
      }
    }
    if (pos + headerLen > buf.length) {
      need = pos + headerLen;
      break;
    }
    pos += headerLen;
    if (strLen >= 0) {
      if (strLen > limits.maxStrLen) return fail(`a string of ${strLen} bytes is longer than the limit of ${limits.maxStrLen}`);
      if (pos + strLen - start > limits.maxFrameSize) return fail(`a message is larger than ${limits.maxFrameSize} bytes`);
      pos += strLen;
      if (pos > buf.length) {
        need = pos;
        break;
      }
    }
    if (children > 0) {
      if (owed.length >= limits.maxDepth) return fail(`a message nests deeper than ${limits.maxDepth} levels`);
      owed.push(children);
    }
  }
  // `need` is already past the end of the buffer; after a cut string it is exactly the string's
  // end, which may be the frame's end: asking for one byte more would stall a caller until the
  // next frame arrives.
  if (need !== 0) return { kind: 'incomplete', need };
  if (pos - start > limits.maxFrameSize) return fail(`a message is larger than ${limits.maxFrameSize} bytes`);
  return { kind: 'complete', end: pos };
}

/**
 * The offset just past `count` values starting at `pos`, in a buffer scanFrame() accepted: a
 * walk that allocates nothing (a container adds its children to the count still owed).
 */
export function skipValues(buf: Uint8Array, pos: number, count = 1): number {
  let owed = count;
  while (owed > 0) {
    owed--;
    const b = buf[pos];
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) pos += 1;
    else if (b >= 0xa0 && b <= 0xbf) pos += 1 + (b & 0x1f);
    else if (b >= 0x90 && b <= 0x9f) {
      owed += b & 0x0f;
      pos += 1;
    } else if (b >= 0x80 && b <= 0x8f) {
      owed += 2 * (b & 0x0f);
      pos += 1;
    } else {
      switch (b) {
        case 0xcc: case 0xd0: pos += 2; break;
        case 0xcd: case 0xd1: pos += 3; break;
        case 0xce: case 0xd2: case 0xca: pos += 5; break;
        case 0xcf: case 0xd3: case 0xcb: pos += 9; break;
        case 0xd9: pos += 2 + buf[pos + 1]; break;
        case 0xda: pos += 3 + ((buf[pos + 1] << 8) | buf[pos + 2]); break;
        case 0xdb: pos += 5 + readU32(buf, pos + 1); break;
        case 0xdc: owed += (buf[pos + 1] << 8) | buf[pos + 2]; pos += 3; break;
        case 0xdd: owed += readU32(buf, pos + 1); pos += 5; break;
        case 0xde: owed += 2 * ((buf[pos + 1] << 8) | buf[pos + 2]); pos += 3; break;
        case 0xdf: owed += 2 * readU32(buf, pos + 1); pos += 5; break;
        default: throw new FrameError(`unsupported msgpack type 0x${b.toString(16)}`);
      }
    }
  }
  return pos;
}

const readU32 = (buf: Uint8Array, at: number): number => buf[at] * 0x1000000 + ((buf[at + 1] << 16) | (buf[at + 2] << 8) | buf[at + 3]);

/** The content of the str at `pos` ([start, end)), or null when the value there is no str. */
export function strAt(buf: Uint8Array, pos: number): [number, number] | null {
  const b = buf[pos];
  if (b >= 0xa0 && b <= 0xbf) return [pos + 1, pos + 1 + (b & 0x1f)];
  if (b === 0xd9) return [pos + 2, pos + 2 + buf[pos + 1]];
  if (b === 0xda) return [pos + 3, pos + 3 + ((buf[pos + 1] << 8) | buf[pos + 2])];
  if (b === 0xdb) return [pos + 5, pos + 5 + readU32(buf, pos + 1)];
  return null;
}

/** The number of entries of the map at `pos` and the offset of its first key, or null when it is no map. */
export function mapAt(buf: Uint8Array, pos: number): [count: number, first: number] | null {
  const b = buf[pos];
  if (b >= 0x80 && b <= 0x8f) return [b & 0x0f, pos + 1];
  if (b === 0xde) return [(buf[pos + 1] << 8) | buf[pos + 2], pos + 3];
  if (b === 0xdf) return [readU32(buf, pos + 1), pos + 5];
  return null;
}

/** Decodes one value that scanFrame() accepted. Strings are views into `buf`, not copies. */
export function decode(buf: Buffer, start = 0, end = buf.length): MsgValue {
  const d = new Decoder(buf, start, end);
  const v = d.value();
  if (d.pos !== end) throw new FrameError('trailing bytes after a message');
  return v;
}

class Decoder {
  pos: number;
  constructor(private readonly buf: Buffer, start: number, private readonly end: number) {
    this.pos = start;
  }

  private take(n: number): number {
    const p = this.pos;
    if (p + n > this.end) throw new FrameError('a message ends in the middle of a value');
    this.pos = p + n;
    return p;
  }

  private str(len: number): Buffer {
    const p = this.take(len);
    return this.buf.subarray(p, p + len);
  }

  private array(n: number): MsgValue[] {
    const out = new Array<MsgValue>(n);
    for (let i = 0; i < n; i++) out[i] = this.value();
    return out;
  }

  private map(n: number): MsgMap {
    const entries = new Array<[MsgValue, MsgValue]>(n);
    for (let i = 0; i < n; i++) entries[i] = [this.value(), this.value()];
    return new MsgMap(entries);
  }

  value(): MsgValue {
    const b = this.buf[this.take(1)];
    const buf = this.buf;
    if (b <= 0x7f) return b;
    if (b >= 0xe0) return b - 0x100;
    if (b >= 0xa0 && b <= 0xbf) return this.str(b & 0x1f);
    if (b >= 0x90 && b <= 0x9f) return this.array(b & 0x0f);
    if (b >= 0x80 && b <= 0x8f) return this.map(b & 0x0f);
    switch (b) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xcc: return buf.readUInt8(this.take(1));
      case 0xcd: return buf.readUInt16BE(this.take(2));
      case 0xce: return buf.readUInt32BE(this.take(4));
      case 0xcf: return toNumber(buf.readBigUInt64BE(this.take(8)));
      case 0xd0: return buf.readInt8(this.take(1));
      case 0xd1: return buf.readInt16BE(this.take(2));
      case 0xd2: return buf.readInt32BE(this.take(4));
      case 0xd3: return toNumber(buf.readBigInt64BE(this.take(8)));
      case 0xca: return buf.readFloatBE(this.take(4));
      case 0xcb: return buf.readDoubleBE(this.take(8));
      case 0xd9: return this.str(buf.readUInt8(this.take(1)));
      case 0xda: return this.str(buf.readUInt16BE(this.take(2)));
      case 0xdb: return this.str(buf.readUInt32BE(this.take(4)));
      case 0xdc: return this.array(buf.readUInt16BE(this.take(2)));
      case 0xdd: return this.array(buf.readUInt32BE(this.take(4)));
      case 0xde: return this.map(buf.readUInt16BE(this.take(2)));
      case 0xdf: return this.map(buf.readUInt32BE(this.take(4)));
      default: throw new FrameError(`unsupported msgpack type 0x${b.toString(16)}`);
    }
  }
}

function toNumber(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** A value to encode; JS strings are written as UTF-8 raw strings, as borg writes Python str. */
export type EncodableValue = MsgValue | string | undefined | EncodableValue[] | { float: number };

/** Encodes like msgpack-python with use_bin_type=False: bytes and text both as raw strings. */
export function encode(value: EncodableValue): Buffer {
  const parts: Buffer[] = [];
  encodeInto(value, parts);
  return parts.length === 1 ? parts[0] : Buffer.concat(parts);
}

function header(byte: number, len: number, width: 0 | 1 | 2 | 4): Buffer {
  const h = Buffer.allocUnsafe(1 + width);
  h[0] = byte;
  if (width === 1) h.writeUInt8(len, 1);
  else if (width === 2) h.writeUInt16BE(len, 1);
  else if (width === 4) h.writeUInt32BE(len, 1);
  return h;
}

function encodeInto(v: EncodableValue, out: Buffer[]): void {
  if (v === null || v === undefined) out.push(Buffer.from([0xc0]));
  else if (v === true) out.push(Buffer.from([0xc3]));
  else if (v === false) out.push(Buffer.from([0xc2]));
  else if (typeof v === 'number') encodeNumber(v, out);
  else if (typeof v === 'bigint') {
    // Python packs every int in its smallest form, whatever its JS type here.
    if (v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)) {
      encodeNumber(Number(v), out);
      return;
    }
    const h = Buffer.allocUnsafe(9);
    if (v >= 0n) {
      h[0] = 0xcf;
      h.writeBigUInt64BE(v, 1);
    } else {
      h[0] = 0xd3;
      h.writeBigInt64BE(v, 1);
    }
    out.push(h);
  } else if (typeof v === 'string') encodeRaw(Buffer.from(v, 'utf8'), out);
  else if (Buffer.isBuffer(v)) encodeRaw(v, out);
  else if (v instanceof Uint8Array) encodeRaw(Buffer.from(v.buffer, v.byteOffset, v.byteLength), out);
  else if (Array.isArray(v)) {
    const n = v.length;
    out.push(n < 16 ? Buffer.from([0x90 | n]) : n < 0x10000 ? header(0xdc, n, 2) : header(0xdd, n, 4));
    for (const e of v) encodeInto(e, out);
  } else if (v instanceof MsgMap) {
    const n = v.entries.length;
    out.push(n < 16 ? Buffer.from([0x80 | n]) : n < 0x10000 ? header(0xde, n, 2) : header(0xdf, n, 4));
    for (const [k, val] of v.entries) {
      encodeInto(k, out);
      encodeInto(val, out);
    }
  } else if (typeof v === 'object' && 'float' in v) {
    const h = Buffer.allocUnsafe(9);
    h[0] = 0xcb;
    h.writeDoubleBE(v.float, 1);
    out.push(h);
  } else {
    throw new TypeError('cannot encode this value as borg msgpack');
  }
}

/** The header of a raw string of `n` bytes: use_bin_type=False, so no str8 (0xd9); 32..65535 bytes use str16 (0xda). */
export function rawHeader(n: number): Buffer {
  return n < 32 ? Buffer.from([0xa0 | n]) : n < 0x10000 ? header(0xda, n, 2) : header(0xdb, n, 4);
}

function encodeRaw(b: Buffer, out: Buffer[]): void {
  out.push(rawHeader(b.length));
  out.push(b);
}

function encodeNumber(n: number, out: Buffer[]): void {
  if (!Number.isInteger(n)) {
    const h = Buffer.allocUnsafe(9);
    h[0] = 0xcb;
    h.writeDoubleBE(n, 1);
    out.push(h);
    return;
  }
  if (n >= 0) {
    if (n < 0x80) out.push(Buffer.from([n]));
    else if (n < 0x100) out.push(Buffer.from([0xcc, n]));
    else if (n < 0x10000) { const h = Buffer.allocUnsafe(3); h[0] = 0xcd; h.writeUInt16BE(n, 1); out.push(h); }
    else if (n < 0x100000000) { const h = Buffer.allocUnsafe(5); h[0] = 0xce; h.writeUInt32BE(n, 1); out.push(h); }
    else { const h = Buffer.allocUnsafe(9); h[0] = 0xcf; h.writeBigUInt64BE(BigInt(n), 1); out.push(h); }
  } else {
    if (n >= -32) out.push(Buffer.from([n & 0xff]));
    else if (n >= -0x80) { const h = Buffer.allocUnsafe(2); h[0] = 0xd0; h.writeInt8(n, 1); out.push(h); }
    else if (n >= -0x8000) { const h = Buffer.allocUnsafe(3); h[0] = 0xd1; h.writeInt16BE(n, 1); out.push(h); }
    else if (n >= -0x80000000) { const h = Buffer.allocUnsafe(5); h[0] = 0xd2; h.writeInt32BE(n, 1); out.push(h); }
    else { const h = Buffer.allocUnsafe(9); h[0] = 0xd3; h.writeBigInt64BE(BigInt(n), 1); out.push(h); }
  }
}

/** True when `v` is a raw string equal to the ASCII `s`. */
export function rawEquals(v: MsgValue | undefined, s: string): boolean {
  return Buffer.isBuffer(v) && v.length === s.length && v.toString('latin1', 0, v.length) === s;
}
