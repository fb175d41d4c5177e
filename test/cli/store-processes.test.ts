// The store as several processes use it: many `borgkeep borg-serve` sessions open the same
// database at once, possibly before it exists.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../../src/store/migrations.js';
import { createSandbox, type CliSandbox } from './cli-harness.js';

const FIXTURE = join(import.meta.dirname, 'fixtures', 'open-store.mjs');
const sandboxes: CliSandbox[] = [];
afterEach(() => sandboxes.splice(0).forEach((s) => s.cleanup()));

function runFixture(dataDir: string, startAt: number, name: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [FIXTURE, dataDir, String(startAt), name], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

describe('store opened by several processes at once', () => {
  it('four processes opening a fresh data directory at the same instant all succeed and migrate once', async () => {
    for (let round = 0; round < 3; round += 1) {
      const sandbox = createSandbox();
      sandboxes.push(sandbox);
      // Far enough ahead for all four to have loaded their modules.
      const startAt = Date.now() + 1500;
      const results = await Promise.all([1, 2, 3, 4].map((n) => runFixture(sandbox.dataDir, startAt, `repo-${n}`)));
      expect(results).toEqual([1, 2, 3, 4].map(() => ({ code: 0, stderr: '' })));

      const raw = new BetterSqlite3(join(sandbox.dataDir, 'borgkeep.db'), { readonly: true });
      try {
        expect(raw.prepare('select name from kysely_migration order by name').pluck().all()).toEqual(Object.keys(MIGRATIONS));
        expect(raw.prepare('select name from repositories order by name').pluck().all()).toEqual(['repo-1', 'repo-2', 'repo-3', 'repo-4']);
        expect(raw.prepare("select count(*) from sessions where result = 'ok'").pluck().get()).toBe(4);
      } finally {
        raw.close();
      }
    }
  });
});
