// index.N lookups against borg's own hashindex (python `borg.hashindex.NSIndex`): on the index
// of a real repository written by borg 1.2, and on large and adversarial indexes written by
// NSIndex itself.

import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPrng } from '../../test/support/prng.js';
import { runPython } from '../../test/support/python.js';
import { IndexFormatError, latestIndexTransaction, openCommittedIndex, type CommittedIndex } from './hash-index.js';

const HEADER = 18;
const BUCKET = 40;
const EMPTY = 0xffffffff;
const DELETED = 0xfffffffe;

/** Every live (key hex, [segment, offset]) of an index file, as borg's NSIndex reads it. */
function pythonEntries(path: string): Array<[string, [number, number]]> {
  const script = `
import sys, json
from borg.hashindex import NSIndex
idx = NSIndex.read(sys.argv[1])
print(json.dumps([(k.hex(), list(v)) for k, v in idx.iteritems()]))
`;
  return JSON.parse(runPython(script, undefined, [path]).toString());
}

/** Whether borg's NSIndex refuses to read the file. */
function pythonRefuses(path: string): boolean {
  const r = spawnSync(pythonExe(), ['-c', 'import sys\nfrom borg.hashindex import NSIndex\nNSIndex.read(sys.argv[1])', path], { stdio: 'pipe' });
  return r.status !== 0;
}

let python: string | undefined;
function pythonExe(): string {
  python ??= runPython('import sys; print(sys.executable)').toString().trim();
  return python;
}

/** Bucket states of an index file: counts, and where each live key sits. */
function buckets(path: string): { empty: number; deleted: number; live: Map<string, number>; count: number } {
  const b = readFileSync(path);
  const count = b.readInt32LE(12);
  const live = new Map<string, number>();
  let empty = 0;
  let deleted = 0;
  for (let i = 0; i < count; i++) {
    const seg = b.readUInt32LE(HEADER + i * BUCKET + 32);
    if (seg === EMPTY) empty++;
    else if (seg === DELETED) deleted++;
    else live.set(b.subarray(HEADER + i * BUCKET, HEADER + i * BUCKET + 32).toString('hex'), i);
  }
  return { empty, deleted, live, count };
}

