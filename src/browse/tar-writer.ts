// A tar stream (POSIX ustar with pax extended headers) of archive items, written to a Node
// stream with backpressure: names and link targets as the archive stores them (raw bytes, so a
// non-UTF-8 name comes out as it went in), nanosecond mtimes, hardlinks as links to the first
// copy, symlinks, fifos and devices, files larger than 8 GiB. GNU tar and bsdtar read it.
// Sparse files are written whole (their holes as zeros). Never reads more than one chunk at a time.

import type { Writable } from 'node:stream';

const BLOCK = 512;

export type TarEntryType = 'file' | 'hardlink' | 'symlink' | 'chardev' | 'blockdev' | 'directory' | 'fifo';

export interface TarEntry {
  /** Path bytes (latin1 string: one char per byte), without a leading slash. */
  readonly path: string;
  readonly type: TarEntryType;
  /** Permission bits (and setuid/setgid/sticky). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly user: string | null;
  readonly group: string | null;
  readonly mtimeNs: bigint;
  /** Content size (files only). */
  readonly size: number;
  /** Link target bytes (latin1 string) for symlinks and hardlinks. */
  readonly linkTarget?: string;
  readonly rdev?: number | null;
}

const TYPEFLAG: Record<TarEntryType, string> = { file: '0', hardlink: '1', symlink: '2', chardev: '3', blockdev: '4', directory: '5', fifo: '6' };

/** An octal field of `width` bytes (digits, then NUL); null when the value does not fit. */
function octal(value: number, width: number): Buffer | null {
  const digits = value.toString(8);
  if (value < 0 || digits.length > width - 1) return null;
  return Buffer.from(`${digits.padStart(width - 1, '0')}\0`, 'latin1');
}

