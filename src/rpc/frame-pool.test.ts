import { describe, expect, it } from 'vitest';

import { createFramePool } from './frame-pool.js';
import { createFrameSplitter } from './frame-splitter.js';
import { SERVER_LIMITS, encode } from './msgpack.js';

describe('createFramePool', () => {
  it('gives a buffer back only once it is retired and every frame handed out of it is released', () => {
    const pool = createFramePool();
    const buf = pool.take(3 << 20);
    expect(buf.length).toBe(4 << 20);
    const a = buf.subarray(0, 100);
    const b = buf.subarray(100, 2 << 20);
    pool.handOut(a);
    pool.handOut(b);
    pool.release(a);
    pool.retire(buf);
    expect(pool.take(3 << 20).buffer).not.toBe(buf.buffer); // b is still held
    pool.release(b);
    expect(pool.take(3 << 20).buffer).toBe(buf.buffer);
    expect(pool.stats).toEqual({ allocated: 2, reused: 1 });
  });

  it('keeps a buffer the splitter still writes into, and one whose frame is never released', () => {
    const pool = createFramePool();
    const writing = pool.take(1 << 20);
    expect(pool.take(1 << 20).buffer).not.toBe(writing.buffer);
    const kept = pool.take(1 << 20);
    pool.handOut(kept.subarray(0, 10));
    pool.retire(kept);
    expect(pool.take(1 << 20).buffer).not.toBe(kept.buffer);
  });

  it('counts a second release, or a stale one after the buffer was reused, for nothing', () => {
    const pool = createFramePool();
    const buf = pool.take(1 << 20);
    const old = buf.subarray(0, 1000);
    pool.handOut(old);
    pool.retire(buf);
    pool.release(old);
    pool.release(old);
    const again = pool.take(1 << 20);
    expect(again.buffer).toBe(buf.buffer);
    const current = again.subarray(0, 1000); // the same place as `old`
    pool.handOut(current);
    pool.retire(again);
    pool.release(old); // stale: must not free `current`'s buffer
    expect(pool.take(1 << 20).buffer).not.toBe(buf.buffer);
  });

  it('never takes in buffers it did not hand out, and does not pool huge ones', () => {
    const pool = createFramePool();
    const foreign = Buffer.allocUnsafeSlow(1 << 20);
    pool.handOut(foreign);
    pool.retire(foreign);
    pool.release(foreign);
    expect(pool.take(1 << 20).buffer).not.toBe(foreign.buffer);
    const huge = pool.take(40 << 20);
    pool.retire(huge);
    expect(pool.take(40 << 20).buffer).not.toBe(huge.buffer);
  });
});

describe('createFramePool, buffers of several sizes', () => {
  it('serves a request from the smallest idle buffer large enough', () => {
    const pool = createFramePool();
    const big = pool.take(7 << 20); // 8 MiB
    const mid = pool.take(3 << 20); // 4 MiB
    pool.retire(big);
    pool.retire(mid);
    expect(pool.take(1 << 20).buffer).toBe(mid.buffer);
    expect(pool.take(1 << 20).buffer).toBe(big.buffer);
    expect(pool.stats).toEqual({ allocated: 2, reused: 2 });
  });

  it('over the idle limit, lets the smallest idle buffers go and keeps the large ones', () => {
    const pool = createFramePool();
    const small = Array.from({ length: 8 }, () => pool.take(3 << 20)); // 8 x 4 MiB
    const large = [pool.take(9 << 20), pool.take(9 << 20)]; // 2 x 16 MiB
    for (const b of small) pool.retire(b);
    for (const b of large) pool.retire(b);
    // 64 MiB came back; 24 MiB stay idle: the larger buffers, which serve any later frame.
    const again = pool.take(9 << 20);
    expect(large.map((b) => b.buffer)).toContain(again.buffer);
    expect(pool.take(1 << 20).buffer).not.toBe(again.buffer);
  });

  it("shared by a writer and the splitter that reads its chunks: a buffer goes back only once the writer and the reader released the frame", () => {
    const pool = createFramePool();
    const splitter = createFrameSplitter(SERVER_LIMITS, pool);
    const message = encode([1, 5, 'put', [Buffer.alloc(300_000, 7)]]);
    /** The writer takes a buffer, writes its frame, hands it out and writes no more into it. */
    const write = (): { whole: Buffer; written: Buffer } => {
      const whole = pool.take(message.length);
      const written = whole.subarray(0, message.length);
      message.copy(written);
      pool.handOut(written);
      pool.retire(whole);
      return { whole, written };
    };
    const first = write();
    // The reader gets the chunk whole: its frame is a view of the writer's buffer, no copy.
    const [read] = splitter.push(first.written);
    expect(read!.buffer).toBe(first.whole.buffer);
    pool.release(read!); // the reader is done (the guard, once borg serve's pipe has it)
    expect(pool.take(message.length).buffer).not.toBe(first.whole.buffer); // the writer still holds it
    pool.release(first.written); // the writer is done (the proxy, once the reply came)
    expect(pool.take(message.length).buffer).toBe(first.whole.buffer);
    // In the other order just the same.
    const second = write();
    const [viewed] = splitter.push(second.written);
    pool.release(second.written);
    expect(pool.take(message.length).buffer).not.toBe(second.whole.buffer); // the reader still holds it
    pool.release(viewed!);
    expect(pool.take(message.length).buffer).toBe(second.whole.buffer);
  });
});
