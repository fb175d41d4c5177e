// borg's msgpack dialect against borg's own packer (python msgpack, use_bin_type=False), against
// @msgpack/msgpack, and against real borg 1.2 traffic for the frame scanner.

import { decode as referenceDecode } from '@msgpack/msgpack';
import { beforeAll, describe, expect, it } from 'vitest';
import { captureBorgTraffic, type BorgTraffic } from '../../test/support/borg-traffic.js';
import { createPrng, type Prng } from '../../test/support/prng.js';
import { runPython } from '../../test/support/python.js';
import {
  CLIENT_LIMITS,
  FrameError,
  MAX_BUFFER_SIZE,
  MAX_OBJECT_SIZE,
  MsgMap,
  SERVER_LIMITS,
  decode,
  encode,
  rawEquals,
  scanFrame,
  type EncodableValue,
  type MsgValue,
  type UnpackLimits,
} from './msgpack.js';

// --- helpers -------------------------------------------------------------------------------------

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const f64hex = (n: number): string => {
  const b = Buffer.alloc(8);
  b.writeDoubleBE(n);
  return b.toString('hex');
};

/** A Python expression that evaluates to the value borg would pack for `v`. */
function py(v: EncodableValue): string {
  if (v === null || v === undefined) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') return Number.isInteger(v) && !Object.is(v, -0) ? BigInt(v).toString() : `F('${f64hex(v)}')`;
  if (typeof v === 'string') return `bytes.fromhex('${Buffer.from(v, 'utf8').toString('hex')}').decode('utf-8')`;
  if (v instanceof Uint8Array && !Buffer.isBuffer(v)) return py(Buffer.from(v));
  if (Buffer.isBuffer(v)) return v.length > 64 && v.every((x) => x === v[0]) ? `bytes([${v[0]}]) * ${v.length}` : `bytes.fromhex('${v.toString('hex')}')`;
  if (Array.isArray(v)) return `[${v.map(py).join(', ')}]`;
  if (v instanceof MsgMap) return `{${v.entries.map(([k, x]) => `${py(k)}: ${py(x)}`).join(', ')}}`;
  if (typeof v === 'object' && 'float' in v) return `F('${f64hex(v.float)}')`;
  throw new Error('unsupported test value');
}

/** Packs every value with python msgpack (borg's packer) in one run. */
function pythonPack(values: EncodableValue[]): Buffer[] {
  const script = `
import msgpack, struct, sys, json
def F(h): return struct.unpack('>d', bytes.fromhex(h))[0]
exprs = json.loads(sys.stdin.read())
for e in exprs:
    sys.stdout.write(msgpack.packb(eval(e), use_bin_type=False).hex() + '\\n')
`;
  const out = runPython(script, JSON.stringify(values.map(py))).toString().trim().split('\n');
  expect(out).toHaveLength(values.length);
  return out.map((h) => Buffer.from(h, 'hex'));
}

/** A comparable, readable form of a decoded (or to-be-encoded) value. */
function canon(v: EncodableValue | MsgValue | Uint8Array): unknown {
  if (v === null || v === undefined) return null;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'bigint') return `int:${v}`;
  if (typeof v === 'number') {
    if (Number.isInteger(v) && !Object.is(v, -0)) return `int:${v}`;
    return `float:${Object.is(v, -0) ? '-0' : String(v)}`;
  }
  if (typeof v === 'string') return `raw:${Buffer.from(v, 'utf8').toString('hex')}`;
  if (v instanceof Uint8Array) return `raw:${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex')}`;
  if (Array.isArray(v)) return v.map(canon);
  if (v instanceof MsgMap) return { map: v.entries.map(([k, x]) => [canon(k), canon(x)]) };
  if (typeof v === 'object' && 'float' in v) return canon(v.float);
  throw new Error('unsupported value');
}