function borg(args: string[], env: NodeJS.ProcessEnv, cwd: string): void {
  const r = spawnSync('borg', args, { env, cwd, stdio: 'pipe' });
  if (r.status !== 0) throw new Error(`borg ${args.join(' ')} failed (${r.status}): ${r.stderr.toString()}`);
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'borgkeep-index-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('openCommittedIndex on a repository written by borg', () => {
  let repo: string;
  let txn: number;
  beforeAll(() => {
    repo = join(dir, 'repo');
    const data = join(dir, 'data');
    mkdirSync(data);
    const env = { ...process.env, BORG_BASE_DIR: join(dir, 'base'), BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes', BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes' };
    const r = createPrng(3);
    borg(['init', '-e', 'none', repo], env, dir);
    for (const name of ['a1', 'a2', 'a3']) {
      // new content per archive, so each adds objects; small chunks give many of them
      for (let i = 0; i < 20; i++) writeFileSync(join(data, `${name}-${i}.bin`), r.bytes(r.range(100, 40_000)));
      borg(['create', '--chunker-params', 'buzhash,10,14,12,4095', `${repo}::${name}`, 'data'], env, dir);
    }
    // deleting an archive leaves tombstones in the index
    borg(['delete', `${repo}::a1`], env, dir);
    const t = latestIndexTransaction(repo);
    expect(t).not.toBeNull();
    txn = t as number;
  }, 120_000);

  it('picks the index borg itself would use', () => {
    const want = runPython('import sys\nfrom borg.repository import Repository\nprint(Repository(sys.argv[1]).get_index_transaction_id())', undefined, [repo]).toString().trim();
    expect(String(txn)).toBe(want);
  });

  it('finds every object borg lists, at the same segment and offset', () => {
    const path = join(repo, `index.${txn}`);
    const want = pythonEntries(path);
    expect(want.length).toBeGreaterThan(50);
    const shape = buckets(path);
    expect(shape.deleted).toBeGreaterThan(0); // the test covers tombstones
    const idx = openCommittedIndex(repo, txn);
    try {
      expect(idx.transactionId).toBe(txn);
      expect(idx.entries).toBe(want.length);
      for (const [k, [segment, offset]] of want) {
        expect(idx.lookup(Buffer.from(k, 'hex')), k).toEqual({ segment, offset });
      }
      // the manifest is there, at offset 8 of its segment or later
      const manifest = idx.lookup(Buffer.alloc(32));
      expect(manifest).toBeDefined();
      expect(manifest?.offset).toBeGreaterThanOrEqual(8);
    } finally {
      idx.close();
    }
  });

  it('does not find 1000 random ids, nor ids differing from real ones in one byte', () => {
    const want = pythonEntries(join(repo, `index.${txn}`));
    const present = new Set(want.map(([k]) => k));
    const r = createPrng(11);
    const idx = openCommittedIndex(repo, txn);
    try {
      for (let i = 0; i < 1000; i++) {
        const id = r.bytes(32);
        if (!present.has(id.toString('hex'))) expect(idx.lookup(id)).toBeUndefined();
      }
      for (const [k] of want) {
        // same start bucket, different key: must probe past it and stop
        const near = Buffer.from(k, 'hex');
        near[31] ^= 0x80;
        if (!present.has(near.toString('hex'))) expect(idx.lookup(near)).toBeUndefined();
      }
    } finally {
      idx.close();
    }
  });

  it('refuses a truncated or garbled copy of the real index, as borg does', () => {
    const src = readFileSync(join(repo, `index.${txn}`));
    const bad = join(dir, 'bad');
    mkdirSync(bad);
    const variants: Array<[string, Buffer]> = [
      ['one byte short', src.subarray(0, src.length - 1)],
      ['one bucket short', src.subarray(0, src.length - BUCKET)],
      ['header only', src.subarray(0, HEADER)],
      ['half a header', src.subarray(0, 9)],
      ['empty', Buffer.alloc(0)],
      ['one byte more', Buffer.concat([src, Buffer.alloc(1)])],
      ['garbage', createPrng(1).bytes(src.length)],
      ['wrong magic', Buffer.concat([Buffer.from('BORG_IDY'), src.subarray(8)])],
      ['key size 16', (() => { const b = Buffer.from(src); b[16] = 16; return b; })()],
      ['value size 12', (() => { const b = Buffer.from(src); b[17] = 12; return b; })()],
      ['more entries than buckets', (() => { const b = Buffer.from(src); b.writeInt32LE(b.readInt32LE(12) + 1, 8); return b; })()],
      ['negative entries', (() => { const b = Buffer.from(src); b.writeInt32LE(-1, 8); return b; })()],
      ['bucket count too large', (() => { const b = Buffer.from(src); b.writeInt32LE(b.readInt32LE(12) + 1, 12); return b; })()],
      ['zero buckets', (() => { const b = Buffer.from(src.subarray(0, HEADER)); b.writeInt32LE(0, 8); b.writeInt32LE(0, 12); return b; })()],
      ['negative buckets', (() => { const b = Buffer.from(src.subarray(0, HEADER)); b.writeInt32LE(0, 8); b.writeInt32LE(-2, 12); return b; })()],
    ];
    // header fields borg's reader does not check; we refuse them all the same
    const LAX_IN_BORG = new Set(['more entries than buckets', 'negative entries', 'zero buckets']);
    for (const [i, [name, bytes]] of variants.entries()) {
      writeFileSync(join(bad, `index.${i + 1}`), bytes);
      expect(() => openCommittedIndex(bad, i + 1), name).toThrow(IndexFormatError);
      if (!LAX_IN_BORG.has(name)) expect(pythonRefuses(join(bad, `index.${i + 1}`)), `python on ${name}`).toBe(true);
    }
    // a missing file is not a format error, but it is an error
    expect(() => openCommittedIndex(bad, 999)).toThrow();
  });

  it('notices an index truncated after it was opened', () => {
    const copy = join(dir, 'shrinking');
    mkdirSync(copy);
    const src = readFileSync(join(repo, `index.${txn}`));
    writeFileSync(join(copy, 'index.5'), src);
    const want = pythonEntries(join(copy, 'index.5'));
    const idx = openCommittedIndex(copy, 5);
    try {
      truncateSync(join(copy, 'index.5'), HEADER);
      expect(() => {
        for (const [k] of want) idx.lookup(Buffer.from(k, 'hex'));
      }).toThrow(IndexFormatError);
    } finally {
      idx.close();
    }
  });
});

