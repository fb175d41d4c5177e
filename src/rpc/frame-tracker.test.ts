import { randomBytes } from 'node:crypto';
import { expect, test } from 'vitest';

import { createFrameTracker } from './frame-tracker.js';
import { encodeRequest } from './messages.js';
import { encode, MsgMap } from './msgpack.js';

/** Frames of every shape borg sends, and values of every msgpack width. */
function frames(): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < 40; i++) {
    const size = [0, 1, 31, 32, 255, 256, 65_535, 65_536, 300_000][i % 9]!;
    const args = new Map<string, Buffer | number>([['id', randomBytes(32)], ['data', randomBytes(size)]]);
    out.push(encodeRequest(i % 2 === 0 ? 'dict' : 'tuple', i + 1, 'put', args));
  }
  out.push(encode([1, 2 ** 40, -5, -(2 ** 33), 0.5, null, true, false, [], new MsgMap([]), MsgMap.of([['k', [1, [2, [3]]]]])]));
  out.push(encode(new Array(70_000).fill(7)));
  return out;
}

test('finds every frame end however the stream is cut, reading only headers', () => {
  const all = frames();
  const stream = Buffer.concat(all);
  const ends: number[] = [];
  let at = 0;
  for (const f of all) ends.push((at += f.length));
  for (const cut of [1, 2, 3, 7, 4096, 65_536, 1_000_000]) {
    const tracker = createFrameTracker();
    const found: number[] = [];
    for (let pos = 0; pos < stream.length; pos += cut) {
      let chunk = stream.subarray(pos, Math.min(pos + cut, stream.length));
      let base = pos;
      for (;;) {
        const end = tracker.feed(chunk, true);
        if (end < 0) break;
        found.push(base + end);
        base += end;
        chunk = chunk.subarray(end);
      }
    }
    expect(found, `cut ${cut}`).toEqual(ends);
    expect(tracker.atBoundary).toBe(true);
    expect(tracker.valid).toBe(true);
  }
});

test('without untilBoundary it follows along, and knows when it stands between frames', () => {
  const [a, b] = frames();
  const tracker = createFrameTracker();
  expect(tracker.feed(Buffer.concat([a!, b!.subarray(0, 10)]))).toBe(-1);
  expect(tracker.atBoundary).toBe(false);
  tracker.feed(b!.subarray(10));
  expect(tracker.atBoundary).toBe(true);
});

test('a byte that starts no msgpack value makes boundaries unknown', () => {
  const tracker = createFrameTracker();
  tracker.feed(Buffer.from([0xc1, 0x01]));
  expect(tracker.valid).toBe(false);
});