/** A random value of every kind borg can send, nested at most `depth` levels. */
function randomValue(r: Prng, depth: number): EncodableValue {
  const kind = r.int(depth > 0 ? 12 : 9);
  switch (kind) {
    case 0:
      return r.pick([null, true, false]);
    case 1: {
      // integers clustered around every width boundary
      const edges = [0, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1];
      const n = r.pick(edges) + r.range(-2, 2);
      return Math.max(0, n);
    }
    case 2: {
      const edges = [-1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, -(2 ** 53) + 1];
      return Math.min(-1, r.pick(edges) + r.range(-2, 2));
    }
    case 3:
      return r.pick([2n ** 64n - 1n, 2n ** 63n, 2n ** 53n, -(2n ** 63n), -(2n ** 53n) - 1n, 2n ** 60n + BigInt(r.int(1000))]);
    case 4: {
      const x = (r.next() - 0.5) * 10 ** r.range(-10, 300);
      // an integral JS number is an int to encode(); say float where Python would have one
      return Number.isInteger(x) ? { float: x } : x;
    }
    case 5:
      return r.bytes(r.pick([0, 1, 5, 31, 32, 33, 100, 255, 256]));
    case 6:
      // big strings are costly to compare; keep them rare
      return r.int(4) === 0 ? r.bytes(r.pick([65535, 65536, 70000])) : r.bytes(r.range(2, 64));
    case 7:
      return r.pick(['', 'negotiate', 'héllo wörld', 'ключ', '日本語', '😀 emoji', 'x'.repeat(40)]);
    case 8:
      return r.int(2 ** 31) - 2 ** 30;
    case 9:
    case 10: {
      // long containers only just above the leaves, so a value stays small
      const n = depth > 1 ? r.pick([0, 1, 2, 3]) : r.pick([0, 1, 3, 15, 16, 17, 40]);
      return Array.from({ length: n }, () => randomValue(r, depth - 1));
    }
    default: {
      const n = depth > 1 ? r.pick([0, 1, 2, 3]) : r.pick([0, 1, 2, 15, 16, 20]);
      const entries: Array<[MsgValue, MsgValue]> = [];
      for (let i = 0; i < n; i++) entries.push([Buffer.from(`k${i}_${r.int(1000)}`, 'latin1'), randomValue(r, depth - 1) as MsgValue]);
      return new MsgMap(entries);
    }
  }
}

/** randomValue() without the JS-only spellings, so it can be compared after a round trip. */
function asMsgValue(v: EncodableValue): MsgValue {
  if (v === undefined) return null;
  if (typeof v === 'string') return Buffer.from(v, 'utf8');
  if (Array.isArray(v)) return v.map(asMsgValue);
  if (v instanceof MsgMap) return new MsgMap(v.entries.map(([k, x]) => [asMsgValue(k), asMsgValue(x)]));
  if (v !== null && typeof v === 'object' && !Buffer.isBuffer(v) && 'float' in v) return v.float;
  return v as MsgValue;
}

/** The same value in @msgpack/msgpack's model: raw strings as bytes, maps as plain objects. */
function referenceCanon(v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'bigint') return `int:${v}`;
  if (typeof v === 'number') return canon(v);
  if (v instanceof Uint8Array) return canon(v);
  if (typeof v === 'string') return canon(v);
  if (Array.isArray(v)) return v.map(referenceCanon);
  if (typeof v === 'object') return { map: Object.entries(v as object).map(([k, x]) => [canon(k), referenceCanon(x)]) };
  throw new Error('unexpected value from @msgpack/msgpack');
}

const noLimits: UnpackLimits = { maxArrayLen: 2 ** 32, maxMapLen: 2 ** 32, maxStrLen: 2 ** 32, maxFrameSize: 2 ** 40, maxDepth: 64 };

// --- encode: byte-exact with borg ------------------------------------------------------------------

