// The archive list and the refusing rule in the console, end to end: a real `borgkeep serve`, the
// real borg client through its embedded gateway, the key handed over with `borgkeep repo key`,
// Debian's chromium. The repository page lists the archives as the server reads them (one made
// before the key was held, one added by the full key, one stamped with an old --timestamp, noted
// as retimed), and a prune key's `borg delete` refused by its grant's --keep-last shows the label
// "archive rule" with the rule itself.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { PASSPHRASE, makeSourceTree } from '../helpers/borgkeep-env.js';
import { startConsoleHarness, type ConsoleHarness } from './browser-harness.js';

describe('the archive list in the console', () => {
  let h: ConsoleHarness;

  beforeAll(async () => {
    h = await startConsoleHarness('bk-e2e-archives', {
      setup: async (e) => {
        await e.repoWithKeys('main', { admin: 'full' });
        await e.addKey('pruner');
        await e.cliOk(['grant', 'pruner', 'main', '--role', 'prune', '--keep-last', '5']);
      },
    });
    const src = makeSourceTree(join(h.env.root, 'tree'), 11, 2);
    writeFileSync(join(h.env.root, 'passphrase'), `${PASSPHRASE}\n`);
    const borgOk = async (key: string, args: string[]) => {
      const r = await h.env.borg(key, args);
      expect(r.code, r.stderr).toBe(0);
    };
    await borgOk('admin', ['init', '-e', 'repokey', h.env.url('main')]);
    await borgOk('admin', ['create', `${h.env.url('main')}::early`, src]);
    await h.env.cliOk(['repo', 'key', 'main', '--passphrase-file', join(h.env.root, 'passphrase')]);
    await borgOk('admin', ['create', `${h.env.url('main')}::daily`, src]);
    await borgOk('admin', ['create', '--timestamp', '2020-01-01T00:00:00', `${h.env.url('main')}::stamped`, src]);
    const refused = await h.env.borg('pruner', ['delete', `${h.env.url('main')}::daily`]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('(rule: --keep-last 5)');
  }, 180_000);
  afterAll(() => h?.close());

  it('shows the archives, who added them, the retimed one, and the rule that refused the delete', async () => {
    const { page } = h;
    await h.login('admin', h.adminPassword);
    await page.goto(`${h.url}/repositories/main`);
    const list = page.locator('section.archive-list');
    await list.locator('tr[data-archive="stamped"]').waitFor();
    expect(await list.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-archive')))).toEqual(['daily', 'early', 'stamped']);
    const daily = list.locator('tr[data-archive="daily"]');
    expect(await daily.getAttribute('data-retimed')).toBe('no');
    await daily.getByText('admin').waitFor();
    expect(await list.locator('tr[data-archive="stamped"]').getAttribute('data-retimed')).toBe('yes');
    await list.getByRole('note').getByText(/1 archive has a client time more than a day away/).waitFor();
    // Made before borgkeep held the key: nobody the ledger can name.
    await list.locator('tr[data-archive="early"]').getByText('unknown').waitFor();

    const denial = page.locator('ul.denials [data-reason="BK_DENY_ARCHIVE_RULE"]').first();
    await denial.waitFor();
    expect(await denial.locator('.denial-label').textContent()).toBe('archive rule');
    expect(await denial.locator('.denial-rule').textContent()).toBe(': --keep-last 5');
    await list.scrollIntoViewIfNeeded();
    await h.screenshot('archive-list');
    expect(h.pageErrors).toEqual([]);
  });
});
