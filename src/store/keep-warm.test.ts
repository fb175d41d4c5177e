import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { keepWarm, warmOnce } from './keep-warm.js';

const dir = mkdtempSync(join(tmpdir(), 'bk-keep-warm-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('keepWarm', () => {
  it('reads every file through (a missing WAL is no error) and stops at the limit', async () => {
    const db = join(dir, 'a.db');
    writeFileSync(db, Buffer.alloc(3 * 1024 * 1024 + 5, 1));
    expect(await warmOnce([db, join(dir, 'a.db-wal')], 64 * 1024 * 1024)).toBe(3 * 1024 * 1024 + 5);
    expect(await warmOnce([db], 2 * 1024 * 1024)).toBe(2 * 1024 * 1024);
  });

  it('does not read files larger than the limit together, and says so once', async () => {
    const db = join(dir, 'b.db');
    writeFileSync(db, Buffer.alloc(2 * 1024 * 1024));
    const told: number[] = [];
    const stop = keepWarm({ files: [db], maxBytes: 1024 * 1024, everyMs: 20, onTooLarge: (n) => told.push(n) });
    await new Promise((r) => setTimeout(r, 150));
    stop();
    expect(told).toEqual([2 * 1024 * 1024]);
  });

  it('is off at a limit of 0', () => {
    let asked = false;
    const stop = keepWarm({ files: [join(dir, 'none')], maxBytes: 0, onTooLarge: () => (asked = true) });
    stop();
    expect(asked).toBe(false);
  });
});