describe('encode', () => {
  const pow = (n: number): number => 2 ** n;
  const cases: EncodableValue[] = [
    null,
    true,
    false,
    // every integer width boundary, both sides
    0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, pow(32) - 1, pow(32), pow(53) - 1, pow(53), pow(63),
    -1, -31, -32, -33, -127, -128, -129, -32767, -32768, -32769, -pow(31), -pow(31) - 1, -pow(53) + 1, -pow(53), -pow(63),
    2n ** 64n - 1n, 2n ** 63n, 2n ** 53n + 1n, -(2n ** 63n), -(2n ** 53n) - 1n,
    // bigints of small magnitude are still packed in their smallest form, as Python packs ints
    0n, 5n, 127n, 128n, 255n, 256n, 65535n, 65536n, 2n ** 32n - 1n, 2n ** 32n, -1n, -32n, -33n, -128n, -129n, -32768n, -32769n, -(2n ** 31n), -(2n ** 31n) - 1n,
    // floats are always float64, even when integral
    0.1, -1.5, { float: 1e300 }, -2.5e-300, Number.MIN_VALUE, { float: Number.MAX_VALUE }, { float: 1 }, { float: 0 }, { float: -0 }, Infinity, -Infinity, NaN,
    // raw strings at every length boundary: fixstr up to 31, never str8, str16 up to 65535, then str32
    Buffer.alloc(0), Buffer.alloc(1, 0x61), Buffer.alloc(31, 0x61), Buffer.alloc(32, 0x62), Buffer.alloc(255, 0x63), Buffer.alloc(256, 0x64),
    Buffer.alloc(65535, 0x65), Buffer.alloc(65536, 0x66), Buffer.alloc(200_000, 0x67),
    '', 'negotiate', 'héllo', 'x'.repeat(31), 'y'.repeat(32), '日本'.repeat(20),
    new Uint8Array([1, 2, 3]) as unknown as EncodableValue, // encode() also takes plain Uint8Arrays
    // arrays and maps at the fix/16-bit/32-bit boundaries
    [], [1, 2, 3], Array.from({ length: 15 }, (_, i) => i), Array.from({ length: 16 }, (_, i) => i), Array.from({ length: 65535 }, () => 0), Array.from({ length: 65536 }, () => 1),
    new MsgMap(), MsgMap.of(Array.from({ length: 15 }, (_, i) => [`k${i}`, i] as [string, MsgValue])), MsgMap.of(Array.from({ length: 16 }, (_, i) => [`k${i}`, i] as [string, MsgValue])),
    new MsgMap(Array.from({ length: 65536 }, (_, i) => [i, null] as [MsgValue, MsgValue])),
    // borg-shaped messages
    [1, 1, 'negotiate', [MsgMap.of([['client_version', [1, 2, 4, -1]]])]],
    MsgMap.of([['i', 2], ['m', Buffer.from('open')], ['a', MsgMap.of([['path', Buffer.from('/srv/repo')], ['create', false], ['lock_wait', 1], ['lock', true], ['exclusive', true], ['append_only', false], ['make_parent_dirs', false]])]]),
    MsgMap.of([['i', 7], ['m', Buffer.from('commit')], ['a', MsgMap.of([['save_space', false], ['compact', false], ['threshold', 0.1], ['cleanup_commits', false]])]]),
    [[[[[[1, [Buffer.from('deep')]]]]]], MsgMap.of([['x', MsgMap.of([['y', [null, true]]])]])],
  ];

  it('packs every value exactly as python msgpack packb(use_bin_type=False) does', () => {
    const expected = pythonPack(cases);
    for (const [i, v] of cases.entries()) {
      const ours = encode(v);
      if (!ours.equals(expected[i])) {
        // a readable failure: the value, then our head bytes against python's
        expect({ value: py(v).slice(0, 80), head: ours.subarray(0, 24).toString('hex') }).toEqual({
          value: py(v).slice(0, 80),
          head: expected[i].subarray(0, 24).toString('hex'),
        });
      }
      expect(ours.equals(expected[i])).toBe(true);
    }
  });

  it('writes the fact sheet examples byte for byte', () => {
    expect(encode({ float: 0.1 })).toEqual(hex('cb 3f b9 99 99 99 99 99 9a'));
    expect(encode(0.1)).toEqual(hex('cb 3f b9 99 99 99 99 99 9a'));
    expect(encode(Buffer.alloc(32)).subarray(0, 3)).toEqual(hex('da 00 20'));
    expect(encode(Buffer.alloc(200_000)).subarray(0, 5)).toEqual(hex('db 00 03 0d 40'));
    expect(encode([1, 1, 'negotiate', [MsgMap.of([['client_version', [1, 2, 4, -1]]])]])).toEqual(
      Buffer.concat([hex('94 01 01 a9'), Buffer.from('negotiate'), hex('91 81 ae'), Buffer.from('client_version'), hex('94 01 02 04 ff')]),
    );
  });

  it('never emits bin (c4-c6), ext or str8 (d9)', () => {
    const r = createPrng(11);
    for (let i = 0; i < 200; i++) {
      const b = encode(r.bytes(r.range(0, 300)));
      expect([0xc4, 0xc5, 0xc6, 0xd9]).not.toContain(b[0]);
    }
  });

  it('refuses what borg cannot pack', () => {
    expect(() => encode(2 ** 64)).toThrow();
    expect(() => encode(2n ** 64n)).toThrow();
    expect(() => encode(-(2n ** 63n) - 1n)).toThrow();
    expect(() => encode({ notAValue: 1 } as unknown as EncodableValue)).toThrow(TypeError);
  });

  it('agrees with python on random values (byte for byte)', () => {
    const r = createPrng(2024);
    const values = Array.from({ length: 300 }, () => randomValue(r, 3));
    const expected = pythonPack(values);
    for (const [i, v] of values.entries()) expect(encode(v).toString('hex'), py(v).slice(0, 200)).toBe(expected[i].toString('hex'));
  });

  it('is read back identically by @msgpack/msgpack (random values)', () => {
    const r = createPrng(99);
    for (let i = 0; i < 500; i++) {
      const v = randomValue(r, 4);
      const theirs = referenceDecode(encode(v), { rawStrings: true, useBigInt64: true });
      expect(referenceCanon(theirs)).toEqual(canon(v));
    }
  });
});

