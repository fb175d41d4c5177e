// Pull backups in the console, end to end: a real `borgkeep serve`, real SQLite, Debian's
// chromium, hosts added with the built CLI (`borgkeep host add`). The page lists the hosts (repository, schedule, host key accepted or not, last job)
// and the jobs; a running job's progress (bytes, files, current path) moves in the page as its
// runner writes it to the store from another process, through the live channel, without a
// reload; its log shows, follows new lines while the job runs, and downloads; "Run now" queues a
// job; axe-core finds no serious or critical violation (light and dark); a phone width does not
// overflow; the page is keyboard usable (the log link and Run now work from the keyboard); a
// viewer sees it all but Run now; the key a host offered shows, and an admin accepts it.
//
// The running job is arranged by runningJob() below (the store, as the runner writes it) until
// the runner is merged; the lead then replaces that one function with a real pull job.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../../src/store/database.js';
import { arrangeRunningJob, openSideStore, type ArrangedJob } from '../helpers/pull-fixture.js';
import { axeViolations } from './axe.js';
import { overflowAt, startConsoleHarness, type ConsoleHarness } from './browser-harness.js';

const FINGERPRINT = 'SHA256:' + 'Q'.repeat(43);
const OFFERED = 'SHA256:' + 'R'.repeat(43);
const VIEWER_PASSWORD = 'viewer password for the pull e2e test';

