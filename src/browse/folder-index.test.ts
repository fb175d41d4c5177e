// The folder index's listings against listFolder's on synthetic item streams that borg's client
// rarely or never writes but a repository may hold: the same path twice (a file, then a folder of
// that path; a file twice), names whose bytes are not UTF-8 and names that read alike when typed,
// hardlinks whose first copy comes later or not at all, items deeper than any folder item, empty
// archives. Seeded, so a failure repeats. The real-archive comparison is test/browse/folder-index.test.ts.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync, inflateSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';

import { MsgMap } from '../rpc/msgpack.js';
import type { ArchiveItem, ArchiveReader } from './archive-reader.js';
import { listFolder, typedForm } from './browse.js';
import { adler32, adler32Combine, createFolderIndexes, deflatedAnswer } from './folder-index.js';
import type { ObjectReader } from './object-reader.js';

const dir = mkdtempSync(join(tmpdir(), 'folder-index-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, 'config'), `[repository]\nversion = 1\nsegments_per_dir = 1000\nid = ${'ab'.repeat(32)}\n`);
// No archive in the "manifest": nothing for the index to drop.
const objects = { transactionId: 1, manifest: { archivesBody: Buffer.alloc(0) } } as unknown as ObjectReader;

function item(path: Buffer, kind: 'file' | 'dir' | 'symlink' | 'hardlink' | 'fifo', extra: Partial<ArchiveItem> = {}): ArchiveItem {
  const mode = { file: 0o100644, dir: 0o040755, symlink: 0o120777, hardlink: 0o100644, fifo: 0o010644 }[kind];
  return {
    path,
    mode,
    uid: 1000,
    gid: 100,
    user: 'u',
    group: null,
    mtimeNs: 1_700_000_000_123_456_789n,
    atimeNs: null,
    ctimeNs: null,
    size: kind === 'file' ? path.length * 7 : null,
    chunks: kind === 'file' ? [] : null,
    source: kind === 'symlink' ? Buffer.from('../target\xff', 'latin1') : null,
    hardlinkMaster: false,
    rdev: null,
    part: null,
    raw: new MsgMap(),
    ...extra,
  };
}

const archiveOf = (id: string, items: ArchiveItem[]): ArchiveReader => ({
  info: { name: `archive-${id}`, id, time: '', timeEnd: null, hostname: null, username: null, cmdline: [], comment: null, chunkerParams: null, stats: null, itemsChunkIds: [], tam: 'unchecked' },
  async *items() {
    yield* items;
  },
});

/** A small deterministic PRNG (mulberry32). */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Names that collide when typed: 'x\xff', 'x\xfe' and 'x' + U+FFFD all read 'x\ufffd'; 'é' as UTF-8.
const NAMES = ['a', 'b', 'x\xff', 'x\xfe', 'x\xef\xbf\xbd', '\xc3\xa9', 'z.txt', 'a b'].map((n) => Buffer.from(n, 'latin1'));

function randomArchive(seed: number): ArchiveItem[] {
  const r = prng(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)]!;
  const items: ArchiveItem[] = [];
  const files: Buffer[] = [];
  const n = 5 + Math.floor(r() * 60);
  for (let i = 0; i < n; i++) {
    const depth = 1 + Math.floor(r() * 4);
    const parts = Array.from({ length: depth }, () => pick(NAMES));
    const path = Buffer.concat(parts.flatMap((p, j) => (j === 0 ? [p] : [Buffer.from('/'), p])));
    const roll = r();
    if (roll < 0.25) items.push(item(path, 'dir'));
    else if (roll < 0.35) items.push(item(path, 'symlink'));
    else if (roll < 0.4) items.push(item(path, 'fifo'));
    else if (roll < 0.55 && files.length > 0) items.push(item(path, 'hardlink', { source: pick(files) }));
    else if (roll < 0.6) items.push(item(path, 'hardlink', { source: Buffer.from('not/there') }));
    else {
      const master = r() < 0.3;
      items.push(item(path, 'file', { hardlinkMaster: master, size: Math.floor(r() * 1e6) }));
      if (master) files.push(path);
    }
    // The same path again, now and then (a file then a folder, or twice).
    if (r() < 0.1) items.push(item(path, pick(['file', 'dir'] as const), { mtimeNs: BigInt(i) }));
  }
  return items;
}

function pathsOf(items: ArchiveItem[]): string[] {
  const paths = new Set<string>(['', 'nope', 'a/nope']);
  for (const i of items) {
    const parts = typedForm(i.path.toString('latin1')).split('/');
    for (let k = 1; k <= parts.length; k++) paths.add(parts.slice(0, k).join('/'));
  }
  return [...paths];
}

const settle = <T>(p: Promise<T>): Promise<{ ok: T } | { error: string }> => p.then((ok) => ({ ok }), (e: Error) => ({ error: `${e.name}: ${e.message}` }));

describe('the folder index on synthetic archives', () => {
  it('lists what listFolder lists for every path of 150 seeded archives, and of an empty one', async () => {
    const indexes = createFolderIndexes(join(dir, 'index'));
    for (let seed = 0; seed < 150; seed++) {
      const items = randomArchive(seed);
      const archive = archiveOf(seed.toString(16).padStart(64, '0'), items);
      const source = { repositoryPath: dir, objects, archive };
      for (const p of pathsOf(items)) {
        expect(await settle(indexes.listing(source, p)), `seed ${seed}, '${p}'`).toEqual(await settle(listFolder(archive, p)));
      }
    }
    const empty = archiveOf('f'.repeat(64), []);
    for (const p of ['', 'a']) expect(await settle(indexes.listing({ repositoryPath: dir, objects, archive: empty }, p))).toEqual(await settle(listFolder(empty, p)));
    expect(indexes.builds).toBe(151);
  });

  it('a file, then a folder of the same path: the path still lists the file, its parent the folder', async () => {
    const indexes = createFolderIndexes(join(dir, 'twice'));
    const items = [item(Buffer.from('d'), 'dir'), item(Buffer.from('d/p'), 'file', { size: 5 }), item(Buffer.from('d/p'), 'dir'), item(Buffer.from('d/p/q'), 'file')];
    const archive = archiveOf('e'.repeat(64), items);
    const source = { repositoryPath: dir, objects, archive };
    for (const p of ['d', 'd/p', 'd/p/q']) expect(await indexes.listing(source, p)).toEqual(await listFolder(archive, p));
    expect((await indexes.listing(source, 'd/p')).entries).toMatchObject([{ type: 'file', size: 5 }]);
    expect((await indexes.listing(source, 'd')).entries).toMatchObject([{ type: 'directory', name: 'p' }]);
  });
});

describe('the answer as a zlib stream without inflating the entries', () => {
  it("Adler-32 and its combination are zlib's", () => {
    for (const data of [Buffer.alloc(0), Buffer.from('a'), randomBytes(100_000), Buffer.alloc(70_000, 0xff)]) {
      expect(adler32(data)).toBe(deflateSync(data).readUInt32BE(deflateSync(data).length - 4));
      const cut = Math.floor(data.length / 3);
      expect(adler32Combine(adler32(data.subarray(0, cut)), adler32(data.subarray(cut)), data.length - cut)).toBe(adler32(data));
    }
  });

  it("a listing's stored entries between a prefix and a suffix inflate to the whole answer", async () => {
    const indexes = createFolderIndexes(join(dir, 'deflated'));
    const items = [item(Buffer.from('d'), 'dir'), ...Array.from({ length: 3000 }, (_, i) => item(Buffer.from(`d/f-${i}-\xff`, 'latin1'), 'file'))];
    const archive = archiveOf('d'.repeat(64), items);
    const listing = await indexes.listingText({ repositoryPath: dir, objects, archive }, 'd');
    expect(listing.deflated).not.toBeNull();
    const body = deflatedAnswer('{"folder":"d","entries":', listing.deflated!, '}');
    expect(body.length).toBeLessThan(listing.entriesJson().length / 5);
    expect(JSON.parse(inflateSync(body).toString('utf8'))).toEqual({ folder: 'd', entries: (await listFolder(archive, 'd')).entries });
  });
});