// --- decode ---------------------------------------------------------------------------------------

describe('decode', () => {
  it('reads back every value python packed, ints as numbers when safe and bigints when not', () => {
    const values: EncodableValue[] = [
      0, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, 2n ** 53n, 2n ** 64n - 1n,
      -1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, -(2 ** 53) + 1, -(2n ** 53n), -(2n ** 63n),
      0.1, { float: -1e300 }, { float: 2 }, Buffer.alloc(31, 1), Buffer.alloc(32, 2), Buffer.alloc(65536, 3),
      [1, [2, [3]]], MsgMap.of([['b', 1], ['a', 2]]), null, true, false,
    ];
    const packed = pythonPack(values);
    for (const [i, v] of values.entries()) {
      const got = decode(packed[i]);
      expect(canon(got)).toEqual(canon(v));
    }
    expect(decode(packed[values.indexOf(2 ** 53 - 1)])).toBe(2 ** 53 - 1);
    expect(decode(packed[values.indexOf(2n ** 53n)])).toBe(2n ** 53n);
    expect(decode(packed[values.indexOf(2n ** 64n - 1n)])).toBe(2n ** 64n - 1n);
    expect(decode(packed[values.indexOf(-(2n ** 63n))])).toBe(-(2n ** 63n));
    expect(decode(packed[values.indexOf(-(2 ** 53) + 1)])).toBe(-(2 ** 53) + 1);
  });

  it('reads every integer width, including non-minimal encodings other packers use', () => {
    expect(decode(hex('cc ff'))).toBe(255);
    expect(decode(hex('cd ff ff'))).toBe(65535);
    expect(decode(hex('ce ff ff ff ff'))).toBe(4294967295);
    expect(decode(hex('cf 00 00 00 00 00 00 00 07'))).toBe(7);
    expect(decode(hex('cf 00 1f ff ff ff ff ff ff'))).toBe(Number.MAX_SAFE_INTEGER);
    expect(decode(hex('cf 00 20 00 00 00 00 00 00'))).toBe(2n ** 53n);
    expect(decode(hex('cf ff ff ff ff ff ff ff ff'))).toBe(2n ** 64n - 1n);
    expect(decode(hex('d0 80'))).toBe(-128);
    expect(decode(hex('d0 05'))).toBe(5);
    expect(decode(hex('d1 80 00'))).toBe(-32768);
    expect(decode(hex('d2 80 00 00 00'))).toBe(-(2 ** 31));
    expect(decode(hex('d3 ff ff ff ff ff ff ff ff'))).toBe(-1);
    expect(decode(hex('d3 ff e0 00 00 00 00 00 01'))).toBe(Number.MIN_SAFE_INTEGER);
    expect(decode(hex('d3 ff e0 00 00 00 00 00 00'))).toBe(-(2n ** 53n));
    expect(decode(hex('d3 80 00 00 00 00 00 00 00'))).toBe(-(2n ** 63n));
    expect(decode(hex('e0'))).toBe(-32);
    expect(decode(hex('ff'))).toBe(-1);
  });

  it('reads float32 and float64', () => {
    expect(decode(hex('ca 3f c0 00 00'))).toBe(1.5);
    expect(decode(hex('cb 3f b9 99 99 99 99 99 9a'))).toBe(0.1);
    expect(Number.isNaN(decode(hex('cb 7f f8 00 00 00 00 00 00')))).toBe(true);
    expect(decode(hex('cb ff f0 00 00 00 00 00 00'))).toBe(-Infinity);
  });

  it('reads str8 (which borg accepts) and all str widths as bytes, never as text', () => {
    expect(decode(hex('d9 03 61 62 63'))).toEqual(Buffer.from('abc'));
    expect(decode(hex('da 00 02 ff fe'))).toEqual(Buffer.from([0xff, 0xfe]));
    expect(decode(hex('db 00 00 00 01 00'))).toEqual(Buffer.from([0]));
    const v = decode(Buffer.from([0xa2, 0xc3, 0x28])); // invalid UTF-8 survives untouched
    expect(Buffer.isBuffer(v) && v.equals(Buffer.from([0xc3, 0x28]))).toBe(true);
  });

  it('returns strings as views into the frame, not copies', () => {
    const frame = encode(MsgMap.of([['i', 3], ['m', Buffer.from('put')], ['a', MsgMap.of([['id', Buffer.alloc(32, 7)], ['data', Buffer.alloc(100_000, 9)]])]]));
    const v = decode(frame) as MsgMap;
    const data = (v.get('a') as MsgMap).get('data') as Buffer;
    expect(data.buffer).toBe(frame.buffer);
    expect(data.byteOffset - frame.byteOffset).toBe(frame.length - 100_000);
    frame[frame.length - 1] = 0x42;
    expect(data[data.length - 1]).toBe(0x42);
    // decoding a sub-range of a larger buffer works the same way
    const big = Buffer.concat([hex('c0 c0'), frame, hex('c3')]);
    const again = decode(big, 2, 2 + frame.length) as MsgMap;
    expect(((again.get('a') as MsgMap).get('data') as Buffer).buffer).toBe(big.buffer);
  });

  it('keeps map entries in wire order and finds raw keys by name', () => {
    const m = decode(hex('83 a1 7a 01 a1 61 02 01 03')) as MsgMap;
    expect(m).toBeInstanceOf(MsgMap);
    expect(m.entries.map(([k]) => canon(k))).toEqual(['raw:7a', 'raw:61', 'int:1']);
    expect(m.get('z')).toBe(1);
    expect(m.get('a')).toBe(2);
    expect(m.get('b')).toBeUndefined();
    expect(m.has('a')).toBe(true);
    expect(m.has('zz')).toBe(false);
    expect(rawEquals(Buffer.from('abc'), 'abc')).toBe(true);
    expect(rawEquals(Buffer.from('abd'), 'abc')).toBe(false);
    expect(rawEquals(3, 'abc')).toBe(false);
  });

  it('throws FrameError on trailing bytes, truncation and types borg never sends', () => {
    expect(() => decode(hex('01 02'))).toThrow(FrameError);
    expect(() => decode(hex('92 01'))).toThrow(FrameError);
    expect(() => decode(hex('da 00 05 61'))).toThrow(FrameError);
    expect(() => decode(hex('c4 01 00'))).toThrow(FrameError);
    expect(() => decode(hex('c1'))).toThrow(FrameError);
    expect(() => decode(hex('d4 01 00'))).toThrow(FrameError);
    expect(() => decode(Buffer.alloc(0))).toThrow(FrameError);
  });

  it('round-trips random values', () => {
    const r = createPrng(5);
    for (let i = 0; i < 500; i++) {
      const v = randomValue(r, 4);
      const b = encode(v);
      const scanned = scanFrame(b, 0, noLimits);
      expect(scanned).toEqual({ kind: 'complete', end: b.length });
      expect(canon(decode(b))).toEqual(canon(asMsgValue(v)));
    }
  });
});