/** GNU's base-256 number: high bit set, big-endian value. */
function base256(value: number, width: number): Buffer {
  const out = Buffer.alloc(width);
  let v = BigInt(value);
  for (let i = width - 1; i > 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  out[0] = 0x80;
  return out;
}

function paxRecord(key: string, value: Buffer): Buffer {
  // "%d %s=%s\n", the length counting itself.
  const rest = Buffer.concat([Buffer.from(` ${key}=`, 'latin1'), value, Buffer.from('\n')]);
  let n = rest.length + 1;
  while (String(n).length + rest.length !== n) n = String(n).length + rest.length;
  return Buffer.concat([Buffer.from(String(n), 'latin1'), rest]);
}

function nsText(ns: bigint): string {
  const sign = ns < 0n ? '-' : '';
  const abs = ns < 0n ? -ns : ns;
  const sec = abs / 1_000_000_000n;
  const frac = abs % 1_000_000_000n;
  return frac === 0n ? `${sign}${sec}` : `${sign}${sec}.${frac.toString().padStart(9, '0').replace(/0+$/, '')}`;
}

function header(name: Buffer, e: { mode: number; uid: number; gid: number; size: number; mtimeSec: number; typeflag: string; link: Buffer; user: string; group: string; devmajor: number; devminor: number }): Buffer {
  const h = Buffer.alloc(BLOCK);
  name.copy(h, 0, 0, Math.min(100, name.length));
  (octal(e.mode & 0o7777, 8) ?? Buffer.alloc(8)).copy(h, 100);
  (octal(e.uid, 8) ?? base256(e.uid, 8)).copy(h, 108);
  (octal(e.gid, 8) ?? base256(e.gid, 8)).copy(h, 116);
  (octal(e.size, 12) ?? base256(e.size, 12)).copy(h, 124);
  (octal(Math.max(0, e.mtimeSec), 12) ?? base256(e.mtimeSec, 12)).copy(h, 136);
  h.write(e.typeflag, 156, 'latin1');
  e.link.copy(h, 157, 0, Math.min(100, e.link.length));
  h.write('ustar\u000000', 257, 'latin1');
  // At most 31 bytes each (a NUL ends them); longer names go into the pax header.
  h.write(e.user, 265, 31, 'utf8');
  h.write(e.group, 297, 31, 'utf8');
  (octal(e.devmajor, 8) ?? Buffer.alloc(8)).copy(h, 329);
  (octal(e.devminor, 8) ?? Buffer.alloc(8)).copy(h, 337);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  Buffer.from(`${sum.toString(8).padStart(6, '0')}\0 `, 'latin1').copy(h, 148);
  return h;
}

/** Linux's dev_t encoding (glibc gnu_dev_major/minor). */
const devMajor = (rdev: number): number => Number(((BigInt(rdev) >> 8n) & 0xfffn) | ((BigInt(rdev) >> 32n) & ~0xfffn));
const devMinor = (rdev: number): number => Number((BigInt(rdev) & 0xffn) | ((BigInt(rdev) >> 12n) & ~0xffn));

/**
 * Resolves when `out` takes more data; rejects when it fails or closes first (an HTTP client that
 * went away), so a writer never waits forever.
 */
export function drained(out: Writable): Promise<void> {
  if (out.destroyed) return Promise.reject(new Error('the receiver went away'));
  return new Promise<void>((resolve, reject) => {
    const done = (error?: Error) => {
      out.off('drain', onDrain);
      out.off('error', onError);
      out.off('close', onClose);
      if (error) reject(error);
      else resolve();
    };
    const onDrain = () => done();
    const onError = (error: Error) => done(error);
    const onClose = () => done(new Error('the receiver went away'));
    out.once('drain', onDrain);
    out.once('error', onError);
    out.once('close', onClose);
  });
}

export class TarWriter {
  private written = 0;

  constructor(private readonly out: Writable) {}

  /** Bytes written so far. */
  get bytes(): number {
    return this.written;
  }

  private async write(buf: Buffer): Promise<void> {
    if (buf.length === 0) return;
    this.written += buf.length;
    if (!this.out.write(buf)) await drained(this.out);
  }

  /** Writes an entry; a file's content follows from `content` (exactly e.size bytes). */
  async entry(e: TarEntry, content?: AsyncIterable<Buffer>): Promise<void> {
    const path = Buffer.from(e.type === 'directory' && !e.path.endsWith('/') ? `${e.path}/` : e.path, 'latin1');
    const link = Buffer.from(e.linkTarget ?? '', 'latin1');
    const records: Buffer[] = [];
    if (path.length > 100) records.push(paxRecord('path', path));
    if (link.length > 100) records.push(paxRecord('linkpath', link));
    const size = e.type === 'file' ? e.size : 0;
    if (octal(size, 12) === null) records.push(paxRecord('size', Buffer.from(String(size))));
    if (e.mtimeNs % 1_000_000_000n !== 0n || e.mtimeNs < 0n) records.push(paxRecord('mtime', Buffer.from(nsText(e.mtimeNs))));
    if (octal(e.uid, 8) === null) records.push(paxRecord('uid', Buffer.from(String(e.uid))));
    if (octal(e.gid, 8) === null) records.push(paxRecord('gid', Buffer.from(String(e.gid))));
    if (e.user && Buffer.byteLength(e.user) > 31) records.push(paxRecord('uname', Buffer.from(e.user)));
    if (e.group && Buffer.byteLength(e.group) > 31) records.push(paxRecord('gname', Buffer.from(e.group)));
    const mtimeSec = Number(e.mtimeNs / 1_000_000_000n);
    if (records.length > 0) {
      const body = Buffer.concat(records);
      await this.write(header(Buffer.from('././@PaxHeader', 'latin1'), { mode: 0o644, uid: 0, gid: 0, size: body.length, mtimeSec: Math.max(0, mtimeSec), typeflag: 'x', link: Buffer.alloc(0), user: '', group: '', devmajor: 0, devminor: 0 }));
      await this.write(body);
      await this.pad(body.length);
    }
    const rdev = e.rdev ?? 0;
    const dev = e.type === 'chardev' || e.type === 'blockdev';
    await this.write(
      header(path, {
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        size,
        mtimeSec,
        typeflag: TYPEFLAG[e.type],
        link,
        user: e.user ?? '',
        group: e.group ?? '',
        devmajor: dev ? devMajor(rdev) : 0,
        devminor: dev ? devMinor(rdev) : 0,
      }),
    );
    if (e.type !== 'file') return;
    let got = 0;
    if (content) {
      for await (const part of content) {
        got += part.length;
        if (got > size) throw new Error('a file holds more bytes than its size says');
        await this.write(part);
      }
    }
    if (got !== size) throw new Error('a file holds fewer bytes than its size says');
    await this.pad(size);
  }

  private async pad(n: number): Promise<void> {
    const rest = n % BLOCK;
    if (rest !== 0) await this.write(Buffer.alloc(BLOCK - rest));
  }

  /** The two zero blocks that end an archive. */
  async finish(): Promise<void> {
    await this.write(Buffer.alloc(2 * BLOCK));
  }
}
