// Buffers for the frames of one input, used again once nothing refers to them.
//
// A backup sends its data as `put` frames of about 2 MiB each. A fresh buffer per frame costs the
// guard twice over: the kernel faults in and zeroes every page of it as the read fills it, and
// V8 counts the buffers as external memory and collects garbage ever more often to free them
// (issue 14's figures: 17-36 collections and ~150 000 page faults per GiB). Here a buffer the
// splitter no longer writes into goes back to a small free list once every frame handed out of it
// has been released, and the next large frame is read into it.
//
// Reusing memory is only safe if nothing still reads it. The rule: a frame is released only by
// the one holder that knows it keeps no view of it (the guard, once borg serve's pipe has taken a
// forwarded `put`); a frame never released simply keeps its buffer out of the pool, and the
// garbage collector frees it as before. A release is counted per handed-out frame object, so
// releasing one twice, or releasing a stale frame after its buffer was reused, changes nothing.
// Buffers this pool did not hand out are never taken in.

/** The smallest buffer the pool hands out; smaller requests get this much. */
const MIN_SIZE = 256 * 1024;
/** Larger requests are not pooled (a rare huge frame should not stay in memory). */
const MAX_SIZE = 32 * 1024 * 1024;
/** Idle bytes kept at most; buffers beyond this are left to the garbage collector. */
const MAX_IDLE_BYTES = 24 * 1024 * 1024;

export interface FramePool {
  /** A buffer of at least `size` bytes: a free one of the right size class, or a new one. */
  take(size: number): Buffer;
  /** The frame `frame` (a view of a buffer from take()) is handed out to a holder. */
  handOut(frame: Buffer): void;
  /** The splitter writes no more into `buf`: free once its handed-out frames are released. */
  retire(buf: Buffer): void;
  /** The holder of `frame` keeps no view of it any more. */
  release(frame: Buffer): void;
  /** Buffers allocated and buffers reused so far (for tests and benchmarks). */
  readonly stats: { readonly allocated: number; readonly reused: number };
}

interface Owned {
  /** How many handed-out frames are not yet released. */
  out: number;
  retired: boolean;
  readonly whole: Buffer;
}

/** The size class of a request: the next power of two from MIN_SIZE. */
function sizeClass(size: number): number {
  let c = MIN_SIZE;
  while (c < size) c *= 2;
  return c;
}

export function createFramePool(): FramePool {
  /** The buffers taken and not yet back, by their memory; and each handed-out frame's buffer. */
  const owned = new WeakMap<ArrayBufferLike, Owned>();
  const frames = new WeakMap<Buffer, Owned>();
  /** Idle buffers, smallest first. */
  const idle: Buffer[] = [];
  let idleBytes = 0;
  const stats = { allocated: 0, reused: 0 };

  // Frames vary from a few bytes to 8 MiB (borg's chunker), so buffers of every size class come
  // back. Any idle buffer large enough serves a request (the smallest such), and beyond the idle
  // limit the smallest idle buffers go first: the large ones serve every later request, a pool
  // full of small ones would make every large frame land in fresh memory.
  const giveBack = (o: Owned): void => {
    owned.delete(o.whole.buffer);
    let at = idle.findIndex((b) => b.length >= o.whole.length);
    if (at < 0) at = idle.length;
    idle.splice(at, 0, o.whole);
    idleBytes += o.whole.length;
    while (idleBytes > MAX_IDLE_BYTES) idleBytes -= idle.shift()!.length;
  };

  return {
    stats,
    take(size: number): Buffer {
      if (size > MAX_SIZE) return Buffer.allocUnsafeSlow(size);
      const at = idle.findIndex((b) => b.length >= size);
      let whole: Buffer;
      if (at >= 0) {
        whole = idle.splice(at, 1)[0];
        idleBytes -= whole.length;
        stats.reused++;
      } else {
        // Slow: a buffer of its own (never a slice of Node's shared pool), whose `.buffer` names it.
        whole = Buffer.allocUnsafeSlow(sizeClass(size));
        stats.allocated++;
      }
      owned.set(whole.buffer, { out: 0, retired: false, whole });
      return whole;
    },
    handOut(frame: Buffer): void {
      const o = owned.get(frame.buffer);
      if (!o || frames.has(frame)) return;
      frames.set(frame, o);
      o.out++;
    },
    retire(buf: Buffer): void {
      const o = owned.get(buf.buffer);
      if (!o || o.retired) return;
      o.retired = true;
      if (o.out === 0) giveBack(o);
    },
    release(frame: Buffer): void {
      const o = frames.get(frame);
      if (!o) return;
      frames.delete(frame);
      o.out--;
      if (o.retired && o.out === 0) giveBack(o);
    },
  };
}
