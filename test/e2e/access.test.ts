// Access editing end to end, in a real browser against a real `borgkeep serve` with the real borg
// client: an append grant edited to read (by keyboard alone) makes the next `borg create` fail
// while `borg list` still works; a key that has a grant gets one on a second repository from the
// Keys page and backs up into it; a quota set below what a repository holds asks first and shows
// the current use; the Keys page lists each key's grants and its last use. axe-core checks the
// Keys page and the repository page (no serious or critical violation).
//
// Without chromium this test fails with what to install: it never skips.

import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { axeViolations } from './axe.js';
import { startConsoleHarness, type ConsoleHarness } from './browser-harness.js';

declare const document: any;


/** Presses Tab until the focused element has this accessible label (keyboard only, no clicks). */
async function tabTo(page: Page, label: string, max = 80): Promise<void> {
  for (let i = 0; i < max; i += 1) {
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => document.activeElement?.getAttribute('aria-label') ?? document.activeElement?.textContent ?? '');
    if (focused === label) return;
  }
  throw new Error(`Tab never reached '${label}'`);
}

describe('editing access in the console', () => {
  let h: ConsoleHarness;
  let env: BorgkeepEnv;
  let page: Page;
  let url: string;

  beforeAll(async () => {
    h = await startConsoleHarness('bk-e2e-access', {
      setup: async (e) => {
        await e.repoWithKeys('web', { laptop: 'full', office: 'append' });
        await e.cliOk(['repo', 'create', 'db']);
      },
    });
    ({ env, page, url } = h);
    await h.login('admin', h.adminPassword);
    const init = await env.borg('laptop', ['init', '-e', 'repokey', env.url('web')]);
    expect(init.code, init.stderr).toBe(0);
  }, 120_000);

  afterAll(async () => {
    await h?.close();
  });

  it('edits an append grant to read by keyboard alone: the real borg client can list but no longer create', async () => {
    const source = join(env.root, 'source');
    mkdirSync(source);
    writeFileSync(join(source, 'a.bin'), randomBytes(64 * 1024));
    const first = await env.borg('office', ['create', `${env.url('web')}::first`, source]);
    expect(first.code, first.stderr).toBe(0);

    await h.nav('Keys').click();
    const office = page.locator('tr[data-key="office"]');
    await expect.poll(() => office.textContent()).toContain('append');
    // The key was used a moment ago; laptop too (borg init), so neither says "never".
    await expect.poll(() => office.locator('td').nth(2).textContent()).toMatch(/ago|just now/);
    expect(await axeViolations(page)).toEqual([]);

    await tabTo(page, 'Edit the grant of office on web');
    await page.keyboard.press('Enter');
    const editor = page.getByRole('form', { name: 'Edit the grant of office on web' });
    await editor.waitFor();
    // Focus starts on the role: ArrowDown moves append to read; Tab to the backups field, Enter saves.
    await page.keyboard.press('ArrowDown');
    expect(await editor.getByLabel('Role').inputValue()).toBe('read');
    // A bad value is refused in the CLI's sentence and nothing changes.
    await page.keyboard.press('Tab');
    await page.keyboard.type('0');
    await page.keyboard.press('Enter');
    await expect.poll(() => editor.getByRole('alert').textContent()).toBe('backups per day (writes per day) must be a whole number of at least 1, not 0');
    await page.keyboard.press('Backspace');
    await page.keyboard.press('Enter');
    await editor.waitFor({ state: 'detached' });
    await expect.poll(() => office.locator('li[data-grant="web"]').textContent()).toContain('read');
    expect(await axeViolations(page)).toEqual([]);

    const refused = await env.borg('office', ['create', `${env.url('web')}::second`, source]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/read/);
    const listed = await env.borg('office', ['list', '--short', env.url('web')]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout.trim().split('\n')).toEqual(['first']);
  });

  it('adds a grant on a second repository to a key that has one, and the key backs up into it', async () => {
    await page.goto(`${url}/keys`);
    const laptop = page.locator('tr[data-key="laptop"]');
    await laptop.getByRole('button', { name: 'Add grant for laptop' }).click();
    const form = page.getByRole('form', { name: 'Grant laptop a role on another repository' });
    await form.getByLabel('Repository').selectOption('db');
    await form.getByLabel('Role').selectOption('full');
    await form.getByRole('button', { name: 'Add grant' }).click();
    await form.waitFor({ state: 'detached' });
    await expect.poll(() => laptop.locator('.key-grants li').allTextContents()).toEqual([expect.stringContaining('db'), expect.stringContaining('web')]);

    const init = await env.borg('laptop', ['init', '-e', 'repokey', env.url('db')]);
    expect(init.code, init.stderr).toBe(0);
    const data = join(env.root, 'data-db');
    mkdirSync(data);
    // 12 MB that does not compress: more than the smallest quota borg takes (10 MB).
    writeFileSync(join(data, 'big.bin'), randomBytes(12 * 1024 * 1024));
    const backup = await env.borg('laptop', ['create', '--compression', 'none', `${env.url('db')}::nightly`, data]);
    expect(backup.code, backup.stderr).toBe(0);
  });

  it('warns before a quota below the current use, shows that use, and sets it only when confirmed', async () => {
    await page.goto(`${url}/repositories/db`);
    const facts = page.locator('.facts');
    await expect.poll(() => facts.textContent()).toMatch(/1[23](\.\d)? MB/);
    const limits = page.getByRole('region', { name: 'Quota and schedule' });
    await expect.poll(() => limits.textContent()).toMatch(/now 1[23](\.\d)? MB used/);
    expect(await axeViolations(page)).toEqual([]);

    // The CLI's sentences for what it cannot read.
    await limits.getByRole('textbox', { name: /^Quota/ }).fill('lots');
    await limits.getByRole('button', { name: 'Save quota and schedule' }).click();
    await expect.poll(() => limits.getByRole('alert').textContent()).toBe("the quota 'lots' is not a size; use a number with an optional K, M, G, T or P suffix, e.g. 500G");

    await limits.getByRole('textbox', { name: /^Quota/ }).fill('11M');
    await limits.getByRole('textbox', { name: /^Expected backup every/ }).fill('2d');
    await limits.getByRole('button', { name: 'Save quota and schedule' }).click();
    const warning = page.getByRole('alertdialog');
    await warning.waitFor();
    expect(await warning.textContent()).toMatch(/db holds 1[23](\.\d)? MB now; the quota would be 11 MB/);
    await warning.getByRole('button', { name: 'Keep the current quota' }).click();
    await warning.waitFor({ state: 'detached' });
    expect(await facts.textContent()).not.toContain('quota');

    await limits.getByRole('button', { name: 'Save quota and schedule' }).click();
    await page.getByRole('alertdialog').getByRole('button', { name: 'Set the quota to 11 MB anyway' }).click();
    await expect.poll(() => facts.textContent()).toContain('of 11 MB quota');
    await expect.poll(() => facts.textContent()).toContain('expected every 2 days');
    expect(await axeViolations(page)).toEqual([]);
    // A grant is edited on the repository page too: a range with host bits is refused in the CLI's sentence.
    const grant = page.locator('li[data-grant="laptop"]');
    await grant.getByRole('button', { name: 'Edit the grant of laptop' }).click();
    const editor = page.getByRole('form', { name: 'Edit the grant of laptop on db' });
    await editor.getByRole('textbox', { name: /^Source addresses/ }).fill('10.0.0.1/8');
    await editor.getByRole('button', { name: 'Save grant' }).click();
    await expect.poll(() => editor.getByRole('alert').textContent()).toBe("'10.0.0.1/8' has address bits set past its /8 prefix; did you mean 10.0.0.0/8?");
    await editor.getByRole('textbox', { name: /^Source addresses/ }).fill('127.0.0.0/8, ::1');
    await editor.getByRole('button', { name: 'Save grant' }).click();
    await editor.waitFor({ state: 'detached' });
    await expect.poll(() => grant.textContent()).toContain('from 127.0.0.0/8, ::1/128');
    const stillAllowed = await env.borg('laptop', ['list', '--short', env.url('db')]);
    expect(stillAllowed.code, stillAllowed.stderr).toBe(0);

    // The browser logs the refused edit's 400 (writes per day 0 and a range with host bits, on purpose).
    expect(h.pageErrors.filter((e) => !/status of 400 \(Bad Request\)/.test(e))).toEqual([]);
  });
});
