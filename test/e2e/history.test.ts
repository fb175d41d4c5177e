// The history in the console, end to end: a real `borgkeep serve`, the real borg client through
// its embedded gateway (init, a backup, a list, a refused backup, a check, a compact), Debian's
// chromium. The filter flow by keyboard alone (key and result), cursor pages (Older/Newer), the
// CSV and JSON downloads read back from disk, the audit's session number leading to the same
// session, and an axe-core check with no serious or critical violation.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { makeSourceTree } from '../helpers/borgkeep-env.js';
import { axeViolations } from './axe.js';
import { startConsoleHarness, type ConsoleHarness } from './browser-harness.js';

declare const document: any;

describe('the history in the console', () => {
  let h: ConsoleHarness;

  beforeAll(async () => {
    h = await startConsoleHarness('bk-e2e-history', {
      setup: async (e) => {
        await e.repoWithKeys('main', { admin: 'full', reader: 'read' });
      },
    });
    const src = makeSourceTree(join(h.env.root, 'tree'), 7, 2);
    const borg = async (key: string, args: string[], ok = true) => {
      const r = await h.env.borg(key, args);
      if (ok) expect(r.code, r.stderr).toBe(0);
      else expect(r.code).not.toBe(0);
    };
    const repo = h.env.url('main');
    await borg('admin', ['init', '-e', 'none', repo]);
    await borg('admin', ['create', `${repo}::one`, src]);
    await borg('reader', ['list', repo]);
    await borg('reader', ['create', `${repo}::nope`, src], false);
    await borg('admin', ['check', repo]);
    await borg('admin', ['compact', repo]);
    // An audit records when each archive was first seen: the history then names the backup's archive.
    await h.env.cliOk(['audit', 'main']);
    await h.login('admin', h.adminPassword);
  }, 180_000);
  afterAll(() => h?.close());

  /** Presses Tab until the focused element has this accessible label (a label's text), at most 40 times. */
  const tabTo = async (label: string) => {
    for (let i = 0; i < 40; i++) {
      await h.page.keyboard.press('Tab');
      const here = await h.page.evaluate(() => {
        const el = document.activeElement;
        // A field's label is its first text (the select's options follow it); a button's its text.
        return (el?.labels?.length ? el.labels[0].firstChild?.textContent : el?.textContent ?? '').trim();
      });
      if (here === label) return;
    }
    throw new Error(`Tab never reached '${label}'`);
  };

  it('filters by key and result by keyboard, pages, exports CSV and JSON, and passes axe', async () => {
    const { page } = h;
    await h.nav('History').click();
    const rows = page.locator('table.history tbody tr');
    await rows.first().waitFor();
    // Every borg run, newest first, in the admin's words.
    expect(await rows.evaluateAll((r) => r.map((x) => x.getAttribute('data-kind')))).toEqual(['compact', 'check', 'backup', 'list-extract', 'backup', 'init']);
    // The archive a backup added, once an audit saw it.
    await page.locator('tr[data-kind="backup"][data-result="ok"]').getByText('added archive one').waitFor();

    // Keyboard only: the key, the result, Show.
    await tabTo('Key');
    await page.keyboard.type('reader');
    await tabTo('Result');
    await page.keyboard.type('refused');
    await tabTo('Show');
    await page.keyboard.press('Enter');
    await page.locator('table.history tbody tr[data-result="denied"]').waitFor();
    await expect.poll(() => rows.count()).toBe(1);
    const refused = rows.first();
    expect(await refused.getAttribute('data-kind')).toBe('backup');
    expect(await refused.locator('td').nth(0).textContent()).toBe('Backup');
    expect(await refused.locator('.badge').textContent()).toBe('refused');
    // Storage details one click (or Enter) away.
    await refused.locator('summary').focus();
    await page.keyboard.press('Enter');
    await refused.getByText(/refused put/).waitFor();
    await h.screenshot('history-filter');

    // The CSV download of what is shown.
    const [csv] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'CSV' }).click()]);
    expect(csv.suggestedFilename()).toMatch(/^borgkeep-sessions-\d{4}-\d{2}-\d{2}\.csv$/);
    const csvText = readFileSync((await csv.path())!, 'utf8');
    const lines = csvText.trimEnd().split('\r\n');
    expect(lines[0]!.startsWith('session,started,ended,kind,result,repository,key,')).toBe(true);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(/^\d+,[^,]+,[^,]+,backup,denied,main,reader,read,/);

    // Pages of five: Older, then Newer again, after clearing the filters.
    await page.getByRole('button', { name: 'Clear' }).click();
    await page.getByLabel('Per page').selectOption('5');
    await page.getByRole('button', { name: 'Show' }).click();
    await expect.poll(() => rows.count()).toBe(5);
    const first = await rows.evaluateAll((r) => r.map((x) => x.getAttribute('data-session')));
    await page.getByRole('button', { name: 'Older' }).click();
    await expect.poll(() => rows.count()).toBe(1);
    const second = await rows.evaluateAll((r) => r.map((x) => x.getAttribute('data-session')));
    expect(second.filter((id) => first.includes(id))).toEqual([]);
    expect(await page.getByRole('button', { name: 'Older' }).isDisabled()).toBe(true);
    await page.getByRole('button', { name: 'Newer' }).click();
    await expect.poll(() => rows.evaluateAll((r) => r.map((x) => x.getAttribute('data-session')))).toEqual(first);

    // The JSON download: every session, all six.
    const [json] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'JSON' }).click()]);
    const all = JSON.parse(readFileSync((await json.path())!, 'utf8')) as Array<{ id: number; runKind: string; keyName: string }>;
    expect(all.map((s) => s.runKind)).toEqual(['compact', 'check', 'backup', 'list-extract', 'backup', 'init']);
    expect(all[0]).not.toHaveProperty('pid');

    // A session number leads to the same session.
    await page.locator(`table.history tbody tr[data-session="${all[1]!.id}"] th a`).click();
    await page.getByRole('heading', { name: `Session #${all[1]!.id}` }).waitFor();
    await page.getByText('Check', { exact: true }).waitFor();

    // axe-core on the history page (with its details open) and the session page.
    for (const path of ['/history', `/history/sessions/${all[2]!.id}`]) {
      await page.goto(`${h.url}${path}`);
      await page.locator('h1').waitFor();
      if (path === '/history') await page.locator('table.history tbody tr').first().waitFor();
      expect(await axeViolations(page), path).toEqual([]);
    }
    expect(h.pageErrors).toEqual([]);
  });

  it('lists transactions and refusals with the same filters, pages and exports', async () => {
    const { page } = h;
    await page.goto(`${h.url}/history`);
    await page.locator('table.history tbody tr').first().waitFor();
    // Transactions: the admin's, committed; the backup's among them; each names its session.
    await page.getByRole('radio', { name: 'Transactions' }).check();
    const txns = page.locator('table.transactions tbody tr');
    await txns.first().waitFor();
    const kinds = await txns.evaluateAll((r) => r.map((x) => x.getAttribute('data-kind')));
    expect(kinds).toContain('backup');
    expect(kinds).not.toContain('list-extract');
    await page.getByLabel('Kind of run').selectOption('backup');
    await page.getByLabel('Result').selectOption('committed');
    await page.getByRole('button', { name: 'Show' }).click();
    await expect.poll(() => txns.evaluateAll((r) => r.map((x) => `${x.getAttribute('data-kind')} ${x.getAttribute('data-result')}`))).toEqual(['backup committed']);
    expect(await txns.first().locator('td').nth(3).textContent()).toBe('admin → main');
    const [txCsv] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'CSV' }).click()]);
    expect(txCsv.suggestedFilename()).toMatch(/^borgkeep-transactions-\d{4}-\d{2}-\d{2}\.csv$/);
    const txLines = readFileSync((await txCsv.path())!, 'utf8').trimEnd().split('\r\n');
    expect(txLines[0]!.startsWith('transaction,borg transaction,state,')).toBe(true);
    expect(txLines).toHaveLength(2);
    expect(txLines[1]).toMatch(/,committed,[^,]+,\d+,backup,main,admin,/);

    // Refusals: the kind filter is kept; the result has nothing to choose; the reader's refused put.
    await page.getByRole('radio', { name: 'Refusals' }).check();
    const refusals = page.locator('table.refusals tbody tr');
    await refusals.first().waitFor();
    expect(await page.getByLabel('Kind of run').inputValue()).toBe('backup');
    expect(await page.getByLabel('Result').isDisabled()).toBe(true);
    await expect.poll(() => refusals.count()).toBe(1);
    expect(await refusals.first().locator('td').nth(1).textContent()).toBe('reader → main');
    expect(await refusals.first().locator('td.mono').textContent()).toBe('put');
    // Its session is one click away.
    const sessionId = await refusals.first().getAttribute('data-session');
    const [json] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'JSON' }).click()]);
    const all = JSON.parse(readFileSync((await json.path())!, 'utf8')) as Array<{ sessionId: number; method: string; keyName: string }>;
    expect(all.map((d) => `${d.sessionId} ${d.method} ${d.keyName}`)).toEqual([`${sessionId} put reader`]);
    // A filter that matches nothing says so in words.
    await page.getByRole('combobox', { name: /^Key/ }).selectOption('admin');
    await page.getByRole('button', { name: 'Show' }).click();
    await page.getByText('No refusal matches these filters.').waitFor();
    await page.getByRole('combobox', { name: /^Key/ }).selectOption({ value: '' });
    await page.getByRole('button', { name: 'Show' }).click();
    await refusals.first().locator(`a[href="/history/sessions/${sessionId}"]`).click();
    await page.getByRole('heading', { name: `Session #${sessionId}` }).waitFor();

    // Pages of transactions: every one once, Older then Newer.
    await page.goto(`${h.url}/history`);
    await page.getByRole('radio', { name: 'Transactions' }).check();
    await txns.first().waitFor();
    const total = await txns.count();
    expect(total).toBeGreaterThan(1);
    await page.getByLabel('Per page').selectOption('5');
    await page.getByRole('button', { name: 'Show' }).click();
    await expect.poll(() => txns.count()).toBe(Math.min(5, total));
    expect(h.pageErrors).toEqual([]);
  });

  it('keeps the filters in the URL: reload, back and forward, and the URL opened directly show the same rows', async () => {
    const { page } = h;
    await h.nav('History').click();
    const rows = page.locator('table.history tbody tr');
    await rows.first().waitFor();
    const shown = () => rows.evaluateAll((r) => r.map((x) => `${x.getAttribute('data-kind')} ${x.getAttribute('data-result')}`));
    const all = await shown();
    await page.getByRole('combobox', { name: /^Key/ }).selectOption('admin');
    await page.getByLabel('Kind of run').selectOption('backup');
    await page.getByLabel('Since (your time)').fill('2020-01-02T03:04');
    await page.getByRole('button', { name: 'Show' }).click();
    await expect.poll(shown).toEqual(['backup ok']);
    const url = new URL(page.url());
    expect(url.pathname).toBe('/history');
    expect(Object.fromEntries(url.searchParams)).toEqual({ key: 'admin', kind: 'backup', since: new Date(2020, 0, 2, 3, 4).toISOString() });

    // A reload: the same rows, and the form shows the filters.
    await page.reload();
    await expect.poll(shown).toEqual(['backup ok']);
    expect(await page.getByLabel('Kind of run').inputValue()).toBe('backup');
    expect(await page.getByLabel('Since (your time)').inputValue()).toBe('2020-01-02T03:04');

    // Another view is another URL; back and forward walk between them.
    await page.getByRole('radio', { name: 'Transactions' }).check();
    await page.locator('table.transactions tbody tr').first().waitFor();
    expect(new URL(page.url()).searchParams.get('view')).toBe('transactions');
    await page.goBack();
    await expect.poll(shown).toEqual(['backup ok']);
    expect(await page.getByRole('radio', { name: 'Sessions' }).isChecked()).toBe(true);
    await page.goBack();
    await expect.poll(shown).toEqual(all);
    expect(await page.getByLabel('Kind of run').inputValue()).toBe('');
    await page.goForward();
    await expect.poll(shown).toEqual(['backup ok']);

    // The URL opened directly, in a browser with only the login: the same view.
    const other = await h.newPage();
    await h.login('admin', h.adminPassword, other);
    await other.goto(url.href);
    const otherRows = other.locator('table.history tbody tr');
    await otherRows.first().waitFor();
    expect(await otherRows.evaluateAll((r) => r.map((x) => `${x.getAttribute('data-kind')} ${x.getAttribute('data-result')}`))).toEqual(['backup ok']);
    expect(await other.getByRole('combobox', { name: /^Key/ }).inputValue()).toBe('admin');
    await other.close();
    expect(h.pageErrors).toEqual([]);
  });
});