// --- scanFrame ------------------------------------------------------------------------------------

/** Checks that every proper prefix of `frame` (placed at `start` in a buffer) is incomplete. */
function expectIncompleteAtEveryCut(frame: Buffer, limits: UnpackLimits, prefix: Buffer = Buffer.alloc(0)): void {
  const whole = Buffer.concat([prefix, frame]);
  const start = prefix.length;
  const end = whole.length;
  for (let cut = start; cut < end; cut++) {
    const r = scanFrame(whole.subarray(0, cut), start, limits);
    if (r.kind !== 'incomplete' || r.need <= cut || r.need > end) {
      expect({ cut, end, r }).toEqual({ cut, end, r: { kind: 'incomplete', need: `in (${cut}, ${end}]` } });
    }
  }
  expect(scanFrame(whole, start, limits)).toEqual({ kind: 'complete', end });
  // and with the next frame's first bytes already behind it
  expect(scanFrame(Buffer.concat([whole, hex('94 01 02')]), start, limits)).toEqual({ kind: 'complete', end });
}

/** Follows `need` from an empty buffer: it must reach the frame's end without ever passing it. */
function needChain(frame: Buffer, limits: UnpackLimits): number[] {
  const chain: number[] = [];
  let have = 0;
  for (;;) {
    const r = scanFrame(frame.subarray(0, have), 0, limits);
    if (r.kind === 'complete') {
      expect(r.end).toBe(frame.length);
      return chain;
    }
    expect(r.kind).toBe('incomplete');
    if (r.kind !== 'incomplete') return chain;
    expect(r.need).toBeGreaterThan(have);
    expect(r.need).toBeLessThanOrEqual(frame.length);
    chain.push(r.need);
    have = r.need;
  }
}

