// The ChunkIndex writer against borg's own hashindex (python `borg.hashindex.ChunkIndex`): what it
// writes borg reads with the same entries, and it is byte for byte what borg's ChunkIndex(usable=N)
// writes after the same insertions.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { createPrng } from '../../test/support/prng.js';
import { runPython } from '../../test/support/python.js';
import { CHUNK_INDEX_MAX_VALUE, chunkIndexBuckets, writeChunkIndex, type ChunkIndexEntry } from './chunk-index-writer.js';

const dir = mkdtempSync(join(tmpdir(), 'bk-chunkidx-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Every entry of a chunks file as borg's ChunkIndex reads it, and the bucket count it reports. */
function pythonRead(path: string): { entries: Record<string, [number, number, number]>; len: number } {
  const script = `
import sys, json
from borg.hashindex import ChunkIndex
idx = ChunkIndex.read(sys.argv[1])
print(json.dumps({'entries': {k.hex(): list(v) for k, v in idx.iteritems()}, 'len': len(idx)}))
`;
  return JSON.parse(runPython(script, undefined, [path]).toString()) as { entries: Record<string, [number, number, number]>; len: number };
}

function randomEntries(n: number, seed: number): Map<string, ChunkIndexEntry> {
  const prng = createPrng(seed);
  const m = new Map<string, ChunkIndexEntry>();
  while (m.size < n) {
    const id = Buffer.from(prng.bytes(32));
    m.set(id.toString('hex'), { refcount: 1 + (id[5]! % 7), size: id.readUInt32LE(8) % 8_000_000, csize: id.readUInt32LE(12) % 8_000_000 });
  }
  return m;
}

describe('writeChunkIndex', () => {
  it('writes an index borg reads with exactly the same entries (many, with probing collisions)', () => {
    const entries = randomEntries(5000, 17);
    // Ids that all start in the same bucket, and next to the table's end: linear probing wraps round.
    const buckets = chunkIndexBuckets(entries.size + 40);
    for (let i = 0; i < 40; i++) {
      const id = Buffer.alloc(32, i + 1);
      id.writeUInt32LE(buckets - 1, 0);
      entries.set(id.toString('hex'), { refcount: i === 0 ? 10 ** 12 : 1, size: i, csize: i + 41 });
    }
    const path = join(dir, 'chunks-many');
    writeFileSync(path, writeChunkIndex(entries));
    const read = pythonRead(path);
    expect(read.len).toBe(entries.size);
    const expected: Record<string, [number, number, number]> = {};
    for (const [hex, e] of entries) expected[hex] = [Math.min(e.refcount, CHUNK_INDEX_MAX_VALUE), e.size, e.csize];
    expect(read.entries).toEqual(expected);
  });

  it('is byte for byte what borg writes for ChunkIndex(usable=N) after the same insertions, and what its empty index is', () => {
    for (const n of [0, 3, 800, 3000]) {
      const entries = randomEntries(n, 100 + n);
      const mine = writeChunkIndex(entries);
      const path = join(dir, `borg-${n}`);
      const script = `
import sys, json
from borg.hashindex import ChunkIndex
entries = json.loads(sys.stdin.read())
idx = ChunkIndex(usable=len(entries)) if entries else ChunkIndex()
for k, v in entries:
    idx[bytes.fromhex(k)] = tuple(v)
idx.write(sys.argv[1])
`;
      runPython(script, JSON.stringify([...entries].map(([k, e]) => [k, [e.refcount, e.size, e.csize]])), [path]);
      expect(mine.equals(readFileSync(path)), `n=${n}`).toBe(true);
    }
  });

  it('refuses what borg could not hold', () => {
    expect(() => writeChunkIndex(new Map([['ab', { refcount: 1, size: 1, csize: 1 }]]))).toThrow(/32 bytes/);
    expect(() => writeChunkIndex(new Map([['00'.repeat(32), { refcount: 0, size: 1, csize: 1 }]]))).toThrow(/refcount/);
    expect(() => writeChunkIndex(new Map([['00'.repeat(32), { refcount: 1, size: 2 ** 32, csize: 1 }]]))).toThrow(/size/);
  });
});
