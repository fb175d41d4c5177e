import { createHash } from 'node:crypto';
import { expect, test } from 'vitest';

import { MsgMap, encode } from '../rpc/msgpack.js';
import { parseManifest } from '../repository/manifest.js';
import { createArchiveList, type ArchiveDiff } from './archive-list.js';

type Archive = [name: string, id: string];
const idFor = (s: string) => createHash('sha256').update(s).digest();

/** A manifest plaintext as borg writes it (archives sorted by name, as its StableDict does, unless told otherwise). */
function manifest(archives: Archive[], sorted = true): Buffer {
  const list = sorted ? [...archives].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)) : archives;
  const entries = list.map(([name, id]): [string, MsgMap] => [name, MsgMap.of([['id', idFor(id)], ['time', Buffer.from('2026-11-23T10:00:00.000000')]])]);
  return encode(MsgMap.of([['version', 1], ['timestamp', Buffer.from('2026-11-23T10:00:00.000000')], ['config', MsgMap.of([])], ['archives', MsgMap.of(entries)]]));
}
const parse = (archives: Archive[], sorted = true) => parseManifest(manifest(archives, sorted), null, false);

/** The diff by (name, id), the obvious way. */
function expected(before: Archive[], after: Archive[]): ArchiveDiff {
  const old = new Map(before);
  const now = new Map(after);
  const sort = (xs: string[]) => xs.sort();
  return {
    added: sort(after.filter(([n]) => !old.has(n)).map(([n]) => n)),
    removed: sort(before.filter(([n]) => !now.has(n)).map(([n]) => n)),
    replaced: sort(after.filter(([n, id]) => old.has(n) && old.get(n) !== id).map(([n]) => n)),
  };
}
const sorted = (d: ArchiveDiff | null) => d && { added: [...d.added].sort(), removed: [...d.removed].sort(), replaced: [...d.replaced].sort() };

test('random histories of backups, prunes, renames, replacements and reorderings diff as the obvious way does', () => {
  let seed = 7;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  for (let run = 0; run < 40; run++) {
    const known = run % 4 !== 0;
    const list = createArchiveList(known);
    let archives: Archive[] = [];
    let counter = 0;
    for (let step = 0; step < 60; step++) {
      const before = archives;
      archives = [...archives];
      const op = rand(10);
      if (op < 4 || archives.length === 0) archives.push([`host-${rand(3)}-${counter++}`, `v${counter}`]);
      else if (op < 6) archives.splice(rand(archives.length), 1 + rand(3));
      else if (op === 6) archives[rand(archives.length)] = [archives[rand(archives.length)][0], `forged-${counter++}`];
      else if (op === 7) archives[rand(archives.length)] = [`renamed-${counter++}`, archives[rand(archives.length)][1]];
      else if (op === 8) for (let k = 0; k < 1 + rand(5); k++) archives.push([`bulk-${counter++}`, `b${counter}`]);
      archives = [...new Map(archives)]; // one entry per name
      const diff = list.advance(parse(archives, op !== 9));
      if (step === 0 && !known) expect(diff).toBeNull();
      else expect(sorted(diff), `run ${run} step ${step}`).toEqual(expected(step === 0 ? [] : before, archives));
      expect(list.archives()?.map((a) => a.name).sort()).toEqual(archives.map(([n]) => n).sort());
    }
  }
});

test('an archive listed twice is refused, however the manifest was changed', () => {
  const list = createArchiveList(true);
  list.advance(parse([['a', '1'], ['b', '2'], ['c', '3']]));
  // A forged manifest: "b" again at the end, pointing elsewhere (borg would keep only the last).
  expect(() => list.advance(parse([['a', '1'], ['b', '2'], ['c', '3'], ['b', '4']], false))).toThrow('the manifest lists an archive name twice');
  expect(() => createArchiveList(true).advance(parse([['x', '1'], ['x', '2']], false))).toThrow('the manifest lists an archive name twice');
});

test('names that are not UTF-8 are kept apart by their bytes and shown as borg shows them', () => {
  const list = createArchiveList(true);
  const raw = (bytes: number[]) => Buffer.from(bytes);
  const plain = (names: Buffer[]) =>
    encode(MsgMap.of([['version', 1], ['timestamp', Buffer.from('t')], ['archives', new MsgMap(names.map((n, k) => [n, MsgMap.of([['id', idFor(String(k))], ['time', Buffer.from('t')]])]))]]));
  list.advance(parseManifest(plain([raw([0x61, 0xff])]), null, false));
  const diff = list.advance(parseManifest(plain([raw([0x61, 0xff]), raw([0x61, 0xfe])]), null, false));
  expect(diff?.added).toEqual(['a\ufffd']);
});
