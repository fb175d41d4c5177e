// The flat id set against a Set<string> oracle.

import { describe, expect, it } from 'vitest';
import { createPrng } from '../../test/support/prng.js';
import { createIdSet } from './id-set.js';

const key = (id: Buffer): string => id.toString('hex');

describe('createIdSet', () => {
  it('agrees with a Set of strings on 100k random ids, through growth and clear', () => {
    const r = createPrng(31337);
    const set = createIdSet();
    const oracle = new Set<string>();
    const added: Buffer[] = [];
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 100_000; i++) {
        // now and then an id added before, so duplicates are exercised too
        const id = added.length > 0 && r.int(10) === 0 ? Buffer.from(r.pick(added)) : r.bytes(32);
        set.add(id);
        oracle.add(key(id));
        added.push(id);
        if (i % 9973 === 0) expect(set.size).toBe(oracle.size);
      }
      expect(set.size).toBe(oracle.size);
      expect(oracle.size).toBeGreaterThan(85_000);
      for (const id of added) if (!set.has(id)) throw new Error(`lost ${key(id)}`);
      for (let i = 0; i < 100_000; i++) {
        const id = r.bytes(32);
        if (set.has(id) !== oracle.has(key(id))) throw new Error(`disagrees on ${key(id)}`);
      }
      set.clear();
      expect(set.size).toBe(0);
      for (const id of added) if (set.has(id)) throw new Error(`still has ${key(id)} after clear`);
      oracle.clear();
      added.length = 0;
    }
  });

  it('tells apart ids that share their first bytes (the hash) and differ only at the end', () => {
    const set = createIdSet(4);
    const base = Buffer.alloc(32, 0x5a);
    const ids: Buffer[] = [];
    for (let i = 0; i < 300; i++) {
      const id = Buffer.from(base);
      id.writeUInt16BE(i, 30);
      ids.push(id);
    }
    for (const id of ids.slice(0, 150)) set.add(id);
    expect(set.size).toBe(150);
    for (const [i, id] of ids.entries()) expect(set.has(id), `id ${i}`).toBe(i < 150);
  });

  it('copies what it adds: changing the caller\'s buffer later changes nothing', () => {
    const set = createIdSet();
    const id = Buffer.alloc(32, 7);
    set.add(id);
    id.fill(8);
    expect(set.has(Buffer.alloc(32, 7))).toBe(true);
    expect(set.has(Buffer.alloc(32, 8))).toBe(false);
  });

  it('reads ids that are views into a larger buffer (as request arguments are)', () => {
    const frame = Buffer.concat([Buffer.from('header'), Buffer.alloc(32, 1), Buffer.alloc(32, 2), Buffer.from('tail')]);
    const a = frame.subarray(6, 38);
    const b = frame.subarray(38, 70);
    const set = createIdSet();
    set.add(a);
    expect(set.has(Buffer.alloc(32, 1))).toBe(true);
    expect(set.has(b)).toBe(false);
    set.add(b);
    expect(set.size).toBe(2);
    expect(set.has(Buffer.alloc(32, 2))).toBe(true);
  });

  it('works from any initial size, including tiny ones, and after clear', () => {
    for (const initial of [0, 1, 2, 3, 7, 1024]) {
      const r = createPrng(initial + 1);
      const set = createIdSet(initial);
      const ids = Array.from({ length: 2000 }, () => r.bytes(32));
      for (let round = 0; round < 2; round++) {
        for (const id of ids) set.add(id);
        expect(set.size, `initial ${initial}`).toBe(2000);
        for (const id of ids) if (!set.has(id)) throw new Error(`initial ${initial}: lost an id`);
        expect(set.has(r.bytes(32))).toBe(false);
        set.clear();
        expect(set.size).toBe(0);
        expect(set.has(ids[0])).toBe(false);
      }
    }
  });

  it('holds 100k ids without slowing down', () => {
    const r = createPrng(5);
    const ids = Array.from({ length: 100_000 }, () => r.bytes(32));
    const set = createIdSet();
    const t0 = performance.now();
    for (const id of ids) set.add(id);
    for (const id of ids) set.has(id);
    expect(performance.now() - t0).toBeLessThan(3000);
  });
});