describe('scanFrame', () => {
  let traffic: BorgTraffic;
  beforeAll(() => {
    traffic = captureBorgTraffic();
  }, 120_000);

  it('measures every frame of real borg traffic exactly where borg does', () => {
    let n = 0;
    for (const s of traffic.sessions) {
      for (const [stream, frames, limits] of [
        [s.client, s.clientFrames, SERVER_LIMITS],
        [s.server, s.serverFrames, CLIENT_LIMITS],
      ] as const) {
        let pos = 0;
        for (const f of frames) {
          expect(scanFrame(stream, pos, limits)).toEqual({ kind: 'complete', end: pos + f.length });
          pos += f.length;
          n++;
        }
        expect(pos).toBe(stream.length);
      }
    }
    expect(n).toBeGreaterThan(50);
  });

  it('never reports a cut real frame as complete; need is past the cut and within the frame', () => {
    const r = createPrng(1);
    for (const s of traffic.sessions) {
      for (const f of s.clientFrames) expectIncompleteAtEveryCut(f, SERVER_LIMITS);
      for (const f of s.serverFrames) expectIncompleteAtEveryCut(f, CLIENT_LIMITS);
      // the same with the frame starting in the middle of a buffer
      for (const f of s.clientFrames.filter((x) => x.length < 5000)) expectIncompleteAtEveryCut(f, SERVER_LIMITS, r.bytes(r.range(1, 9)));
    }
  });

  it('the exact negotiate frame of a borg 1.2.4 client is incomplete at every cut', () => {
    const negotiate = Buffer.concat([hex('94 01 01 a9'), Buffer.from('negotiate'), hex('91 81 ae'), Buffer.from('client_version'), hex('94 01 02 04 ff')]);
    expect(traffic.sessions[0].clientFrames[0]).toEqual(negotiate);
    expectIncompleteAtEveryCut(negotiate, SERVER_LIMITS);
  });

  it('is incomplete at every cut of frames with every type and width', () => {
    const values: EncodableValue[] = [
      [0xcc, 0xcdef, 0xcdefabcd, 2n ** 63n, -100, -30000, -(2 ** 31), -(2n ** 62n), 1.5, null, true, false],
      [Buffer.alloc(31), Buffer.alloc(32), Buffer.alloc(70_000, 1), 'a'],
      Array.from({ length: 20 }, (_, i) => i),
      MsgMap.of(Array.from({ length: 20 }, (_, i) => [`k${i}`, [i]] as [string, MsgValue])),
      [[], new MsgMap(), [[[]]], Buffer.alloc(0)],
      // frames that end in a string: the end of the string is the end of the frame
      MsgMap.of([['i', 9], ['m', Buffer.from('get')], ['a', MsgMap.of([['id', Buffer.alloc(32, 1)]])]]),
      Buffer.alloc(5),
    ];
    for (const v of values) expectIncompleteAtEveryCut(encode(v), SERVER_LIMITS);
    // forms borg does not emit but accepts: str8, float32, the 32-bit array and map headers
    for (const h of ['d9 03 61 62 63', 'ca 3f c0 00 00', 'dd 00 00 00 02 01 02', 'df 00 00 00 01 a1 61 c0', '92 d9 00 a0']) {
      expectIncompleteAtEveryCut(hex(h), SERVER_LIMITS);
    }
  });

  it('need lets a caller wait for exactly the bytes that make progress', () => {
    // a put of 1 MiB: the scanner skips the payload in one step instead of byte by byte
    const put = encode(MsgMap.of([['i', 8], ['m', Buffer.from('put')], ['a', MsgMap.of([['id', Buffer.alloc(32, 5)], ['data', Buffer.alloc(1 << 20, 6)]])]]));
    const chain = needChain(put, SERVER_LIMITS);
    expect(chain.length).toBeLessThan(40); // about one step per value, not one per byte
    expect(chain).toContain(put.length);
    // a get ends in its id: the last need is the frame's exact length, not one byte more
    const get = encode(MsgMap.of([['i', 9], ['m', Buffer.from('get')], ['a', MsgMap.of([['id', Buffer.alloc(32, 1)]])]]));
    expect(needChain(get, SERVER_LIMITS).at(-1)).toBe(get.length);
    expect(scanFrame(get.subarray(0, get.length - 1), 0, SERVER_LIMITS)).toEqual({ kind: 'incomplete', need: get.length });
    expect(scanFrame(hex('a3 61'), 0, SERVER_LIMITS)).toEqual({ kind: 'incomplete', need: 4 });
    expect(scanFrame(hex('92 01'), 0, SERVER_LIMITS)).toEqual({ kind: 'incomplete', need: 3 });
    expect(scanFrame(hex('da 00'), 0, SERVER_LIMITS)).toEqual({ kind: 'incomplete', need: 3 });
    expect(scanFrame(Buffer.alloc(0), 0, SERVER_LIMITS)).toEqual({ kind: 'incomplete', need: 1 });
  });

  describe('limits', () => {
    const arr16 = (n: number): Buffer => Buffer.concat([hex('dc'), Buffer.from([n >> 8, n & 0xff]), Buffer.alloc(n, 0)]);
    const map16 = (n: number): Buffer => {
      const parts = [hex('de'), Buffer.from([n >> 8, n & 0xff])];
      for (let i = 0; i < n; i++) parts.push(hex('00 c0'));
      return Buffer.concat(parts);
    };
    const invalid = (buf: Buffer, limits: UnpackLimits, pattern: RegExp): void => {
      const r = scanFrame(buf, 0, limits);
      expect(r.kind).toBe('invalid');
      if (r.kind === 'invalid') expect(r.reason).toMatch(pattern);
    };

    it('arrays and maps of at most 100 entries for borg serve, 100 000-entry lists for the client', () => {
      expect(scanFrame(arr16(100), 0, SERVER_LIMITS)).toEqual({ kind: 'complete', end: 103 });
      invalid(arr16(101), SERVER_LIMITS, /101 elements/);
      invalid(hex('dc 00 65'), SERVER_LIMITS, /101 elements/); // refused from the header alone
      invalid(hex('dd 00 00 00 65'), SERVER_LIMITS, /array/);
      invalid(hex('dd ff ff ff ff'), SERVER_LIMITS, /array/);
      expect(scanFrame(map16(100), 0, SERVER_LIMITS)).toEqual({ kind: 'complete', end: 203 });
      invalid(map16(101), SERVER_LIMITS, /101 entries/);
      invalid(hex('de 00 65'), SERVER_LIMITS, /map/);
      invalid(hex('df 00 01 00 00'), SERVER_LIMITS, /map/);
      invalid(hex('df 00 01 00 00'), CLIENT_LIMITS, /map/);
      // nested below the top level too
      invalid(Buffer.concat([hex('82 a1 69 01 a1 61'), arr16(101)]), SERVER_LIMITS, /array/);
      // the client accepts list results up to LIST_SCAN_LIMIT
      expect(scanFrame(hex('dd 00 01 86 a0'), 0, CLIENT_LIMITS)).toMatchObject({ kind: 'incomplete' });
      invalid(hex('dd 00 01 86 a1'), CLIENT_LIMITS, /100001 elements/);
      invalid(map16(101), CLIENT_LIMITS, /map/);
      // custom small limits apply to fixarray/fixmap headers as well
      const tiny = { ...SERVER_LIMITS, maxArrayLen: 2, maxMapLen: 1 };
      expect(scanFrame(hex('92 01 02'), 0, tiny)).toEqual({ kind: 'complete', end: 3 });
      invalid(hex('93 01 02 03'), tiny, /array/);
      invalid(hex('82 01 02 03 04'), tiny, /map/);
    });

    it('strings of at most 20 MiB, refused from their header', () => {
      const at = (len: number): Buffer => {
        const h = Buffer.alloc(5);
        h[0] = 0xdb;
        h.writeUInt32BE(len, 1);
        return h;
      };
      expect(scanFrame(at(MAX_OBJECT_SIZE), 0, SERVER_LIMITS)).toEqual({ kind: 'incomplete', need: 5 + MAX_OBJECT_SIZE });
      invalid(at(MAX_OBJECT_SIZE + 1), SERVER_LIMITS, /string of 20971521 bytes/);
      invalid(at(0xffffffff), CLIENT_LIMITS, /string/);
      const full = Buffer.concat([at(MAX_OBJECT_SIZE), Buffer.alloc(MAX_OBJECT_SIZE)]);
      expect(scanFrame(full, 0, SERVER_LIMITS)).toEqual({ kind: 'complete', end: full.length });
      const small = { ...SERVER_LIMITS, maxStrLen: 40 };
      expect(scanFrame(encode(Buffer.alloc(40)), 0, small)).toMatchObject({ kind: 'complete' });
      invalid(hex('da 00 29'), small, /string of 41 bytes/);
      invalid(hex('d9 29'), small, /string/);
      invalid(Buffer.concat([hex('91'), hex('da 00 29')]), small, /string/);
      invalid(hex('a5'), { ...SERVER_LIMITS, maxStrLen: 4 }, /string/);
    });

    it('frames of at most maxFrameSize bytes, refused before they are complete', () => {
      expect(MAX_BUFFER_SIZE).toBe(62_914_560);
      const lim = { ...SERVER_LIMITS, maxFrameSize: 100 };
      const exact = encode([Buffer.alloc(30), Buffer.alloc(63)]); // 1 + (1 + 30) + (3 + 63)
      expect(exact.length).toBe(98);
      expect(scanFrame(exact, 0, lim)).toEqual({ kind: 'complete', end: 98 });
      const hundred = encode([Buffer.alloc(30), Buffer.alloc(63), 1, 2]);
      expect(hundred.length).toBe(100);
      expect(scanFrame(hundred, 0, lim)).toEqual({ kind: 'complete', end: 100 });
      invalid(encode([Buffer.alloc(30), Buffer.alloc(63), 1, 2, 3]), lim, /larger than 100/);
      // the second string's header alone shows the frame will be too large
      const header = Buffer.concat([hex('92'), encode(Buffer.alloc(50)), hex('da 00 40')]);
      invalid(header, lim, /larger than 100/);
      // a frame starting at an offset is measured from its start
      const offset = Buffer.concat([Buffer.alloc(500), hundred]);
      expect(scanFrame(offset, 500, lim)).toEqual({ kind: 'complete', end: 600 });
      // many small values also count
      invalid(encode(Array.from({ length: 60 }, () => 0xffff)), lim, /larger than 100/);
    });

    it('bin, ext and the reserved byte 0xc1 are refused anywhere in a frame', () => {
      for (const b of ['c4 01 00', 'c5 00 01 00', 'c6 00 00 00 01 00']) {
        invalid(hex(b), SERVER_LIMITS, /bin/);
        invalid(hex(b), CLIENT_LIMITS, /bin/);
        invalid(hex(`83 a1 69 01 a1 6d a3 70 75 74 a1 61 81 a4 64 61 74 61 ${b}`), SERVER_LIMITS, /bin/);
      }
      invalid(hex('c4'), SERVER_LIMITS, /bin/); // even before its length arrives
      for (const b of ['c7 01 05 00', 'c8 00 01 05 00', 'c9 00 00 00 01 05 00', 'd4 05 00', 'd5 05 00 00', 'd6 05 00 00 00 00', 'd7 05 ' + '00 '.repeat(8), 'd8 05 ' + '00 '.repeat(16)]) {
        invalid(hex(b), SERVER_LIMITS, /ext/);
        invalid(hex(`92 01 ${b}`), CLIENT_LIMITS, /ext/);
      }
      invalid(hex('c1'), SERVER_LIMITS, /reserved byte 0xc1/);
      invalid(hex('93 01 02 c1'), SERVER_LIMITS, /0xc1/);
    });

    it('nesting of at most maxDepth levels, without using the JS stack', () => {
      const nested = (levels: number, leaf: Buffer): Buffer => Buffer.concat([Buffer.alloc(levels, 0x91), leaf]);
      // a value at depth 16 (15 arrays around it) is fine, at depth 17 it is not
      expect(scanFrame(nested(15, hex('01')), 0, SERVER_LIMITS)).toEqual({ kind: 'complete', end: 16 });
      expect(scanFrame(nested(15, hex('90')), 0, SERVER_LIMITS)).toEqual({ kind: 'complete', end: 16 });
      invalid(nested(16, hex('01')), SERVER_LIMITS, /deeper than 16/);
      invalid(nested(16, hex('80')).subarray(0, 16), SERVER_LIMITS, /deeper/);
      invalid(Buffer.concat([Buffer.alloc(16, 0x81), hex('01')]), SERVER_LIMITS, /deeper/);
      invalid(nested(1_000_000, hex('01')), SERVER_LIMITS, /deeper/);
      expect(scanFrame(nested(1_000_000, hex('01')), 0, { ...noLimits, maxDepth: 2_000_000 })).toEqual({ kind: 'complete', end: 1_000_001 });
      // siblings do not add up to depth
      const wide = encode(Array.from({ length: 50 }, () => [[[[1]]]]));
      expect(scanFrame(wide, 0, { ...SERVER_LIMITS, maxDepth: 6 })).toEqual({ kind: 'complete', end: wide.length });
      invalid(wide, { ...SERVER_LIMITS, maxDepth: 5 }, /deeper than 5/);
    });

    it('a scanned frame always decodes', () => {
      const r = createPrng(77);
      for (let i = 0; i < 2000; i++) {
        // random bytes: whatever scanFrame accepts, decode must read without throwing
        const b = r.bytes(r.range(1, 40));
        const s = scanFrame(b, 0, SERVER_LIMITS);
        if (s.kind === 'complete') expect(() => decode(b, 0, s.end)).not.toThrow();
        if (s.kind === 'incomplete') expect(s.need).toBeGreaterThan(b.length);
      }
    });
  });
});
