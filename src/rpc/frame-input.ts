// The client's byte stream as a queue of complete frames, read with as little work per byte as
// Node allows: the guard's cost per GiB is mostly here.
//
// From a pipe or socket file descriptor (sshd's forced command: stdin), bytes are read with
// net.Socket's `onread` straight into the frame splitter's own buffer (frame-splitter.ts
// `target()`): no buffer per read, no copy, no stream machinery per chunk. From any other stream
// (the embedded gateway's SSH channel), chunks are pushed as they come. Either way a bounded
// number of bytes waits in the queue: reading pauses above HIGH_WATER and resumes when the guard
// has taken what was queued, so a client cannot make the guard buffer more than one frame ahead.
//
// A bad frame ends reading: the frames before it are still handed out, then `next()` rejects with
// the FrameError, and no byte of the bad frame ever leaves here.

import { fstatSync } from 'node:fs';
import { Socket } from 'node:net';
import type { Readable } from 'node:stream';

import { createFramePool, type FramePool } from './frame-pool.js';
import { createFrameSplitter } from './frame-splitter.js';
import type { UnpackLimits } from './msgpack.js';

/** A file descriptor to read directly, or a stream. */
export type FrameSource = Readable | { readonly fd: number };

export interface FrameInput {
  /** The next complete frame; null at the end of the input or once reading stopped. */
  next(): Promise<Buffer | null>;
  /** Bytes read that are not yet part of a complete frame. */
  readonly pendingBytes: number;
  /** Stops reading (destroying the source when `destroyOnStop`); a waiting `next()` gets null. */
  stop(): void;
  /**
   * The caller keeps no view of `frame` (one `next()` gave it) any more: its memory may be read
   * into again (frame-pool.ts). Only for a frame nothing else refers to; never releasing is safe.
   */
  release(frame: Buffer): void;
}

export interface FrameInputOptions {
  /** Told the size of every read, as it happens. */
  readonly onBytes?: (n: number) => void;
  /** Whether stop() destroys the source (not for a duplex whose other side still sends replies). */
  readonly destroyOnStop: boolean;
  /**
   * The pool the frames are read into; by default one of this input's own. A writer in this
   * process may share its pool: frames of the buffers it took from it are released here too.
   */
  readonly pool?: FramePool;
}

/** Bytes of complete frames queued before reading pauses (a frame larger than this still fits). */
const HIGH_WATER = 4 * 1024 * 1024;

/** A pipe or socket can be read with `onread`; a file or terminal cannot. */
export function readableFd(fd: number): boolean {
  try {
    const st = fstatSync(fd);
    return st.isFIFO() || st.isSocket();
  } catch {
    return false;
  }
}

export function readFrames(source: FrameSource, limits: UnpackLimits, opts: FrameInputOptions): FrameInput {
  const pool = opts.pool ?? createFramePool();
  const splitter = createFrameSplitter(limits, pool);
  const queue: Buffer[] = [];
  let head = 0;
  let queued = 0;
  let ended = false;
  let stopped = false;
  let failure: Error | null = null;
  let waiter: { resolve: (b: Buffer | null) => void; reject: (e: Error) => void } | null = null;
  let paused = false;

  const settle = (): void => {
    if (!waiter) return;
    const w = waiter;
    if (head < queue.length) {
      waiter = null;
      const frame = queue[head];
      queue[head++] = EMPTY;
      queued -= frame.length;
      if (head === queue.length) {
        queue.length = 0;
        head = 0;
      }
      if (paused && queued < HIGH_WATER && !failure && !stopped) {
        paused = false;
        resume();
      }
      w.resolve(frame);
    } else if (stopped) {
      waiter = null;
      w.resolve(null);
    } else if (failure) {
      waiter = null;
      w.reject(failure);
    } else if (ended) {
      waiter = null;
      w.resolve(null);
    }
  };

  /** Takes bytes just read; false when reading should pause. */
  const take = (chunk: Buffer): boolean => {
    if (stopped || failure) return false;
    opts.onBytes?.(chunk.length);
    let frames: Buffer[];
    try {
      frames = splitter.push(chunk);
    } catch (e) {
      failure = e as Error;
      settle();
      return false;
    }
    for (const f of frames) {
      queue.push(f);
      queued += f.length;
    }
    if (frames.length > 0) settle();
    if (queued >= HIGH_WATER) {
      paused = true;
      return false;
    }
    return true;
  };
  const onEnd = (): void => {
    ended = true;
    settle();
  };
  const onError = (e: Error): void => {
    failure ??= e;
    settle();
  };

  let resume: () => void;
  let halt: () => void;
  if ('fd' in source) {
    // `onread` is in Node's net.Socket options since v12, not in @types/node's constructor type.
    const socket = new Socket({
      fd: source.fd,
      readable: true,
      writable: false,
      onread: {
        buffer: () => splitter.target(),
        callback: (n: number, buf: Uint8Array) => {
          if (take((buf as Buffer).subarray(0, n))) return true;
          socket.pause();
          return false;
        },
      },
    } as ConstructorParameters<typeof Socket>[0]);
    socket.on('end', onEnd);
    socket.on('error', onError);
    socket.on('close', onEnd);
    resume = () => socket.resume();
    halt = () => socket.destroy();
  } else {
    const onData = (chunk: Buffer): void => {
      if (!take(chunk)) source.pause();
    };
    source.on('data', onData);
    source.on('end', onEnd);
    source.on('error', onError);
    source.on('close', onEnd);
    // A front-end that read ahead and put the bytes back (gateway/node-router.ts) left it paused.
    source.resume();
    resume = () => source.resume();
    halt = () => {
      source.off('data', onData);
      source.pause();
      if (opts.destroyOnStop && !source.readableEnded) source.destroy();
    };
  }

  return {
    get pendingBytes() {
      return splitter.pendingBytes;
    },
    next(): Promise<Buffer | null> {
      return new Promise<Buffer | null>((resolve, reject) => {
        waiter = { resolve, reject };
        settle();
      });
    },
    release(frame: Buffer): void {
      pool.release(frame);
    },
    stop(): void {
      if (stopped) return;
      stopped = true;
      halt();
      settle();
    },
  };
}

const EMPTY = Buffer.alloc(0);
