// Splits a byte stream into complete msgpack frames without re-encoding them.
//
// A frame comes out as one contiguous Buffer. Bytes that arrive while a frame is incomplete go
// into a buffer of the splitter's own, sized for the whole frame as soon as its header tells how
// long it is, so a 20 MiB put costs at most one copy and no rescan per 64 KiB chunk. A reader
// that can choose where its bytes land (a pipe read with `onread`, see frame-input.ts) asks
// `target()` for that place and the bytes are never copied at all: a put's data goes from the
// kernel into the frame it belongs to. Frames already handed out are never written again: the
// splitter only writes behind everything it handed out, and starts a fresh buffer when one is
// full, so a frame stays valid for as long as its holder keeps it.
//
// A frame that breaks the limits is reported before any of it is handed out: the caller never
// forwards a byte of it.

import type { FramePool } from './frame-pool.js';
import { FrameError, scanFrame, type UnpackLimits } from './msgpack.js';

export interface FrameSplitter {
  /** Adds bytes; returns the frames completed by them, in order. Throws FrameError on a bad frame. */
  push(chunk: Buffer): Buffer[];
  /**
   * Where the next bytes should go for `push` to take them without a copy: a reader that fills
   * (a prefix of) this and then pushes exactly that prefix costs nothing. Valid until the next
   * `push` or `target` call.
   */
  target(): Buffer;
  /** Bytes held that are not yet part of a complete frame. */
  readonly pendingBytes: number;
}

/** A fresh buffer holds at least this much, so small frames share one and reads are not tiny. */
const MIN_BUFFER = 256 * 1024;
/** Below this much room behind the pending bytes, the next target starts a fresh buffer. */
const MIN_TARGET = 64 * 1024;

/**
 * `pool`: where the splitter's own buffers come from and go back to (frame-pool.ts); without one,
 * every buffer is new and left to the garbage collector.
 */
export function createFrameSplitter(limits: UnpackLimits, pool?: FramePool): FrameSplitter {
  let buf: Buffer = Buffer.alloc(0);
  let start = 0; // the incomplete frame's first byte in buf
  let end = 0; // one past the last byte held
  let need = 1; // bytes from `start` the next scan needs before it can make progress

  /** Moves the pending bytes into a fresh buffer with room for `room` bytes in all (from start). */
  const regrow = (room: number): void => {
    const held = end - start;
    const size = Math.max(room, held + MIN_TARGET, MIN_BUFFER);
    const next = pool ? pool.take(size) : Buffer.allocUnsafe(size);
    buf.copy(next, 0, start, end);
    pool?.retire(buf);
    buf = next;
    start = 0;
    end = held;
  };

  /** Hands out the complete frames at `start`; leaves the incomplete rest pending. */
  const scan = (frames: Buffer[]): void => {
    while (end - start >= need) {
      const view = buf.subarray(start, end);
      const r = scanFrame(view, 0, limits);
      if (r.kind === 'invalid') throw new FrameError(r.reason);
      if (r.kind === 'incomplete') {
        need = r.need;
        return;
      }
      const frame = view.subarray(0, r.end);
      pool?.handOut(frame);
      frames.push(frame);
      start += r.end;
      need = 1;
    }
  };

  /** The frames wholly inside `chunk` straight from it (no copy); returns where the rest starts. */
  const scanChunk = (chunk: Buffer, frames: Buffer[]): number => {
    let at = 0;
    while (at < chunk.length) {
      const r = scanFrame(chunk, at, limits);
      if (r.kind === 'invalid') throw new FrameError(r.reason);
      if (r.kind === 'incomplete') {
        need = r.need - at;
        break;
      }
      const frame = chunk.subarray(at, r.end);
      // A chunk from the pool's own buffers (a writer that took them from it, pull-proxy.ts): the
      // frame counts as handed out, so the buffer is reused only once its reader released it too.
      pool?.handOut(frame);
      frames.push(frame);
      at = r.end;
      need = 1;
    }
    return at;
  };

  return {
    get pendingBytes() {
      return end - start;
    },
    target(): Buffer {
      const held = end - start;
      // A frame whose length is known gets a buffer of exactly its size; the read stops at its end.
      if (need > held) {
        if (start + need > buf.length) regrow(need);
        if (need - held >= MIN_TARGET || buf.length - end < MIN_TARGET) return buf.subarray(end, start + need);
      }
      if (buf.length - end < MIN_TARGET) regrow(held + MIN_TARGET);
      return buf.subarray(end);
    },
    push(chunk: Buffer): Buffer[] {
      if (chunk.length === 0) return [];
      const frames: Buffer[] = [];
      if (chunk.buffer === buf.buffer && chunk.byteOffset === buf.byteOffset + end && end + chunk.length <= buf.length) {
        end += chunk.length; // read straight into target(): nothing to copy
      } else if (end === start) {
        // Nothing pending: the frames wholly inside the chunk are views of it; only the rest is kept.
        const at = scanChunk(chunk, frames);
        if (at === chunk.length) return frames;
        const rest = chunk.subarray(at);
        start = end = 0;
        pool?.retire(buf);
        buf = Buffer.alloc(0);
        regrow(Math.max(need, rest.length));
        end = rest.copy(buf, 0);
        return frames;
      } else {
        if (end + chunk.length > buf.length) regrow(Math.max(need, end - start + chunk.length));
        end += chunk.copy(buf, end);
      }
      scan(frames);
      if (start === end && buf.length - end < MIN_TARGET) {
        pool?.retire(buf);
        buf = Buffer.alloc(0);
        start = end = 0;
      }
      return frames;
    },
  };
}