describe('openCommittedIndex on indexes written by NSIndex', () => {
  /** Writes `pairs` (32-byte key, u32 segment, u32 offset each) into index.N with NSIndex. */
  function writeWithNSIndex(path: string, pairs: Buffer, deleteFirst = 0): void {
    const script = `
import sys, struct
from borg.hashindex import NSIndex
data = open(sys.argv[1], 'rb').read()
idx = NSIndex()
n = len(data) // 40
for i in range(n):
    rec = data[i * 40:(i + 1) * 40]
    idx[rec[:32]] = struct.unpack('<II', rec[32:])
for i in range(int(sys.argv[3])):
    del idx[data[i * 40:i * 40 + 32]]
idx.write(sys.argv[2])
`;
    writeFileSync(`${path}.pairs`, pairs);
    runPython(script, undefined, [`${path}.pairs`, path, String(deleteFirst)]);
  }

  it('finds all of 200k random keys, quickly, and none of 10k others', () => {
    const r = createPrng(200_000);
    const n = 200_000;
    const pairs = r.bytes(n * 40);
    for (let i = 0; i < n; i++) {
      // values as borg stores them: segment and offset below the tombstone markers
      pairs.writeUInt32LE(r.int(2 ** 32 - 1025), i * 40 + 32);
      pairs.writeUInt32LE(r.int(2 ** 31), i * 40 + 36);
    }
    const big = join(dir, 'big');
    mkdirSync(big);
    writeWithNSIndex(join(big, 'index.42'), pairs);
    expect(latestIndexTransaction(big)).toBe(42);
    const idx = openCommittedIndex(big, 42);
    try {
      expect(idx.entries).toBe(n);
      for (let i = 0; i < n; i++) {
        const rec = pairs.subarray(i * 40, i * 40 + 40);
        const got = idx.lookup(rec.subarray(0, 32));
        if (!got || got.segment !== rec.readUInt32LE(32) || got.offset !== rec.readUInt32LE(36)) {
          throw new Error(`key ${i} ${rec.subarray(0, 32).toString('hex')}: got ${JSON.stringify(got)}`);
        }
      }
      for (let i = 0; i < 10_000; i++) expect(idx.lookup(r.bytes(32))).toBeUndefined();
      const t0 = performance.now();
      for (let i = 0; i < 100_000; i++) idx.lookup(pairs.subarray(i * 40, i * 40 + 32));
      expect(performance.now() - t0).toBeLessThan(4000);
    } finally {
      idx.close();
    }
  });

  it('follows a probe run that wraps around the end of the table and skips tombstones', () => {
    // NSIndex() starts with 1031 buckets; keys whose start bucket is one of the last five
    const NB = 1031;
    const r = createPrng(8);
    const keys: Buffer[] = [];
    while (keys.length < 60) {
      const k = r.bytes(32);
      if (k.readUInt32LE(0) % NB >= NB - 5) keys.push(k);
    }
    const pairs = Buffer.concat(keys.map((k, i) => { const v = Buffer.alloc(8); v.writeUInt32LE(i + 1, 0); v.writeUInt32LE(8 + i * 100, 4); return Buffer.concat([k, v]); }));
    const wrap = join(dir, 'wrap');
    mkdirSync(wrap);
    writeWithNSIndex(join(wrap, 'index.3'), pairs, 20);
    const shape = buckets(join(wrap, 'index.3'));
    expect(shape.count).toBe(NB);
    expect(shape.deleted).toBe(20);
    // some live keys really sit before their start bucket, i.e. the run wrapped
    const wrapped = keys.slice(20).filter((k) => (shape.live.get(k.toString('hex')) ?? NB) < NB - 5);
    expect(wrapped.length).toBeGreaterThan(10);
    const idx = openCommittedIndex(wrap, 3);
    try {
      expect(idx.entries).toBe(40);
      for (const [i, k] of keys.entries()) {
        expect(idx.lookup(k), `key ${i}`).toEqual(i < 20 ? undefined : { segment: i + 1, offset: 8 + i * 100 });
      }
      // absent keys with the same start buckets probe through the whole run and stop at an empty bucket
      let misses = 0;
      while (misses < 200) {
        const k = r.bytes(32);
        if (k.readUInt32LE(0) % NB < NB - 5) continue;
        expect(idx.lookup(k)).toBeUndefined();
        misses++;
      }
    } finally {
      idx.close();
    }
  });

  it('ends a lookup in a table without a single empty bucket', () => {
    // borg never writes one, but a crafted file must not make the guard loop forever
    const full = join(dir, 'full');
    mkdirSync(full);
    const nb = 5;
    const file = Buffer.alloc(HEADER + nb * BUCKET);
    Buffer.from('BORG_IDX').copy(file, 0);
    file.writeInt32LE(3, 8);
    file.writeInt32LE(nb, 12);
    file[16] = 32;
    file[17] = 8;
    const key = (i: number): Buffer => { const k = Buffer.alloc(32, 0xee); k.writeUInt32LE(i, 0); return k; };
    for (let i = 0; i < nb; i++) {
      const at = HEADER + i * BUCKET;
      key(i).copy(file, at);
      file.writeUInt32LE(i < 3 ? 100 + i : DELETED, at + 32);
      file.writeUInt32LE(i * 8, at + 36);
    }
    writeFileSync(join(full, 'index.1'), file);
    const idx = openCommittedIndex(full, 1);
    try {
      for (let i = 0; i < 3; i++) expect(idx.lookup(key(i))).toEqual({ segment: 100 + i, offset: i * 8 });
      for (let i = 3; i < 12; i++) expect(idx.lookup(key(i))).toBeUndefined();
    } finally {
      idx.close();
    }
  });

  it('is closed for good after close()', () => {
    const d = join(dir, 'closing');
    mkdirSync(d);
    writeWithNSIndex(join(d, 'index.1'), Buffer.concat([Buffer.alloc(32, 1), Buffer.from([1, 0, 0, 0, 8, 0, 0, 0])]));
    const idx: CommittedIndex = openCommittedIndex(d, 1);
    expect(idx.lookup(Buffer.alloc(32, 1))).toEqual({ segment: 1, offset: 8 });
    idx.close();
    idx.close();
    expect(() => idx.lookup(Buffer.alloc(32, 1))).toThrow();
  });
});

