// The frame splitter on real borg traffic and on large synthetic streams, cut at random places:
// it must hand out exactly the frames borg's own Unpacker sees, as soon as each is complete, and
// refuse a bad or oversize frame before any of it (or anything after it) is handed out.

import { beforeAll, describe, expect, it } from 'vitest';
import { captureBorgTraffic, type BorgTraffic } from '../../test/support/borg-traffic.js';
import { createPrng, type Prng } from '../../test/support/prng.js';
import { createFramePool, type FramePool } from './frame-pool.js';
import { createFrameSplitter } from './frame-splitter.js';
import { CLIENT_LIMITS, FrameError, MAX_BUFFER_SIZE, MAX_OBJECT_SIZE, MsgMap, SERVER_LIMITS, encode, type MsgValue, type UnpackLimits } from './msgpack.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const MAX_DATA_SIZE = MAX_OBJECT_SIZE - 41;

const request = (msgid: number, method: string, args: Array<[string, MsgValue]>): Buffer =>
  encode(MsgMap.of([['i', msgid], ['m', Buffer.from(method)], ['a', MsgMap.of(args)]]));

/** Chunk sizes: mostly tiny or medium, sometimes megabytes, so every kind of cut occurs. */
function chunkSize(r: Prng): number {
  const k = r.int(10);
  if (k < 3) return r.range(1, 16);
  if (k < 8) return r.range(1, 65536);
  return r.range(1 << 20, 2 << 20);
}

/**
 * Pushes `stream` in random chunks and checks after every push that exactly the frames that
 * end within the bytes pushed so far have come out, byte-identical and in order.
 */
function splitAndCheck(stream: Buffer, frames: Buffer[], limits: UnpackLimits, r: Prng, size: (r: Prng) => number = chunkSize, direct = false, pool?: FramePool): number {
  const ends: number[] = [];
  let e = 0;
  for (const f of frames) ends.push((e += f.length));
  expect(e).toBe(stream.length);
  const splitter = createFrameSplitter(limits, pool);
  /** With a pool: frames still held (released after a few more pushes, a tenth never), by index. */
  const held: Array<{ i: number; frame: Buffer; pushesLeft: number }> = [];
  const out: Buffer[] = [];
  let pushed = 0;
  let pushes = 0;
  let outBytes = 0;
  while (pushed < stream.length) {
    let n = Math.min(size(r), stream.length - pushed);
    let chunk = stream.subarray(pushed, pushed + n);
    if (direct) {
      // a reader that puts its bytes where the splitter asks (frame-input.ts): at most what fits
      const target = splitter.target();
      expect(target.length).toBeGreaterThan(0);
      n = Math.min(n, target.length);
      chunk = target.subarray(0, stream.copy(target, 0, pushed, pushed + n));
    }
    const got = splitter.push(chunk);
    pushed += n;
    pushes++;
    for (const f of got) {
      const i = out.length;
      if (i >= frames.length || !f.equals(frames[i])) throw new Error(`frame ${i} differs (length ${f.length}, expected ${frames[i]?.length})`);
      out.push(f);
      outBytes += f.length;
      if (pool) held.push({ i, frame: f, pushesLeft: r.int(10) === 0 ? Infinity : r.int(4) });
    }
    if (pool) {
      // A frame not yet released is never read into again, however much came after it.
      for (let k = held.length - 1; k >= 0; k--) {
        const h = held[k]!;
        if (!h.frame.equals(frames[h.i])) throw new Error(`frame ${h.i} changed while still held`);
        if (h.pushesLeft-- <= 0) {
          pool.release(h.frame);
          if (r.int(5) === 0) pool.release(h.frame); // a second release counts for nothing
          held.splice(k, 1);
        }
      }
    }
    // every frame that is complete is out, and none that is not
    let complete = 0;
    while (complete < ends.length && ends[complete] <= pushed) complete++;
    if (out.length !== complete) throw new Error(`after ${pushed} bytes: ${out.length} frames out, ${complete} complete`);
    if (splitter.pendingBytes !== pushed - outBytes) throw new Error(`pendingBytes ${splitter.pendingBytes}, expected ${pushed - outBytes}`);
  }
  expect(out).toHaveLength(frames.length);
  expect(splitter.pendingBytes).toBe(0);
  // nothing handed out was written again afterwards (the splitter reuses the room behind frames);
  // with a pool, only frames never released are still the frames they were
  if (pool) {
    for (const h of held) if (!h.frame.equals(frames[h.i])) throw new Error(`frame ${h.i} changed while still held`);
    return pushes;
  }
  out.forEach((f, i) => {
    if (!f.equals(frames[i])) throw new Error(`frame ${i} changed after it was handed out`);
  });
  return pushes;
}

