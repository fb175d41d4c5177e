import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';

import { objectId, segmentEntry } from './segment-fixture.js';
import { COMMIT_ENTRY, SEGMENT_MAGIC, listSegments, readSegment } from './segments.js';

const dir = mkdtempSync(join(tmpdir(), 'segments-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const entry = segmentEntry;
const id = objectId;
const MANIFEST = Buffer.alloc(32);

test('entries of every size are read in order, across block boundaries, with data only where asked', async () => {
  const parts: Buffer[] = [SEGMENT_MAGIC];
  // Many small entries (one 64 KiB block holds hundreds), then big ones that span blocks.
  for (let i = 1; i <= 600; i++) parts.push(entry(0, id(i % 250), Buffer.alloc(100 + (i % 7), i)));
  parts.push(entry(0, id(251), Buffer.alloc(70_000, 1)));
  parts.push(entry(0, id(252), Buffer.alloc(200_000, 2)));
  parts.push(entry(1, id(3)));
  parts.push(entry(0, MANIFEST, Buffer.from('the manifest')));
  parts.push(entry(0, id(253), Buffer.alloc(50, 3)));
  parts.push(COMMIT_ENTRY);
  mkdirSync(join(dir, 'data', '0'), { recursive: true });
  writeFileSync(join(dir, 'data', '0', '7'), Buffer.concat(parts));
  const [file] = listSegments(dir);
  expect(file.segment).toBe(7);
  const seg = await readSegment(file, (x) => x.equals(MANIFEST));
  expect(seg.problems).toEqual([]);
  expect(seg.committed).toBe(true);
  expect(seg.entries.map((e) => e.tag)).toEqual([...Array(602).fill('put'), 'delete', 'put', 'put', 'commit']);
  let offset = 8;
  seg.entries.forEach((e, i) => {
    expect(e.offset, `entry ${i}`).toBe(offset);
    offset += e.size;
  });
  const manifest = seg.entries[603];
  expect(manifest.tag === 'put' && manifest.data?.toString()).toBe('the manifest');
  expect(manifest.tag === 'put' && manifest.crcOk).toBe(true);
  expect(seg.entries[601].tag === 'put' && seg.entries[601].id.equals(id(252))).toBe(true);
});

test('a damaged entry ends the walk with a problem naming where; the segment is not committed', async () => {
  const good = Buffer.concat([SEGMENT_MAGIC, entry(1, id(1)), entry(1, id(2)), COMMIT_ENTRY]);
  good[8 + 41 + 20] ^= 1; // inside the second DELETE's id
  mkdirSync(join(dir, 'data', '1'), { recursive: true });
  writeFileSync(join(dir, 'data', '1', '1000'), good);
  writeFileSync(join(dir, 'data', '1', '1001'), Buffer.concat([SEGMENT_MAGIC, entry(0, id(1), Buffer.alloc(10)).subarray(0, 30)]));
  writeFileSync(join(dir, 'data', '1', '1002'), Buffer.alloc(0)); // emptied by compaction: deleted
  const files = listSegments(dir).filter((f) => f.segment >= 1000);
  expect(files.map((f) => f.segment)).toEqual([1000, 1001]);
  const damaged = await readSegment(files[0], () => false);
  expect(damaged.problems).toEqual([{ segment: 1000, offset: 49, problem: 'CRC mismatch in a DELETE entry' }]);
  expect(damaged.committed).toBe(false);
  const cut = await readSegment(files[1], () => false);
  expect(cut.problems).toEqual([{ segment: 1001, offset: 8, problem: 'entry size 51 is impossible here' }]);
});