describe('latestIndexTransaction', () => {
  it('returns the highest non-empty index.N by number, ignoring other names', () => {
    const d = join(dir, 'names');
    mkdirSync(d);
    for (const [name, size] of [
      ['index.3', 58],
      ['index.9', 58],
      ['index.10', 58],
      ['index.12', 0],
      ['index.x', 58],
      ['index.', 58],
      ['index.11.tmp', 58],
      ['index.-1', 58],
      ['index.1e3', 58],
      ['hints.20', 58],
      ['integrity.20', 58],
      ['xindex.30', 58],
    ] as const) {
      writeFileSync(join(d, name), Buffer.alloc(size));
    }
    expect(latestIndexTransaction(d)).toBe(10);
    // borg's own choice on the same directory
    const want = runPython('import sys\nfrom borg.repository import Repository\nprint(Repository(sys.argv[1]).get_index_transaction_id())', undefined, [d]).toString().trim();
    expect(want).toBe('10');
  });

  it('returns null when there is no usable index', () => {
    const d = join(dir, 'none');
    mkdirSync(d);
    expect(latestIndexTransaction(d)).toBeNull();
    writeFileSync(join(d, 'index.4'), Buffer.alloc(0));
    writeFileSync(join(d, 'hints.4'), Buffer.alloc(10));
    expect(latestIndexTransaction(d)).toBeNull();
  });
});
