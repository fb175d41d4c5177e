// One size style for people: the console's (decimal units, one decimal under 10, whole numbers
// above), used by the CLI's human output, the alerts' sentences and the compaction gate's.
import { describe, expect, it } from 'vitest';
import { formatBytes } from './size.js';
import { formatSize } from '../cli/output.js';
import { sizeText } from '../alerts/alert-rules.js';
import { formatBytes as gateBytes } from '../audit/compaction-gate.js';

describe('formatBytes', () => {
  it('writes sizes the console’s way', () => {
    expect([0, 999, 1000, 1234, 12_345, 999_400, 999_600, 9_960_000, 1_550_000_000_000, 85_000_000_000].map(formatBytes)).toEqual([
      '0 B',
      '999 B',
      '1.0 KB',
      '1.2 KB',
      '12 KB',
      '999 KB',
      '1.0 MB',
      '10 MB',
      '1.6 TB',
      '85 GB',
    ]);
  });

  it('is the one implementation of the CLI, the alerts and the compaction gate', () => {
    expect(formatSize).toBe(formatBytes);
    expect(sizeText).toBe(formatBytes);
    expect(gateBytes).toBe(formatBytes);
  });
});
