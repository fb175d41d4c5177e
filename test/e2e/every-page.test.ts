// axe-core on every page of the console, end to end: a real `borgkeep serve` with a repository
// that holds a real borg backup (and a refused one), Debian's chromium, an admin visiting each
// page the console routes to (web/src/app.tsx) with its data loaded, the login page before, and
// the page a user whose password an admin reset sees first, each in the light and the dark colour
// scheme. No page may have a serious or critical violation. It also takes the README's screenshot
// of a repository on a phone (390x844): test-results/screenshots/repository-phone.png, and
// docs/screenshots/ when missing or with BORGKEEP_UPDATE_SCREENSHOTS=1.
//
// Without chromium this test fails with what to install: it never skips.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeSourceTree, ROOT } from '../helpers/borgkeep-env.js';
import { axeViolations } from './axe.js';
import { startConsoleHarness, type ConsoleHarness } from './browser-harness.js';

describe('every console page passes axe-core', () => {
  let h: ConsoleHarness;
  let sessionId: string;

  beforeAll(async () => {
    h = await startConsoleHarness('bk-e2e-every-page', {
      setup: async (e) => {
        await e.repoWithKeys('main', { admin: 'full', reader: 'read' });
      },
    });
    const src = makeSourceTree(join(h.env.root, 'tree'), 5, 2);
    const repo = h.env.url('main');
    for (const [key, args, ok] of [
      ['admin', ['init', '-e', 'none', repo], true],
      ['admin', ['create', `${repo}::one`, src], true],
      ['reader', ['create', `${repo}::nope`, src], false],
    ] as const) {
      const r = await h.env.borg(key, [...args]);
      expect(r.code === 0, r.stderr).toBe(ok);
    }
    await h.env.cliOk(['audit', 'main']);
    // After the start: a user before it would mean no first admin.
    await h.env.cliOk(['user', 'add', 'dave', '--role', 'viewer']);
    await h.login('admin', h.adminPassword);
  }, 120_000);
  afterAll(() => h?.close());

  /** Opens a path and waits for what shows its data loaded. */
  const visit = async (page: Page, path: string, ready: (p: Page) => Promise<unknown>) => {
    await page.goto(`${h.url}${path}`);
    await ready(page);
  };
  const heading = (name: string | RegExp) => (p: Page) => p.getByRole('heading', { name, level: 1 }).waitFor();
  const row = (selector: string) => (p: Page) => p.locator(selector).first().waitFor();

  it('checks the login page and every page an admin can open', async () => {
    const { page } = h;
    const found: Record<string, string[]> = {};
    // Light and dark: the console follows the system's colour scheme, and contrast differs.
    const check = async (name: string, p: Page = page) => {
      for (const colorScheme of ['light', 'dark'] as const) {
        await p.emulateMedia({ colorScheme });
        const v = await axeViolations(p);
        if (v.length) found[`${name} (${colorScheme})`] = v;
      }
      await p.emulateMedia({ colorScheme: 'light' });
    };

    // Before login, in a browser of its own.
    const anon = await h.newPage();
    await anon.goto(h.url);
    await anon.getByRole('button', { name: 'Log in' }).waitFor();
    await check('login', anon);
    await anon.close();

    const pages: Array<[string, (p: Page) => Promise<unknown>]> = [
      ['/', row('a[href="/repositories/main"]')],
      ['/repositories/main', row('#denials-title')],
      ['/keys', row('text=reader')],
      ['/pull', row('[data-pull-key]')],
      ['/users', row('tr[data-user="dave"]')],
      ['/history', row('table.history tbody tr')],
      ['/history?view=transactions', row('table.transactions tbody tr')],
      ['/history?view=refusals', row('table.refusals tbody tr')],
      ['/alerts', heading('Alerts')],
      ['/settings/alerts', heading(/Settings/)],
      ['/settings/jobs', heading(/Settings/)],
      ['/account', heading('Your account')],
      ['/no-such-page', heading('Not found')],
    ];
    for (const [path, ready] of pages) {
      await visit(page, path, ready);
      await check(path);
    }
    // One session, by its number.
    await visit(page, '/history?view=refusals', row('table.refusals tbody tr'));
    sessionId = (await page.locator('table.refusals tbody tr').first().getAttribute('data-session'))!;
    await visit(page, `/history/sessions/${sessionId}`, heading(`Session #${sessionId}`));
    await check('/history/sessions/N');

    // The page a user whose password was reset sees first.
    page.once('dialog', (d) => void d.accept());
    await visit(page, '/users', row('tr[data-user="dave"]'));
    await page.locator('tr[data-user="dave"]').getByRole('button', { name: 'Reset password' }).click();
    const given = (await page.getByText(/New password of dave, shown only now/).locator('code').textContent())!;
    const dave = await h.newPage();
    await h.login('dave', given, dave);
    await dave.getByRole('heading', { name: 'Choose a new password' }).waitFor();
    await check('choose a new password', dave);
    await dave.close();

    expect(found).toEqual({});
    expect(h.pageErrors).toEqual([]);
  });

  it('shows a repository on a phone (390x844): the README screenshot, and axe there too', async () => {
    const { page } = h;
    await page.setViewportSize({ width: 390, height: 844 });
    try {
      await visit(page, '/repositories/main', row('#denials-title'));
      await page.waitForTimeout(300); // the size chart follows its box's width
      expect(await axeViolations(page)).toEqual([]);
      await h.screenshot('repository-phone');
    } finally {
      await page.setViewportSize({ width: 1280, height: 800 });
    }
    expect(existsSync(join(ROOT, 'docs', 'screenshots', 'repository-phone.png'))).toBe(true);
    expect(h.pageErrors).toEqual([]);
  });
});