describe('pull backups in the console', () => {
  let h: ConsoleHarness;
  let page: Page;
  let store: Store;

  /** A job of web1 under way, as the runner (another process) leaves it in the store. */
  const runningJob = (): Promise<ArrangedJob> => arrangeRunningJob(store, 'web1', 'web1-2026-12-06T15:00:00');

  beforeAll(async () => {
    h = await startConsoleHarness('bk-e2e-pull', { setup: (e) => e.cliOk(['repo', 'create', 'main']).then(() => undefined) });
    page = h.page;
    store = await openSideStore(h.env.dataDir);
    await h.env.cliOk(['host', 'add', 'web1', '--address', '192.0.2.7', '--user', 'backup', '--repo', 'main', '--paths', '/etc,/home', '--schedule', '0 2 * * *']);
    await h.env.cliOk(['host', 'add', 'db1', '--address', 'db.example.org:2222', '--user', 'backup', '--repo', 'main', '--paths', '/etc,/home', '--accept-host-key', FINGERPRINT]);
    // The key web1 offered at a first contact, as the runner notes it.
    await store.notePullHostKeyOffered((await store.getPullHost('web1')).id, OFFERED);
    // After serve's first start, which creates the admin only on a store without users.
    const passwordFile = join(h.env.root, 'viewer-password');
    writeFileSync(passwordFile, VIEWER_PASSWORD);
    await h.env.cliOk(['user', 'add', 'vic', '--role', 'viewer', '--password-file', passwordFile]);
  }, 60_000);
  afterAll(async () => {
    await store?.close();
    await h?.close();
  });

  it('lists hosts and jobs, shows a running job move live, its log following and downloading, and queues a job', async () => {
    await h.login('admin', h.adminPassword);
    await h.nav('Pull backups').click();
    await page.getByRole('heading', { name: 'Pull backups', level: 1 }).waitFor();

    // --- the hosts ---------------------------------------------------------------------------------
    const web1 = page.locator('tr[data-host="web1"]');
    await web1.waitFor();
    expect(await web1.locator('[data-host-key]').textContent()).toContain('not accepted yet');
    expect(await web1.locator(`[data-offered-key="${OFFERED}"]`).textContent()).toMatch(/^The host offered (just now|.* ago): SHA256:R+Compare it with ssh-keygen/);
    expect(await web1.textContent()).toContain('0 2 * * *');
    expect(await web1.getByRole('link', { name: 'main' }).getAttribute('href')).toBe('/repositories/main');
    expect(await web1.textContent()).toContain('none yet');
    const db1 = page.locator('tr[data-host="db1"]');
    expect(await db1.locator('[data-host-key]').textContent()).toContain('accepted');
    expect(await db1.textContent()).toContain(FINGERPRINT);
    expect(await db1.textContent()).toContain('only when run by hand');
    // Times in words, never raw ISO.
    expect(await web1.textContent()).toMatch(/next in \d/);
    expect(await page.locator('main').textContent()).not.toMatch(/\d{4}-\d\d-\d\dT\d\d:/);

    // --- the pull key line, with its copy button --------------------------------------------------
    await page.context().grantPermissions(['clipboard-read', 'clipboard-write']);
    const keyLine = (await page.locator('[data-pull-key]').textContent())!;
    expect(keyLine).toMatch(/^restrict,port-forwarding,permitlisten="127\.0\.0\.1:\*" ssh-ed25519 \S+ borgkeep-pull$/);
    await page.getByRole('button', { name: 'Copy the pull key line' }).click();
    await page.getByText('Copied.').waitFor();

    // --- a running job's progress, live -----------------------------------------------------------
    const job = await runningJob();
    await job.progress(1_500_000, 3, '/etc/hosts');
    const running = page.locator(`li[data-running-job="${job.id}"]`);
    await running.waitFor();
    expect(await running.textContent()).toContain('backing up');
    await expect.poll(() => running.locator('.job-bytes').textContent()).toBe('1.5 MB');
    expect(await running.locator('.job-files').textContent()).toBe('3');
    expect(await running.locator('.job-path').textContent()).toBe('/etc/hosts');
    const reloads: string[] = [];
    page.on('framenavigated', (f) => f === page.mainFrame() && reloads.push(f.url()));
    await job.progress(2_300_000_000, 1234, '/home/ann/photos/2026/beach.jpg');
    await expect.poll(() => running.locator('.job-bytes').textContent(), { timeout: 10_000 }).toBe('2.3 GB');
    expect(await running.locator('.job-files').textContent()).toBe('1,234');
    expect(await running.locator('.job-path').textContent()).toBe('/home/ann/photos/2026/beach.jpg');
    expect(reloads).toEqual([]);
    // The jobs table and the host's last job follow too.
    const row = page.locator(`table.pull-jobs tr[data-job="${job.id}"]`);
    await expect.poll(() => row.locator('.job-bytes').textContent()).toBe('2.3 GB');
    expect(await row.textContent()).toContain('a person');
    expect(await row.textContent()).toContain('web1-2026-12-06T15:00:00');
    expect(await web1.textContent()).toContain('backing up');

    // --- its log: shown, followed while it runs (keyboard: the Log link by Tab and Enter) -----------
    await job.log('Creating archive at "ssh://borgkeep@127.0.0.1:40000/./job::web1-2026-12-06T15:00:00"');
    const logLink = row.getByRole('link', { name: `Show the log of job ${job.id}` });
    await logLink.focus();
    await page.keyboard.press('Enter');
    await page.waitForURL(`${h.url}/pull?job=${job.id}`);
    const detail = page.locator(`[data-job-detail="${job.id}"]`);
    await detail.getByRole('heading', { name: `Job ${job.id} of web1` }).waitFor();
    const lines = detail.getByRole('list', { name: 'Log' });
    await expect.poll(() => lines.locator('li').count()).toBe(2);
    expect(await lines.textContent()).toContain('Creating archive at');
    await job.log('/home/ann/photos/2026/beach.jpg');
    await expect.poll(() => lines.locator('li').count(), { timeout: 10_000 }).toBe(3);
    expect(await detail.textContent()).toContain('Following the job');

    // axe on the page with hosts, jobs, a running job and its log, in both colour schemes.
    for (const colorScheme of ['light', 'dark'] as const) {
      await page.emulateMedia({ colorScheme });
      expect(await axeViolations(page), colorScheme).toEqual([]);
    }
    await page.emulateMedia({ colorScheme: 'light' });
    await h.screenshot('pull-backups');

    // --- the job ends: the page says so, the log has its last line ------------------------------
    await job.end('done');
    await expect.poll(() => row.getAttribute('data-state'), { timeout: 10_000 }).toBe('done');
    await running.waitFor({ state: 'detached' });
    await page.getByText('No pull job is running.').waitFor();
    await expect.poll(() => lines.locator('li').count(), { timeout: 10_000 }).toBe(4);
    expect(await lines.locator('li').last().textContent()).toContain(`job ${job.id} done: archive web1-2026-12-06T15:00:00`);
    expect(await detail.textContent()).not.toContain('Following the job');
    expect(await web1.locator('td[data-label="Last job"]').textContent()).toContain('done');

    // --- the download -------------------------------------------------------------------------------
    const [download] = await Promise.all([page.waitForEvent('download'), detail.getByRole('link', { name: 'Download the log' }).click()]);
    expect(download.suggestedFilename()).toBe(`borgkeep-pull-job-${job.id}.log`);
    const text = readFileSync((await download.path())!, 'utf8');
    expect(text.trimEnd().split('\n')).toHaveLength(4);
    expect(text).toContain('/home/ann/photos/2026/beach.jpg');

    // --- Run now (keyboard) -------------------------------------------------------------------------
    const runNow = db1.getByRole('button', { name: 'Run now: db1' });
    await runNow.focus();
    await page.keyboard.press('Enter');
    const said = await db1.getByRole('status').filter({ hasText: /queued/ });
    await said.waitFor();
    const queuedId = /Job (\d+) of db1 is queued/.exec((await said.textContent())!)![1];
    const queuedRow = page.locator(`table.pull-jobs tr[data-job="${queuedId}"]`);
    await queuedRow.waitFor();
    expect(await queuedRow.textContent()).toContain('a person');
    // Queued for the server's pull service (which may already have picked it up once it runs jobs).
    const queued = (await store.getPullJob(Number(queuedId)))!;
    expect(queued).toMatchObject({ hostName: 'db1', trigger: 'manual' });
    if (queued.state === 'queued') expect(await queuedRow.textContent()).toContain('waiting to start');

    // --- a phone -------------------------------------------------------------------------------------
    const { wide } = await overflowAt(page, 390);
    expect(wide).toEqual([]);
    await h.screenshot('pull-backups-phone', { forDocs: false });
    await page.setViewportSize({ width: 1280, height: 800 });

    // --- a viewer sees it all, but no Run now ------------------------------------------------------
    const viewer = await h.newPage();
    await h.login('vic', VIEWER_PASSWORD, viewer);
    await viewer.goto(`${h.url}/pull`);
    await viewer.locator('tr[data-host="web1"]').waitFor();
    await viewer.locator(`table.pull-jobs tr[data-job="${job.id}"]`).waitFor();
    expect(await viewer.locator('[data-pull-key]').textContent()).toBe(keyLine);
    expect(await viewer.getByRole('button', { name: /^Run now/ }).count()).toBe(0);
    expect(await viewer.getByRole('button', { name: /^Accept the key/ }).count()).toBe(0);
    expect(await viewer.locator('tr[data-host="web1"] [data-offered-key]').textContent()).toContain(`borgkeep host accept-key web1 ${OFFERED}`);
    await viewer.close();

    // --- the admin accepts the offered key, after the confirmation ----------------------------------
    page.once('dialog', (d) => void d.accept());
    await web1.getByRole('button', { name: 'Accept the key of web1' }).click();
    await expect.poll(() => web1.locator('[data-host-key]').getAttribute('data-host-key')).toBe('accepted');
    expect(await web1.locator('[data-host-key]').textContent()).toContain(OFFERED);
    expect(await web1.locator('[data-offered-key]').count()).toBe(0);
    expect((await store.getPullHost('web1')).hostKeyFingerprint).toBe(OFFERED);

    expect(h.pageErrors).toEqual([]);
  }, 90_000);
});
