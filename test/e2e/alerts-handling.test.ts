// Handling alerts in the console, end to end: a real `borgkeep serve`, the real borg client through
// its embedded gateway, Debian's chromium and a real SMTP server (smtp-server). An append key's
// delete is refused: the alert opens and its mail arrives; it is acknowledged by keyboard alone;
// the repository is silenced for an hour from the form, and a second key's refused delete opens
// a silenced alert with no mail; the dashboard says a repository nobody initialised waits for
// borg init. axe-core finds no serious or critical violation on the alerts page or the dashboard.

import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMailSink, type MailSink } from '../helpers/alert-receivers.js';
import { makeSourceTree, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { axeViolations } from './axe.js';
import { startConsoleHarness, type ConsoleHarness } from './browser-harness.js';


describe('acknowledging and silencing alerts in the console', () => {
  let h: ConsoleHarness;
  let env: BorgkeepEnv;
  let page: Page;
  let mail: MailSink;

  beforeAll(async () => {
    mail = await startMailSink({ user: 'alerts', password: 'mail secret' });
    h = await startConsoleHarness('bk-e2e-alerts-handling', {
      setup: async (e) => {
        await e.repoWithKeys('main', { admin: 'full', laptop: 'append', phone: 'append' });
        await e.cliOk(['repo', 'create', 'fresh']);
      },
    });
    ({ env, page } = h);
    // The mail server and a mail channel, through the API as the first admin.
    const login = await fetch(`${h.url}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'admin', password: h.adminPassword }) });
    const { csrfToken } = (await login.json()) as { csrfToken: string };
    const headers = { 'content-type': 'application/json', cookie: /^bk_session=[^;]*/.exec(login.headers.get('set-cookie')!)![0], 'x-csrf-token': csrfToken };
    const smtp = { host: '127.0.0.1', port: mail.port, secure: false, requireTls: false, user: 'alerts', password: 'mail secret', from: 'borgkeep <backup@example.org>' };
    expect((await fetch(`${h.url}/api/v1/alert-settings`, { method: 'PATCH', headers, body: JSON.stringify({ smtp }) })).status).toBe(200);
    expect((await fetch(`${h.url}/api/v1/alert-channels`, { method: 'POST', headers, body: JSON.stringify({ name: 'ops', kind: 'email', target: 'ops@example.org' }) })).status).toBe(201);
  }, 120_000);

  afterAll(async () => {
    await h?.close();
    await mail?.close();
  });

  it('acknowledges by keyboard, silences a repository so no mail goes out, and shows a repository waiting for borg init', async () => {
    const backup = (async () => {
      expect((await env.borg('admin', ['init', '-e', 'repokey', env.url('main')])).code).toBe(0);
      const created = await env.borg('laptop', ['create', `${env.url('main')}::monday`, makeSourceTree(join(env.root, 'src'), 1)]);
      expect(created.code, created.stderr).toBe(0);
    })();
    await h.login('admin', h.adminPassword);

    // --- the dashboard: a repository nobody initialised waits for borg init ----------------------
    await backup;
    await page.reload();
    const fresh = page.locator('tr[data-repository="fresh"]');
    await fresh.waitFor();
    expect(await fresh.locator('[data-state="waiting-init"]').textContent()).toBe('waits for borg init');
    expect(await fresh.textContent()).not.toMatch(/\blate\b/);
    await expect.poll(() => page.locator('tr[data-repository="main"] .badge').first().textContent()).toBe('on time');
    expect(await axeViolations(page)).toEqual([]);

    // --- a refused delete opens an alert, and its mail arrives ------------------------------------
    expect((await env.borg('laptop', ['delete', `${env.url('main')}::monday`])).code).not.toBe(0);
    const opened = await mail.waitFor((m) => m.subject.includes("key 'laptop' was refused"), 15_000);
    expect(opened.subject).toContain('ALERT');
    await h.nav(/^Alerts/).click();
    const alert = page.locator('li[data-rule="denial"][data-state="open"]');
    await alert.waitFor({ timeout: 10_000 });
    // Times as the console shows them: relative, exact on hover; never a raw ISO time.
    expect(await alert.textContent()).not.toMatch(/\d{4}-\d\d-\d\dT\d\d:/);
    expect(await alert.locator('.alert-detail time').first().getAttribute('title')).toMatch(/\d{4}/);

    // --- acknowledge it by keyboard alone ----------------------------------------------------------
    await page.locator('h1').focus();
    let focused = '';
    for (let i = 0; i < 60 && focused !== 'Acknowledge'; i++) {
      await page.keyboard.press('Tab');
      focused = (await page.evaluate('document.activeElement?.textContent ?? ""')) as string;
    }
    expect(focused).toBe('Acknowledge');
    await page.keyboard.press('Enter');
    await alert.locator('[data-acknowledged]').waitFor();
    expect(await alert.locator('[data-acknowledged]').textContent()).toMatch(/^acknowledged by admin just now: not sent again/);

    // --- silence the repository for an hour --------------------------------------------------------
    await page.getByLabel('What').selectOption('repository:main');
    await page.getByLabel('For').selectOption(String(3600));
    await page.getByLabel(/^Why/).fill('moving the disks');
    await page.getByRole('button', { name: 'Silence for 1 h' }).click();
    const silence = page.locator('li[data-silence]');
    await silence.waitFor();
    expect(await silence.textContent()).toMatch(/^repository main: silenced until in 1 h by admin \(moving the disks\)/);

    // A new cause on the silenced repository: it opens here, silenced, and sends nothing.
    const mailsBefore = mail.mails.length;
    expect((await env.borg('phone', ['delete', `${env.url('main')}::monday`])).code).not.toBe(0);
    const second = page.locator('li[data-rule="denial"][data-state="open"]', { hasText: "key 'phone'" });
    await second.waitFor({ timeout: 15_000 });
    expect(await second.locator('.badge', { hasText: 'silenced' }).count()).toBe(1);
    // The security rules run every second and deliveries start at once: a few seconds is many rounds.
    await new Promise((r) => setTimeout(r, 4_000));
    expect(mail.mails.slice(mailsBefore).map((m) => m.subject)).toEqual([]);
    expect(await second.textContent()).toContain('Not sent anywhere');
    expect(await axeViolations(page)).toEqual([]);
    await h.screenshot('alerts-handling', { forDocs: false });
    expect(h.pageErrors).toEqual([]);
  });
});