describe('createFrameSplitter', () => {
  let traffic: BorgTraffic;
  beforeAll(() => {
    traffic = captureBorgTraffic();
  }, 120_000);

  it('splits real borg sessions, both directions, cut anywhere, exactly as borg does', () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const r = createPrng(seed);
      for (const s of traffic.sessions) {
        splitAndCheck(s.client, s.clientFrames, SERVER_LIMITS, r);
        splitAndCheck(s.server, s.serverFrames, CLIENT_LIMITS, r);
        // small cuts only: every header and every string boundary gets cut somewhere
        splitAndCheck(s.client, s.clientFrames, SERVER_LIMITS, r, (x) => x.range(1, 64));
        splitAndCheck(s.server, s.serverFrames, CLIENT_LIMITS, r, (x) => x.range(1, 7));
      }
    }
  });

  it('splits the same sessions when the reader reads into target() instead (no copies)', () => {
    for (const seed of [6, 7]) {
      const r = createPrng(seed);
      for (const s of traffic.sessions) {
        splitAndCheck(s.client, s.clientFrames, SERVER_LIMITS, r, chunkSize, true);
        splitAndCheck(s.server, s.serverFrames, CLIENT_LIMITS, r, chunkSize, true);
        splitAndCheck(s.client, s.clientFrames, SERVER_LIMITS, r, (x) => x.range(1, 64), true);
      }
    }
  });

  it('reads a large put straight into one buffer of its size, the frame a view of it', () => {
    const data = Buffer.alloc(MAX_DATA_SIZE, 7);
    const frame = request(9, 'put', [['id', Buffer.alloc(32, 1)], ['data', data]]);
    const splitter = createFrameSplitter(SERVER_LIMITS);
    const targets = new Set<ArrayBufferLike>();
    let at = 0;
    let got: Buffer[] = [];
    while (at < frame.length) {
      const target = splitter.target();
      targets.add(target.buffer);
      const n = frame.copy(target, 0, at, Math.min(frame.length, at + 65536));
      at += n;
      got = got.concat(splitter.push(target.subarray(0, n)));
    }
    expect(got).toHaveLength(1);
    expect(got[0].equals(frame)).toBe(true);
    // the first read learnt the length; every later one went into the frame's own buffer
    expect(targets.size).toBe(2);
    expect(got[0].buffer.byteLength).toBe(frame.length);
  });

  it('hands out a frame with its last byte, not with the first byte of the next one', () => {
    for (const s of traffic.sessions) {
      for (const [frames, limits] of [[s.clientFrames, SERVER_LIMITS], [s.serverFrames, CLIENT_LIMITS]] as const) {
        const splitter = createFrameSplitter(limits);
        for (const f of frames) {
          if (f.length > 1) expect(splitter.push(f.subarray(0, f.length - 1))).toEqual([]);
          const got = splitter.push(f.subarray(f.length - 1));
          expect(got).toHaveLength(1);
          expect(got[0].equals(f)).toBe(true);
          expect(splitter.pendingBytes).toBe(0);
        }
      }
    }
  });

  it('splits a long stream of 20 MiB puts and small requests at random boundaries', () => {
    const r = createPrng(42);
    const frames: Buffer[] = [Buffer.concat([hex('94 01 01 a9'), Buffer.from('negotiate'), hex('91 81 ae'), Buffer.from('client_version'), hex('94 01 02 04 ff')])];
    frames.push(request(2, 'open', [['path', Buffer.from('/repo')], ['create', false], ['lock_wait', 1], ['lock', true], ['exclusive', true], ['append_only', false], ['make_parent_dirs', false]]));
    let msgid = 3;
    for (let i = 0; i < 400; i++) {
      const id = r.bytes(32);
      switch (i % 100 === 50 ? 'big' : r.pick(['get', 'put', 'put-sync', 'delete', 'commit', 'list', 'tuple'])) {
        case 'big': {
          // the largest put borg sends: MAX_DATA_SIZE bytes of payload, distinct per frame
          const data = Buffer.alloc(MAX_DATA_SIZE, msgid & 0xff);
          r.bytes(4096).copy(data, r.int(MAX_DATA_SIZE - 4096));
          frames.push(request(msgid++, 'put', [['id', id], ['data', data], ['wait', true]]));
          break;
        }
        case 'get':
          frames.push(request(msgid++, 'get', [['id', id]]));
          break;
        case 'put':
          frames.push(request(msgid++, 'put', [['id', id], ['data', r.bytes(r.pick([0, 1, 31, 32, 100, 65535, 65536, 300_000]))]]));
          break;
        case 'put-sync':
          frames.push(request(msgid++, 'put', [['id', Buffer.alloc(32)], ['data', r.bytes(r.range(0, 2000))], ['wait', true]]));
          break;
        case 'delete':
          frames.push(request(msgid++, 'delete', [['id', id]]));
          break;
        case 'commit':
          frames.push(request(msgid++, 'commit', [['save_space', false], ['compact', false], ['threshold', 0.1], ['cleanup_commits', false]]));
          break;
        case 'list':
          frames.push(request(msgid++, 'list', [['limit', 100000], ['marker', r.int(2) ? null : id]]));
          break;
        default:
          frames.push(encode([1, msgid++, 'get', [id]]));
      }
    }
    const stream = Buffer.concat(frames);
    expect(stream.length).toBeGreaterThan(4 * MAX_DATA_SIZE);
    const pushes = splitAndCheck(stream, frames, SERVER_LIMITS, r);
    expect(pushes).toBeGreaterThan(200);
  });

  it('with a pool, reads into buffers freed by released frames, and never into a frame still held', () => {
    const r = createPrng(77);
    const frames: Buffer[] = [];
    let msgid = 1;
    for (let i = 0; i < 100; i++) {
      // borg's puts: about 2 MiB of data, sizes varying, each frame's bytes its own
      const data = r.bytes(r.range(1 << 19, 5 << 20));
      frames.push(request(msgid++, 'put', [['id', r.bytes(32)], ['data', data]]));
      if (r.int(3) === 0) frames.push(request(msgid++, 'get', [['id', r.bytes(32)]]));
    }
    const stream = Buffer.concat(frames);
    for (const direct of [true, false]) {
      const pool = createFramePool();
      splitAndCheck(stream, frames, SERVER_LIMITS, r, chunkSize, direct, pool);
      expect(pool.stats.reused, `reused buffers (direct reads: ${direct})`).toBeGreaterThan(pool.stats.allocated);
    }
    for (const s of traffic.sessions) splitAndCheck(s.client, s.clientFrames, SERVER_LIMITS, r, chunkSize, true, createFramePool());
  });

  it('returns a frame that arrived within one chunk as a view of that chunk (no copy)', () => {
    const f = request(3, 'put', [['id', Buffer.alloc(32, 1)], ['data', Buffer.alloc(1 << 20, 2)]]);
    const chunk = Buffer.concat([f, f]);
    const got = createFrameSplitter(SERVER_LIMITS).push(chunk);
    expect(got).toHaveLength(2);
    expect(got[0].buffer).toBe(chunk.buffer);
    expect(got[1].buffer).toBe(chunk.buffer);
    expect(got[1].byteOffset - chunk.byteOffset).toBe(f.length);
  });

  it('counts pending bytes and ignores empty chunks', () => {
    const a = request(5, 'get', [['id', Buffer.alloc(32, 3)]]);
    const b = request(6, 'delete', [['id', Buffer.alloc(32, 4)], ['wait', true]]);
    const s = createFrameSplitter(SERVER_LIMITS);
    expect(s.pendingBytes).toBe(0);
    expect(s.push(Buffer.alloc(0))).toEqual([]);
    expect(s.push(a.subarray(0, 10))).toEqual([]);
    expect(s.pendingBytes).toBe(10);
    expect(s.push(Buffer.alloc(0))).toEqual([]);
    expect(s.pendingBytes).toBe(10);
    const got = s.push(Buffer.concat([a.subarray(10), b.subarray(0, 7)]));
    expect(got.map((x) => x.toString('hex'))).toEqual([a.toString('hex')]);
    expect(s.pendingBytes).toBe(7);
    expect(s.push(b.subarray(7)).map((x) => x.toString('hex'))).toEqual([b.toString('hex')]);
    expect(s.pendingBytes).toBe(0);
  });

  describe('bad frames', () => {
    const good = (i: number): Buffer => request(i, 'get', [['id', Buffer.alloc(32, i)]]);
    // each bad frame with the offset at which its fault becomes visible (end of the bad header)
    const bads: Array<[string, Buffer, number]> = (() => {
      const put = hex('83 a1 69 07 a1 6d a3 70 75 74 a1 61 82 a2 69 64 da 00 20');
      const head = Buffer.concat([put, Buffer.alloc(32, 9), hex('a4 64 61 74 61')]);
      const oversize = hex('db 01 40 00 01'); // MAX_OBJECT_SIZE + 1
      return [
        ['bin data', Buffer.concat([head, hex('c4 03 01 02 03')]), head.length + 1],
        ['ext', Buffer.concat([head, hex('d4 01 00')]), head.length + 1],
        ['reserved 0xc1', Buffer.concat([head, hex('c1')]), head.length + 1],
        ['101-element array', Buffer.concat([hex('dc 00 65'), Buffer.alloc(101)]), 3],
        ['101-entry map', hex('de 00 65'), 3],
        ['oversize string', Buffer.concat([head, oversize]), head.length + 5],
        ['too deep', Buffer.alloc(40, 0x91), 16],
      ];
    })();

    for (const [name, bad, visibleAt] of bads) {
      it(`throws FrameError on ${name} in the middle of a stream and never hands out what follows`, () => {
        const before = [good(1), good(2), good(3)];
        const after = [good(4), good(5)];
        const stream = Buffer.concat([...before, bad, ...after]);
        const badStart = before.reduce((n, f) => n + f.length, 0);
        for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
          const r = createPrng(seed);
          const s = createFrameSplitter(SERVER_LIMITS);
          const out: Buffer[] = [];
          let pushed = 0;
          let thrownAt = -1;
          let throws = 0;
          while (pushed < stream.length) {
            const n = Math.min(r.range(1, 80), stream.length - pushed);
            const startOfPush = pushed;
            pushed += n;
            try {
              out.push(...s.push(stream.subarray(startOfPush, pushed)));
            } catch (e) {
              expect(e).toBeInstanceOf(FrameError);
              throws++;
              if (thrownAt < 0) {
                thrownAt = pushed;
                // every frame that was complete before this push is out
                const completeBefore = before.filter((_, i) => before.slice(0, i + 1).reduce((x, f) => x + f.length, 0) <= startOfPush).length;
                expect(out.length).toBeGreaterThanOrEqual(completeBefore);
              }
            }
          }
          // it threw with the push that made the fault visible, and kept throwing afterwards
          expect(thrownAt).toBeGreaterThanOrEqual(badStart + visibleAt);
          expect(thrownAt - badStart - visibleAt).toBeLessThan(80);
          expect(throws).toBeGreaterThanOrEqual(1);
          // what came out is a prefix of the good frames before the bad one, nothing after it
          expect(out.length).toBeLessThanOrEqual(before.length);
          out.forEach((f, i) => expect(f.equals(before[i])).toBe(true));
          expect(() => s.push(good(6))).toThrow(FrameError);
        }
      });
    }

    it('refuses the header of an oversize string at once, without waiting for its body', () => {
      for (const limits of [SERVER_LIMITS, CLIENT_LIMITS]) {
        const s = createFrameSplitter(limits);
        const put = Buffer.concat([hex('83 a1 69 07 a1 6d a3 70 75 74 a1 61 82 a2 69 64 da 00 20'), Buffer.alloc(32), hex('a4 64 61 74 61')]);
        expect(s.push(put)).toEqual([]);
        expect(() => s.push(hex('db 01 40 00 01'))).toThrow(/20971521 bytes/);
      }
      // a string of exactly MAX_OBJECT_SIZE is fine
      const s = createFrameSplitter(SERVER_LIMITS);
      expect(s.push(hex('db 01 40 00 00'))).toEqual([]);
      expect(s.pendingBytes).toBe(5);
    });

    it('refuses a frame of more than 60 MiB long before it is complete', () => {
      // a 4-element array of 20 MiB strings: no single element breaks a limit, the total does
      const s = createFrameSplitter(SERVER_LIMITS);
      const strHeader = hex('db 01 40 00 00');
      const body = Buffer.alloc(MAX_OBJECT_SIZE, 0x61);
      expect(s.push(hex('94'))).toEqual([]);
      for (let i = 0; i < 2; i++) {
        expect(s.push(strHeader)).toEqual([]);
        for (let off = 0; off < body.length; off += 4 << 20) expect(s.push(body.subarray(off, off + (4 << 20)))).toEqual([]);
      }
      expect(s.pendingBytes).toBe(1 + 2 * (5 + MAX_OBJECT_SIZE));
      // the third header shows that the frame would pass borg's max_buffer_size
      expect(() => s.push(strHeader)).toThrow(new RegExp(`larger than ${MAX_BUFFER_SIZE}`));
      expect(s.pendingBytes).toBeLessThan(MAX_BUFFER_SIZE);
    });
  });
});
