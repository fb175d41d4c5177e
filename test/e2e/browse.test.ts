// Browsing an archive in the console, end to end: a real `borgkeep serve`, the real borg client
// through its embedded gateway, the key handed over with `borgkeep repo key`, Debian's chromium.
// On the repository page an admin opens an archive's files, walks into a folder, downloads a
// file (its bytes are the backed-up file's), and the download is in the ledger; then what changed
// to the next archive, as `borgkeep diff` tells it; no serious or critical axe-core violation.

import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { axeViolations } from './axe.js';
import { archiveTrees } from './browse-fixture.js';
import { startConsoleHarness, type ConsoleHarness } from './browser-harness.js';

describe('browsing an archive in the console', () => {
  let h: ConsoleHarness;
  let work = '';

  beforeAll(async () => {
    h = await startConsoleHarness('bk-e2e-browse', {
      setup: async (e) => {
        await e.repoWithKeys('main', { admin: 'full' });
      },
    });
    work = await archiveTrees(h, [
      [
        'monday',
        (tree) => {
          mkdirSync(join(tree, 'sub'));
          writeFileSync(join(tree, 'top.txt'), 'top\n');
          writeFileSync(join(tree, 'sub', 'data.bin'), randomBytes(300_000));
        },
      ],
      [
        'tuesday',
        (tree) => {
          writeFileSync(join(tree, 'top.txt'), 'top, changed\n');
          writeFileSync(join(tree, 'new.txt'), 'new\n');
        },
      ],
    ]);
  }, 180_000);
  afterAll(() => h?.close());

  it('opens an archive, walks into a folder and downloads a file with the bytes that were backed up', async () => {
    const { page } = h;
    await h.login('admin', h.adminPassword);
    await page.goto(`${h.url}/repositories/main`);
    await page.getByRole('button', { name: 'Browse the files of monday' }).click();
    const files = page.getByRole('region', { name: 'Files of archive monday' });
    const meta = files.locator('[data-archive-meta]');
    await meta.waitFor();
    expect(await meta.textContent()).toMatch(/^2 files, 300 KB from root on .+, started .+; its authentication \(TAM\) verified\..*create .*\.\/main::monday tree$/);
    await files.getByRole('button', { name: 'Open folder tree' }).click();
    await files.getByRole('button', { name: 'Open folder sub' }).click();
    const row = files.locator('tr[data-entry="data.bin"]');
    await row.waitFor();
    expect(await row.locator('td').first().textContent()).toBe('file');
    expect(await axeViolations(page)).toEqual([]);

    const [download] = await Promise.all([page.waitForEvent('download'), files.getByRole('link', { name: 'Download data.bin' }).click()]);
    expect(download.suggestedFilename()).toBe('data.bin');
    const saved = await download.path();
    expect(readFileSync(saved).equals(readFileSync(join(work, 'tree', 'sub', 'data.bin')))).toBe(true);
    await h.screenshot('archive-browser');

    // Find by path pattern: the matches across folders; a folder found opens in place.
    await files.getByLabel('Find by path pattern').fill('*.bin');
    await files.getByRole('button', { name: 'Find' }).click();
    const found = files.locator('[data-search-results]');
    await found.locator('li[data-found="tree/sub/data.bin"]').waitFor();
    expect(await found.locator('li').evaluateAll((items) => items.map((i) => i.getAttribute('data-found')))).toEqual(['tree/sub/data.bin']);
    expect(await found.locator('p').textContent()).toBe('1 entry matches *.bin.');
    await files.getByLabel('Find by path pattern').fill('tree/s*');
    await files.getByRole('button', { name: 'Find' }).click();
    await found.getByRole('button', { name: 'Open folder tree/sub' }).click();
    await files.locator('tr[data-entry="data.bin"]').waitFor();
    expect(await axeViolations(page)).toEqual([]);

    // What changed from monday to tuesday: the paths borgkeep diff names, in words.
    const changes = page.getByRole('region', { name: 'Changes from archive monday' });
    await changes.getByLabel('Compare monday with').selectOption('tuesday');
    await changes.getByRole('button', { name: 'Show changes' }).click();
    await changes.locator('li[data-path="tree/new.txt"]').waitFor();
    const cli = JSON.parse(await h.env.cliOk(['diff', 'main', 'monday', 'tuesday', '--json'])) as { changes: Array<{ path: string }> };
    expect(await changes.locator('li').evaluateAll((items) => items.map((i) => i.getAttribute('data-path')))).toEqual(cli.changes.map((c) => c.path));
    expect(await changes.locator('li[data-path="tree/new.txt"]').textContent()).toBe('tree/new.txt: added (4 B)');
    expect(await changes.locator('li[data-path="tree/top.txt"]').textContent()).toMatch(/^tree\/top\.txt: modified \(\+13 B, −4 B\)/);
    expect(await axeViolations(page)).toEqual([]);

    const ledger = JSON.parse(await h.env.cliOk(['ledger', '--repo', 'main', '--json'])) as { sessions: Array<{ keyName: string | null; detail: string | null; bytesOut: number }> };
    const restore = ledger.sessions.find((s) => s.keyName === '(restore by admin)');
    expect(restore?.detail).toBe("admin restored '/tree/sub/data.bin' of archive 'monday' as a file (1 item, 300000 bytes)");
    expect(h.pageErrors).toEqual([]);
  });
});
