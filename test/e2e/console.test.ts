// The console end to end, in a real browser: Debian's chromium driven by playwright-core against
// a real `borgkeep serve` (embedded SSH gateway + API + console on loopback ports). Log in with
// the first-run admin password, create a repository, add a key with a grant, run a real
// `borg init` and a slow `borg create` through the gateway while the page is open and watch the
// session appear, count bytes and end with no reload; audit with the passphrase and approve;
// check the phone width, dark mode and keyboard focus; log out. Screenshots of the dashboard and
// the repository page go to test-results/screenshots (and to docs/screenshots when missing or
// with BORGKEEP_UPDATE_SCREENSHOTS=1).
//
// Without chromium this test fails with what to install: it never skips.

import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSPHRASE, run, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { waitForSession } from '../helpers/ledger-wait.js';
import { overflowAt, startConsoleHarness, type ConsoleHarness } from './browser-harness.js';

// What page.evaluate callbacks use runs in the browser; the Node-side tsconfig has no DOM types.
declare const window: any;
declare const document: any;
declare const getComputedStyle: any;

describe('the web console in a real browser', () => {
  let h: ConsoleHarness;
  let env: BorgkeepEnv;
  let page: Page;
  let url: string;
  let adminPassword: string;

  beforeAll(async () => {
    h = await startConsoleHarness('bk-e2e');
    ({ env, page, url, adminPassword } = h);
  }, 120_000);

  afterAll(async () => {
    await h?.close();
  });

  const screenshot = (name: string, options?: { forDocs?: boolean }) => h.screenshot(name, options);
  const nav = (name: string) => h.nav(name);

  it('logs in, creates a repository, adds a key and grant, watches a real backup live, audits, approves and logs out', async () => {
    // --- log in with the password `borgkeep serve` printed -------------------------------------
    await page.goto(url);
    await page.getByLabel('User').fill('admin');
    await page.getByLabel('Password').fill('wrong password');
    await page.getByRole('button', { name: 'Log in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('wrong user name or password');
    await page.getByLabel('Password').fill(adminPassword);
    await page.getByLabel('Password').press('Enter');
    await page.getByRole('heading', { name: 'Repositories', level: 1 }).waitFor();
    await page.getByText('No repositories yet').waitFor();
    await page.getByText('live', { exact: true }).waitFor(); // the event stream is connected

    // --- a repository, a key with a grant --------------------------------------------------------
    await page.getByLabel('Name').fill('web');
    await page.getByRole('button', { name: 'Create' }).click();
    await page.waitForURL(`${url}/repositories/web`);
    await page.getByRole('heading', { name: 'web', level: 1 }).waitFor();
    await page.getByText('No key may use this repository yet').waitFor();

    const keyFile = join(env.root, 'ssh-keys', 'laptop');
    const keygen = await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'laptop@e2e', '-f', keyFile]);
    expect(keygen.code).toBe(0);
    await nav('Keys').click();
    await page.getByText('No keys yet').waitFor();
    await page.getByLabel('Name').fill('laptop');
    await page.getByLabel('Public key line').fill(readFileSync(`${keyFile}.pub`, 'utf8').trim());
    await page.getByLabel('Grant on').selectOption('web');
    await page.getByLabel('Role').selectOption('full');
    await page.getByRole('button', { name: 'Add key' }).click();
    await page.locator('tr[data-key="laptop"]').waitFor();

    // --- the repository page, open while the backup runs ----------------------------------------
    await nav('Repositories').click();
    await page.locator('tr[data-repository="web"] a').click();
    await page.locator('li[data-grant="laptop"]').waitFor();
    // One grant: its client set-up is open, with this server's SSH port.
    const port = (await env.frontEnd()).port;
    await expect.poll(() => page.locator('.instructions').textContent()).toContain(`borg init --encryption=repokey-blake2 ssh://borg@127.0.0.1:${port}/./web`);
    expect(await page.locator('.instructions').textContent()).toContain('repositories:');
    // A reload would lose this marker.
    await page.evaluate(() => ((window as unknown as { __noReload: boolean }).__noReload = true));

    const init = await env.borg('laptop', ['init', '-e', 'repokey', env.url('web')]);
    expect(init.code, init.stderr).toBe(0);
    // The init session comes and goes live too.
    await page.locator('.live li[data-result="ok"]').first().waitFor();

    const source = join(env.root, 'source');
    mkdirSync(source);
    writeFileSync(join(source, 'random.bin'), randomBytes(8 * 1024 * 1024));
    // 8 MiB at 512 KiB/s: many seconds of a running session with progress in the ledger (at
    // 2 MiB/s a loaded CI machine once saw the backup end before the console showed its bytes,
    // and at 1 MiB/s a loaded full run once saw it end before a ledger read held 1 MB).
    const backup = spawn('borg', ['create', '--upload-ratelimit', '512', '--compression', 'none', `${env.url('web')}::first`, source], {
      env: env.borgEnv('laptop'),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let backupErr = '';
    backup.stderr.on('data', (d: Buffer) => (backupErr += d.toString()));
    const backupDone = new Promise<number | null>((resolve) => backup.on('exit', resolve));

    const running = page.locator('.live li[data-result="open"]');
    await running.waitFor();
    expect(await running.textContent()).toContain('laptop');
    // Bytes in grow while it runs (progress events), shown in MB. The ledger is read first: once
    // it holds 1 MB of progress the client is paused (SIGSTOP), so its session stays open however
    // loaded the machine is, and what is checked is the console alone (a loaded CI machine saw
    // the 8-second backup end before the console showed its bytes, twice).
    await waitForSession(
      async () => (JSON.parse(await env.cliOk(['ledger', '--json', '--repo', 'web'])) as { sessions: Array<{ result: string; bytesIn: number }> }).sessions,
      (all) => {
        const seen = all.find((s) => s.result === 'open' && s.bytesIn >= 1_000_000);
        if (!seen && backup.exitCode !== null) throw new Error(`the backup ended (exit ${backup.exitCode}) before the ledger held its progress: ${backupErr}`);
        return seen;
      },
      'the backup session with 1 MB in',
    );
    backup.kill('SIGSTOP');
    try {
      await expect.poll(() => running.locator('.bytes-in').textContent(), { timeout: 20_000 }).toMatch(/[1-9][0-9.]* MB in/);
    } finally {
      backup.kill('SIGCONT');
    }
    await screenshot('repository-live', { forDocs: false });
    expect(await backupDone, backupErr).toBe(0);
    // It ends without a reload: no running session, and the ledger timeline shows it with its transaction.
    await page.locator('.live li[data-result="open"]').waitFor({ state: 'detached' });
    const ended = page.locator('.timeline li[data-result="ok"]').first();
    await ended.waitFor();
    await expect.poll(() => page.locator('.timeline li[data-result="ok"]').count()).toBe(2);
    await expect.poll(() => page.locator('.timeline').first().textContent()).toContain('committed');
    expect(await page.evaluate(() => (window as unknown as { __noReload?: boolean }).__noReload)).toBe(true);
    await expect.poll(() => page.locator('.facts').textContent()).toContain('on time');
    // The size includes the backup at once (8 MiB, stored uncompressed), not a measurement from before it.
    await expect.poll(() => page.locator('.facts').textContent()).toMatch(/8\.\d MB/);
    // The size chart draws the daily statistics: none yet, so measure now.
    await page.getByText('No statistics yet. They are measured daily').waitFor();
    await page.getByRole('button', { name: 'Measure now' }).click();
    await page.locator('.chart canvas').first().waitFor();

    // --- audit with the passphrase, then approve ------------------------------------------------
    // Without an audit on record the dialog says to run one and offers no approval.
    await page.getByRole('button', { name: 'Approve history' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    expect(await dialog.textContent()).toContain('No audit is on record. Run an audit first');
    expect(await dialog.getByRole('button', { name: /^Approve through/ }).count()).toBe(0);
    await dialog.getByRole('button', { name: 'Close' }).click();
    await dialog.waitFor({ state: 'detached' });
    await page.getByLabel(/^Passphrase/).fill(PASSPHRASE);
    await page.getByRole('button', { name: 'Run audit' }).click();
    await page.locator('.audit-report[data-verdict="clean"]').waitFor();
    const report = page.locator('.audit-report');
    await expect.poll(() => report.textContent()).toContain('added: first');
    expect(await report.textContent()).toContain('last known-good');
    expect(await page.locator('.audit-report .step').count()).toBeGreaterThanOrEqual(2);
    // A write after the audit: the approval below is of what the audit showed, so it does not cover this.
    writeFileSync(join(source, 'later.txt'), 'written after the audit');
    const later = await env.borg('laptop', ['create', `${env.url('web')}::later`, source]);
    expect(later.code, later.stderr).toBe(0);
    const shown = await page.evaluate(async () => ((await (await fetch('/api/v1/repositories/web/audit')).json()) as { event: { throughTxn: number } }).event.throughTxn);
    const newest = await page.evaluate(
      async () =>
        ((await (await fetch('/api/v1/sessions?repository=web&limit=1')).json()) as { sessions: Array<{ transactions: Array<{ borgTransactionId: number }> }> }).sessions[0]!.transactions.at(-1)!
          .borgTransactionId,
    );
    expect(newest).toBeGreaterThan(shown);
    // A clean audit with the passphrase opens the gate; approving records the review anyway. The
    // dialog shows the audit's summary first; Cancel changes nothing.
    await page.getByRole('button', { name: 'Approve history' }).click();
    await dialog.waitFor();
    const summary = (await dialog.textContent()) ?? '';
    expect(summary).toContain('clean');
    expect(summary).toContain('No suspicious transactions.');
    expect(summary).toContain('Archives removed: none.');
    expect(summary).toContain(`Approves history through transaction ${shown}.`);
    expect(await dialog.locator('time').count()).toBe(1);
    await screenshot('approve-dialog', { forDocs: false });
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await dialog.waitFor({ state: 'detached' });
    expect(await page.locator('p.gate').textContent()).not.toContain('approved');
    await page.getByRole('button', { name: 'Approve history' }).click();
    await dialog.getByRole('button', { name: `Approve through transaction ${shown}` }).click();
    await dialog.waitFor({ state: 'detached' });
    await expect.poll(() => page.locator('p.gate').getAttribute('data-gate')).toBe('open');
    // Approved by the console user, through the transaction shown, not the later write's.
    await expect.poll(() => page.locator('p.gate').textContent()).toContain(`admin approved the history through transaction ${shown} at`);
    await page.evaluate(() => window.scrollTo(0, 0));
    await screenshot('repository');

    // --- dashboard: the state at a glance --------------------------------------------------------
    await nav('Repositories').click();
    const row = page.locator('tr[data-repository="web"]');
    await row.waitFor();
    expect(await row.textContent()).toMatch(/on time/);
    expect(await row.textContent()).toMatch(/clean/);
    expect(await row.textContent()).toMatch(/compaction goes through/);
    expect(await row.textContent()).toMatch(/8\.\d MB/);
    // Relative times carry the exact time on hover.
    expect(await row.locator('time').first().getAttribute('title')).toMatch(/\d{4}/);
    await screenshot('dashboard');

    // --- keyboard, phone width, dark mode --------------------------------------------------------
    // After a page change focus is on the content: the first Tab reaches the repository, Enter opens it.
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('web');
    await page.keyboard.press('Enter');
    await page.waitForURL(`${url}/repositories/web`);
    await page.locator('li[data-grant="laptop"]').waitFor();
    // On a fresh load (here of the page's own address: the SPA fallback) the first Tab is the skip link.
    await page.reload();
    await page.locator('li[data-grant="laptop"]').waitFor();
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Skip to content');
    const phone = await overflowAt(page, 375);
    expect(phone.wide, 'elements wider than a phone').toEqual([]);
    expect(phone.scrollWidth).toBeLessThanOrEqual(375);
    await page.emulateMedia({ colorScheme: 'dark' });
    const dark = await page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
    await page.emulateMedia({ colorScheme: 'light' });
    const light = await page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
    expect(dark).not.toBe(light);
    await page.setViewportSize({ width: 1280, height: 800 });

    // --- log out ---------------------------------------------------------------------------------
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByRole('button', { name: 'Log in' }).waitFor();
    const after = await page.evaluate(async () => (await fetch('/api/v1/session')).status);
    expect(after).toBe(401);

    expect(h.pageErrors).toEqual([]);
  }, 180_000);
});
