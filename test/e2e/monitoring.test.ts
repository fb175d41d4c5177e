// Monitoring in the console, end to end: a real `borgkeep serve`, the real borg client through its
// embedded gateway, Debian's chromium, and a real HTTP receiver for a webhook channel. Add the
// channel in Settings → Alerts and send a test (success, then a receiver that fails); change a
// limit and the mail server (its password stays write-only); have an append key's `borg delete`
// refused and see the alert open on the Alerts page, with the key, the method and the webhook
// delivery, and its count in the navigation; measure the statistics from the repository page and
// see the size chart; the jobs list; and a viewer sees all of it read-only.

import { createHmac } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeSourceTree, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { startHttpSink, type HttpSink } from '../helpers/alert-receivers.js';
import { overflowAt, startConsoleHarness, type ConsoleHarness } from './browser-harness.js';

const SECRET = 'a-webhook-secret-of-some-length';
const VIEWER_PASSWORD = 'viewer password for the e2e test';

describe('alerts, channels, jobs and statistics in the console', () => {
  let h: ConsoleHarness;
  let env: BorgkeepEnv;
  let page: Page;
  let hook: HttpSink;

  beforeAll(async () => {
    hook = await startHttpSink();
    h = await startConsoleHarness('bk-e2e-monitoring', {
      setup: (e) => e.repoWithKeys('main', { admin: 'full', laptop: 'append' }),
    });
    ({ env, page } = h);
    // After serve's first start, which creates the admin only on a store without users.
    const passwordFile = join(env.root, 'viewer-password');
    writeFileSync(passwordFile, VIEWER_PASSWORD);
    await env.cliOk(['user', 'add', 'watcher', '--role', 'viewer', '--password-file', passwordFile]);
  }, 120_000);

  afterAll(async () => {
    await h?.close();
    await hook?.close();
  });

  it('sends a test to a webhook, shows a refused delete as an alert, measures the size, and is read-only for viewers', async () => {
    // A backup to refuse a delete of, made while the browser logs in.
    const backup = (async () => {
      expect((await env.borg('admin', ['init', '-e', 'repokey', env.url('main')])).code).toBe(0);
      const created = await env.borg('laptop', ['create', `${env.url('main')}::monday`, makeSourceTree(join(env.root, 'src'), 1)]);
      expect(created.code, created.stderr).toBe(0);
    })();
    await h.login('admin', h.adminPassword);

    // --- no channel yet: both pages say what to do --------------------------------------------
    await h.nav('Alerts').click();
    await page.getByRole('heading', { name: 'Alerts', level: 1 }).waitFor();
    await page.getByText('Nothing is wrong right now').waitFor();
    await page.getByRole('note').getByRole('link', { name: 'Add a mail address or webhook' }).click();
    await page.waitForURL(`${h.url}/settings/alerts`);
    await page.getByText('No channels: add a mail address or webhook so alerts reach you.').waitFor();

    // --- a webhook channel, and "Send test" ------------------------------------------------------
    await page.getByLabel('Channel name').fill('hook');
    await page.getByLabel('Kind').selectOption('webhook');
    await page.getByLabel('Webhook URL').fill(hook.url);
    await page.getByLabel('Format').selectOption('json');
    await page.getByLabel(/^Secret/).fill(SECRET);
    await page.getByRole('button', { name: 'Add channel' }).click();
    const channel = page.locator('li[data-channel="hook"]');
    await channel.waitFor();
    expect(await channel.textContent()).toContain('signed');
    await channel.getByRole('button', { name: 'Send test' }).click();
    await expect.poll(() => channel.getByRole('status').textContent()).toBe('Test message sent to hook: check that it arrived.');
    const probe = await hook.waitFor((r) => r.headers['x-borgkeep-event'] === 'test', 10_000);
    expect(JSON.parse(probe.body)).toMatchObject({ event: 'test' });
    expect(probe.headers['x-borgkeep-signature']).toBe(`sha256=${createHmac('sha256', SECRET).update(`${probe.headers['x-borgkeep-timestamp']}.${probe.body}`).digest('hex')}`);
    // A receiver that fails: the sentence says so and why.
    hook.status = 500;
    await channel.getByRole('button', { name: 'Send test' }).click();
    await expect.poll(() => channel.getByRole('status').textContent()).toMatch(/^The test message to hook failed: .*500/);
    hook.status = 200;
    // Disable and enable again.
    await channel.getByRole('button', { name: 'Disable' }).click();
    await channel.getByText('disabled', { exact: true }).waitFor();
    await channel.getByRole('button', { name: 'Enable' }).click();
    await channel.getByRole('button', { name: 'Disable' }).waitFor();

    // --- limits with their defaults, and the mail server -----------------------------------------
    const warn = page.locator('input[name="quotaWarnPercent"]');
    expect(await warn.inputValue()).toBe('80');
    expect(await page.locator('input[name="repeatSeconds"]').inputValue()).toBe('240'); // 4 h, in minutes
    await warn.fill('85');
    // The settings the page reads again after saving the limits arrive only once the mail
    // server's form below has been filled in: what the admin typed there must stay (a reload
    // used to put the stored values back, which a loaded machine did by itself now and then).
    let typed!: () => void;
    const typing = new Promise<void>((resolve) => (typed = resolve));
    let reloaded!: () => void;
    const reload = new Promise<void>((resolve) => (reloaded = resolve));
    let held = false;
    await page.route('**/alert-settings', async (route) => {
      if (route.request().method() !== 'GET' || held) return route.continue();
      held = true;
      const response = await route.fetch();
      await typing;
      await route.fulfill({ response });
      reloaded();
    });
    await page.getByRole('button', { name: 'Save limits' }).click();
    await page.getByText('Saved.', { exact: true }).waitFor();
    await page.getByLabel('Host', { exact: true }).fill('127.0.0.1');
    await page.getByLabel('Port', { exact: true }).fill('2525');
    await page.getByLabel('Encryption').selectOption('starttls-optional');
    await page.getByLabel(/^User/).fill('borgkeep');
    await page.getByLabel(/^Password/).fill('mail password');
    await page.getByLabel('From', { exact: true }).fill('borgkeep <backup@example.org>');
    typed();
    await reload;
    await expect.poll(() => page.locator('label', { has: warn }).textContent()).toContain('default 80');
    expect(await page.getByLabel('Host', { exact: true }).inputValue()).toBe('127.0.0.1');
    expect(await page.getByLabel('From', { exact: true }).inputValue()).toBe('borgkeep <backup@example.org>');
    await page.getByRole('button', { name: 'Save mail server' }).click();
    await page.getByText('Saved. Send a test').waitFor();
    await page.reload();
    expect(await warn.inputValue()).toBe('85');
    await expect.poll(() => page.getByLabel('Host', { exact: true }).inputValue()).toBe('127.0.0.1');
    expect(await page.getByLabel('Encryption').inputValue()).toBe('starttls-optional');
    // Write-only: the page knows a password is set, never what it is.
    expect(await page.getByLabel(/^Password/).inputValue()).toBe('');
    expect(await page.locator('label', { has: page.getByLabel(/^Password/) }).textContent()).toContain('set; leave blank to keep it');
    await h.screenshot('settings-alerts', { forDocs: false });

    // --- an append key's delete is refused: the alert opens -------------------------------------
    await backup;
    await h.nav('Alerts').click();
    await page.getByText('Nothing is wrong right now').waitFor();
    const refused = await env.borg('laptop', ['delete', `${env.url('main')}::monday`]);
    expect(refused.code).not.toBe(0);
    const ledger = JSON.parse(await env.cliOk(['ledger', '--repo', 'main', '--json'])) as { sessions: Array<{ denials?: Array<{ method: string }> }> };
    const method = ledger.sessions.flatMap((s) => s.denials ?? [])[0]?.method;
    expect(method).toBeDefined();
    // No reload: the page looks again after the live stream reports the refusal.
    const alert = page.locator('li[data-rule="denial"][data-state="open"]');
    await alert.waitFor({ timeout: 10_000 });
    const text = (await alert.textContent()) ?? '';
    expect(text).toContain('critical');
    expect(text).toContain(`key 'laptop' was refused ${method} on 'main'`);
    expect(await alert.getByRole('link', { name: 'main' }).getAttribute('href')).toBe('/repositories/main');
    expect(await alert.locator('time').first().getAttribute('title')).toMatch(/\d{4}/);
    await expect.poll(() => h.nav(/^Alerts/).textContent()).toBe('Alerts 1 open');
    // Its delivery to the webhook, as sent, and the receiver has it.
    await expect.poll(() => alert.locator('li[data-channel="hook"] .delivery').first().getAttribute('data-state'), { timeout: 10_000 }).toBe('sent');
    expect(await alert.locator('li[data-channel="hook"]').textContent()).toMatch(/opened\s*sent/);
    const posted = await hook.waitFor((r) => r.body.includes('"rule":"denial"'), 10_000);
    expect(JSON.parse(posted.body)).toMatchObject({ event: 'opened', alert: { rule: 'denial', repository: 'main' } });
    await h.screenshot('alerts', { forDocs: false });

    // --- statistics: measured from the repository page, then the chart ---------------------------
    await h.nav('Repositories').click();
    await page.locator('tr[data-repository="main"] a').click();
    await page.getByText('No statistics yet. They are measured daily').waitFor();
    expect(await page.locator('.chart').count()).toBe(0);
    await page.getByRole('button', { name: 'Measure now' }).click();
    await page.locator('.chart canvas').first().waitFor();
    const measured = page.locator('p[data-stats="1"]');
    await measured.waitFor();
    expect(await measured.textContent()).toMatch(/Measured just now: [\d.]+ [KM]B on disk, \d+ objects/);
    expect(await page.locator('.chart').getAttribute('aria-label')).toMatch(/^size on disk over 1 measurement: [\d.]+ [KM]B/);

    // --- the jobs --------------------------------------------------------------------------------
    await h.nav('Settings').click();
    await page.getByRole('navigation', { name: 'Settings' }).getByRole('link', { name: 'Jobs' }).click();
    await page.waitForURL(`${h.url}/settings/jobs`);
    const statistics = page.locator('tr[data-job="statistics"]');
    await statistics.waitFor();
    expect(await statistics.getAttribute('data-result')).toBe('ok');
    expect(await statistics.textContent()).toContain('measured 1 repository');
    for (const name of ['alerts-security', 'alerts-state', 'audits']) expect(await page.locator(`tr[data-job="${name}"]`).count(), name).toBe(1);
    const alertsState = page.locator('tr[data-job="alerts-state"]');
    await alertsState.getByRole('button', { name: 'Run now' }).click();
    await expect.poll(() => alertsState.textContent()).toMatch(/ok.*opened, \d+ repeated, \d+ resolved/);
    await h.screenshot('settings-jobs', { forDocs: false });
    // On a phone nothing is wider than the screen: the jobs, the alert settings, the alerts.
    for (const path of ['/settings/jobs', '/settings/alerts', '/alerts']) {
      await page.goto(`${h.url}${path}`);
      await page.getByRole('heading', { level: 2 }).first().waitFor();
      const phone = await overflowAt(page, 375);
      expect(phone.wide, `elements wider than a phone on ${path}`).toEqual([]);
      expect(phone.scrollWidth, path).toBeLessThanOrEqual(375);
      await page.setViewportSize({ width: 1280, height: 800 });
    }

    // --- a viewer reads the same pages, read-only ------------------------------------------------
    const viewer = await h.newPage();
    await h.login('watcher', VIEWER_PASSWORD, viewer);
    await viewer.goto(`${h.url}/settings/alerts`);
    await viewer.locator('li[data-channel="hook"]').waitFor();
    expect(await viewer.getByRole('button', { name: 'Send test' }).count()).toBe(0);
    expect(await viewer.getByRole('button', { name: 'Add channel' }).count()).toBe(0);
    await viewer.getByText('Only admins change these.').waitFor();
    expect(await viewer.locator('input[name="quotaWarnPercent"]').isDisabled()).toBe(true);
    expect(await viewer.getByLabel('Host', { exact: true }).isDisabled()).toBe(true);
    expect(await viewer.getByRole('button', { name: 'Save mail server' }).count()).toBe(0);
    await viewer.goto(`${h.url}/settings/jobs`);
    await viewer.locator('tr[data-job="statistics"]').waitFor();
    expect(await viewer.getByRole('button', { name: 'Run now' }).count()).toBe(0);
    await viewer.goto(`${h.url}/alerts`);
    await viewer.locator('li[data-rule="denial"]').waitFor();
    await viewer.goto(`${h.url}/repositories/main`);
    await viewer.locator('.chart canvas').first().waitFor();
    expect(await viewer.getByRole('button', { name: 'Measure now' }).count()).toBe(0);

    expect(h.pageErrors).toEqual([]);
  }, 60_000);
});
