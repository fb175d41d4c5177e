// A folder of thousands of entries in the console's file view, end to end (a real `borgkeep
// serve`, the real borg client through its embedded gateway, Debian's chromium): the server lists
// it through the archive's folder index (an index file appears in the data directory), the
// console draws the first 1,000 rows and more on demand ("Show 1,000 more", "Show all"), another
// folder starts again at 1,000; no serious or critical axe-core violation.

import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { axeViolations } from './axe.js';
import { archiveTrees } from './browse-fixture.js';
import { startConsoleHarness, type ConsoleHarness } from './browser-harness.js';

const MANY = 2500;

describe('a folder of thousands of entries in the console', () => {
  let h: ConsoleHarness;

  beforeAll(async () => {
    h = await startConsoleHarness('bk-e2e-browse-many', {
      setup: async (e) => {
        await e.repoWithKeys('main', { admin: 'full' });
      },
    });
    await archiveTrees(h, [
      [
        'monday',
        (tree) => {
          mkdirSync(join(tree, 'many'));
          mkdirSync(join(tree, 'few'));
          for (let i = 0; i < MANY; i++) writeFileSync(join(tree, 'many', `f-${String(i).padStart(4, '0')}`), '');
          writeFileSync(join(tree, 'few', 'one.txt'), 'one\n');
        },
      ],
    ]);
  }, 180_000);
  afterAll(() => h?.close());

  it('draws the first 1,000 rows and more on demand, through the folder index', async () => {
    const { page } = h;
    await h.login('admin', h.adminPassword);
    await page.goto(`${h.url}/repositories/main`);
    await page.getByRole('button', { name: 'Browse the files of monday' }).click();
    const files = page.getByRole('region', { name: 'Files of archive monday' });
    await files.getByRole('button', { name: 'Open folder tree' }).click();
    await files.getByRole('button', { name: 'Open folder many' }).click();
    const more = files.locator('[data-more-entries]');
    await more.waitFor();
    const rows = files.locator('tbody tr');
    expect(await rows.count()).toBe(1000);
    expect(await more.textContent()).toBe(`Showing the first 1,000 of 2,500 entries. Show 1,000 more Show all`);
    expect(await files.locator('tbody tr').first().getAttribute('data-entry')).toBe('f-0000');
    expect(await axeViolations(page)).toEqual([]);

    await files.getByRole('button', { name: 'Show 1,000 more' }).click();
    await expect.poll(() => rows.count()).toBe(2000);
    expect(await more.textContent()).toBe(`Showing the first 2,000 of 2,500 entries. Show 500 more Show all`);
    await files.getByRole('button', { name: 'Show all' }).click();
    await expect.poll(() => rows.count()).toBe(MANY);
    expect(await more.count()).toBe(0);
    expect(await files.locator('tbody tr').last().getAttribute('data-entry')).toBe('f-2499');

    // Another folder, then back: drawn from the first 1,000 again.
    await files.getByRole('button', { name: 'tree', exact: true }).click();
    await files.getByRole('button', { name: 'Open folder few' }).click();
    await files.locator('tr[data-entry="one.txt"]').waitFor();
    expect(await more.count()).toBe(0);
    await files.getByRole('button', { name: 'tree', exact: true }).click();
    await files.getByRole('button', { name: 'Open folder many' }).click();
    await more.waitFor();
    expect(await rows.count()).toBe(1000);

    // The server listed through the archive's folder index.
    const indexes = readdirSync(join(h.env.dataDir, 'browse-index'), { recursive: true }).map(String).filter((f) => f.endsWith('.idx'));
    expect(indexes).toHaveLength(1);
  }, 120_000);
});
