// Keeps the database's pages in the kernel's page cache while `borgkeep serve` runs. The store
// reads SQLite synchronously on the server's one thread, so a query that meets pages the kernel
// dropped waits for the disk with every request and session behind it. Machines that reclaim
// memory ahead of need drop exactly such pages: a VM with a DAMON `pageout` scheme drops any
// file page untouched for a minute (the machine the API benchmark runs on does), a host under
// memory pressure the least recently used. The dashboard and the alert rules touch rows of
// every repository only now and then, so their pages go first; the benchmark's rare 0.1-0.7 s
// stalls came from there, and were gone with the database read now and then.
//
// SQLite's own page cache cannot hold them: in WAL mode it is emptied whenever another process
// (a backup session's forced command) commits. So the files are read through, a slice at a time
// on libuv's thread pool (never on the event loop), which marks their pages used. Bounded: a
// database larger than the limit is not read (the limit is serve's databaseKeepWarmMiB).

import { open, stat } from 'node:fs/promises';

const SLICE = 1024 * 1024;

export interface KeepWarmOptions {
  /** The files to keep cached (the database and its WAL). */
  readonly files: readonly string[];
  /** How often each file is read through; below the age at which reclaim drops a page. */
  readonly everyMs?: number;
  /** Files larger than this together are not read (0: never read). */
  readonly maxBytes: number;
  /** Told once when the files are too large to be kept warm. */
  readonly onTooLarge?: (bytes: number) => void;
}

/** Reads `path` through in slices; its size, or 0 when it is missing. */
async function readThrough(path: string, buffer: Buffer, limit: number): Promise<number> {
  let file;
  try {
    file = await open(path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw error;
  }
  try {
    let position = 0;
    for (;;) {
      if (position >= limit) return position;
      const { bytesRead } = await file.read(buffer, 0, buffer.length, position);
      if (bytesRead === 0) return position;
      position += bytesRead;
    }
  } finally {
    await file.close();
  }
}

/** One pass over the files; the bytes read. Stops at `maxBytes` in all. */
export async function warmOnce(files: readonly string[], maxBytes: number, buffer: Buffer = Buffer.allocUnsafe(SLICE)): Promise<number> {
  let total = 0;
  for (const f of files) total += await readThrough(f, buffer, maxBytes - total);
  return total;
}

/** Starts keeping the files warm; returns the function that stops it. Its timer never keeps a process alive. */
export function keepWarm(opts: KeepWarmOptions): () => void {
  const everyMs = opts.everyMs ?? 30_000;
  if (opts.maxBytes <= 0) return () => {};
  const buffer = Buffer.allocUnsafe(SLICE);
  let stopped = false;
  let told = false;
  let timer: NodeJS.Timeout | null = null;
  const pass = async (): Promise<void> => {
    try {
      let size = 0;
      for (const f of opts.files) size += await stat(f).then((s) => s.size, () => 0);
      if (size > opts.maxBytes) {
        if (!told) opts.onTooLarge?.(size);
        told = true;
      } else await warmOnce(opts.files, opts.maxBytes, buffer);
    } catch {
      // A file that vanished or cannot be read: tried again next time; nothing depends on it.
    }
    if (!stopped) {
      timer = setTimeout(() => void pass(), everyMs);
      timer.unref();
    }
  };
  void pass();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}
