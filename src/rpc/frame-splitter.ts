// Splits a byte stream into complete msgpack frames without re-encoding them.
//
// Chunks are kept as they arrive; they are joined only once enough bytes are buffered for the
// scan to make progress (scanFrame tells how many), so a 20 MiB put costs one copy, not one
// rescan per 64 KiB chunk. A frame that breaks the limits is reported before any of it is
// handed out: the caller never forwards a byte of it.

import { FrameError, scanFrame, type UnpackLimits } from './msgpack.js';

export interface FrameSplitter {
  /** Adds bytes; returns the frames completed by them, in order. Throws FrameError on a bad frame. */
  push(chunk: Buffer): Buffer[];
  /** Bytes held that are not yet part of a complete frame. */
  readonly pendingBytes: number;
}

export function createFrameSplitter(limits: UnpackLimits): FrameSplitter {
  let chunks: Buffer[] = [];
  let pending = 0;
  let need = 1;

  function join(): Buffer {
    if (chunks.length !== 1) chunks = [Buffer.concat(chunks, pending)];
    return chunks[0];
  }

  return {
    get pendingBytes() {
      return pending;
    },
    push(chunk: Buffer): Buffer[] {
      if (chunk.length === 0) return [];
      chunks.push(chunk);
      pending += chunk.length;
      const frames: Buffer[] = [];
      while (pending >= need) {
        const buf = join();
        const r = scanFrame(buf, 0, limits);
        if (r.kind === 'invalid') throw new FrameError(r.reason);
        if (r.kind === 'incomplete') {
          need = r.need;
          break;
        }
        frames.push(buf.subarray(0, r.end));
        const rest = buf.subarray(r.end);
        chunks = rest.length > 0 ? [rest] : [];
        pending = rest.length;
        need = 1;
      }
      return frames;
    },
  };
}
