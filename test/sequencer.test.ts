// The suite's file order (test/sequencer.ts): longest first, unknown files as 60-s files.
import { describe, expect, test } from 'vitest';

import { UNKNOWN_FILE_SECONDS, orderLongestFirst } from './sequencer.js';

describe('orderLongestFirst', () => {
  const sizes: Record<string, number> = { 'a.test.ts': 10, 'b.test.ts': 500, 'c.test.ts': 20, 'new.test.ts': 1, 'new-big.test.ts': 900 };
  const order = (durations: Record<string, number>) =>
    orderLongestFirst(Object.keys(sizes), (f) => f, durations, (f) => sizes[f]);

  test('orders known files by their recorded seconds, longest first, whatever their size', () => {
    expect(order({ 'a.test.ts': 300, 'b.test.ts': 2, 'c.test.ts': 90, 'new.test.ts': 5, 'new-big.test.ts': 1 })).toEqual([
      'a.test.ts',
      'c.test.ts',
      'new.test.ts',
      'b.test.ts',
      'new-big.test.ts',
    ]);
  });

  test(`a file without a recorded time counts as ${UNKNOWN_FILE_SECONDS} s; ties go by size, larger first`, () => {
    expect(order({ 'a.test.ts': 300, 'b.test.ts': 2, 'c.test.ts': 61 })).toEqual(['a.test.ts', 'c.test.ts', 'new-big.test.ts', 'new.test.ts', 'b.test.ts']);
  });

  test('keeps every file exactly once', () => {
    expect(order({}).sort()).toEqual(Object.keys(sizes).sort());
  });
});
