// Follows where msgpack frames end in a byte stream without keeping any of it: only each value's
// header is read, payloads are skipped by count. A gateway passing a session's bytes through to a
// storage node uses it to know the frame boundaries at no cost per payload byte, so that when the
// node goes away it can answer the client's further calls (node-router.ts), which it can only do
// from the start of a frame.

/** Bytes of the header a type byte starts (the type byte included), and the payload length it names. */
function headerLength(type: number): number {
  if (type <= 0x7f || type >= 0xe0 || (type >= 0x80 && type <= 0xbf) || type === 0xc0 || type === 0xc2 || type === 0xc3) return 1;
  switch (type) {
    case 0xc4: case 0xc7: case 0xcc: case 0xd0: case 0xd9: return 2;
    case 0xc5: case 0xcd: case 0xd1: case 0xda: case 0xdc: case 0xde: return 3;
    case 0xc8: return 4;
    case 0xc6: case 0xca: case 0xce: case 0xd2: case 0xdb: case 0xdd: case 0xdf: return 5;
    case 0xc9: return 6;
    case 0xcb: case 0xcf: case 0xd3: return 9;
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: return 2;
    default: return 0; // 0xc1: never used
  }
}

export interface FrameTracker {
  /**
   * Follows `chunk`. With `untilBoundary`, stops at the first end of a frame in it and returns the
   * offset just past it; otherwise (or when no frame ends in it) returns -1.
   */
  feed(chunk: Buffer, untilBoundary?: boolean): number;
  /** Whether the bytes so far end exactly at the end of a frame. */
  readonly atBoundary: boolean;
  /** False once a byte that starts no msgpack value was seen: boundaries are unknown from then on. */
  readonly valid: boolean;
}

export function createFrameTracker(): FrameTracker {
  /** Values still owed per open container; empty between frames. */
  const owed: number[] = [];
  let skip = 0;
  let carry: Buffer | null = null;
  let valid = true;

  /** A value completed: true when that ended the frame. */
  const completed = (): boolean => {
    for (;;) {
      const last = owed.length - 1;
      if (last < 0) return true;
      if (--owed[last]! > 0) return false;
      owed.pop();
      if (owed.length === 0) return true;
    }
  };

  /** Reads the value header in `h` (complete); what follows it. */
  const header = (h: Buffer): { payload: number; children: number } => {
    const t = h[0]!;
    if (t >= 0x80 && t <= 0x8f) return { payload: 0, children: 2 * (t & 0x0f) };
    if (t >= 0x90 && t <= 0x9f) return { payload: 0, children: t & 0x0f };
    if (t >= 0xa0 && t <= 0xbf) return { payload: t & 0x1f, children: 0 };
    switch (t) {
      case 0xc4: case 0xd9: return { payload: h[1]!, children: 0 };
      case 0xc5: case 0xda: return { payload: h.readUInt16BE(1), children: 0 };
      case 0xc6: case 0xdb: return { payload: h.readUInt32BE(1), children: 0 };
      case 0xc7: return { payload: h[1]! + 1, children: 0 };
      case 0xc8: return { payload: h.readUInt16BE(1) + 1, children: 0 };
      case 0xc9: return { payload: h.readUInt32BE(1) + 1, children: 0 };
      case 0xd4: return { payload: 1, children: 0 };
      case 0xd5: return { payload: 2, children: 0 };
      case 0xd6: return { payload: 4, children: 0 };
      case 0xd7: return { payload: 8, children: 0 };
      case 0xd8: return { payload: 16, children: 0 };
      case 0xdc: return { payload: 0, children: h.readUInt16BE(1) };
      case 0xdd: return { payload: 0, children: h.readUInt32BE(1) };
      case 0xde: return { payload: 0, children: 2 * h.readUInt16BE(1) };
      case 0xdf: return { payload: 0, children: 2 * h.readUInt32BE(1) };
      default: return { payload: 0, children: 0 }; // numbers, nil, booleans: all in the header
    }
  };

  return {
    feed(chunk, untilBoundary = false) {
      let pos = 0;
      while (pos < chunk.length && valid) {
        if (skip > 0) {
          const n = Math.min(skip, chunk.length - pos);
          skip -= n;
          pos += n;
          if (skip === 0 && completed() && untilBoundary) return pos;
          continue;
        }
        // A value's header, perhaps begun in the previous chunk.
        const first = carry ? carry[0]! : chunk[pos]!;
        const length = headerLength(first);
        if (length === 0) {
          valid = false;
          break;
        }
        const have = carry ? carry.length : 0;
        const take = Math.min(length - have, chunk.length - pos);
        if (have + take < length) {
          carry = Buffer.concat([carry ?? Buffer.alloc(0), chunk.subarray(pos, pos + take)]);
          pos += take;
          break;
        }
        const h = carry ? Buffer.concat([carry, chunk.subarray(pos, pos + take)]) : chunk.subarray(pos, pos + length);
        carry = null;
        pos += take;
        if (owed.length === 0) owed.push(1); // a new frame
        const { payload, children } = header(h);
        if (children > 0) owed.push(children);
        else if (payload > 0) skip = payload;
        else if (completed() && untilBoundary) return pos;
      }
      return -1;
    },
    get atBoundary() {
      return owed.length === 0 && skip === 0 && carry === null;
    },
    get valid() {
      return valid;
    },
  };
}
