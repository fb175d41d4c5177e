// Pull backups in the console, end to end, with a REAL pull job: a real `borgkeep serve` (its pull
// service picks the job up), real SQLite, Debian's chromium, a client host in a network namespace
// with a real sshd and the real borg (pull-client-host.ts, number 41), a repokey repository whose
// key the vault holds, hosts added with the built CLI (`borgkeep host add`). The page lists the
// hosts (repository, schedule, host key accepted or not, last job); "Run now" (from the keyboard)
// starts a job of the real host; its progress (bytes, files, current path) changes in the page
// while borg create runs on the client, through the live channel, without a reload; the job ends
// done with its archive (which the real repository lists); its log shows the runner's real lines,
// follows new ones while the job runs (one line the test adds mid-run, as the runner writes no
// line within the running state), and downloads; axe-core finds no serious or critical
// violation (light and dark); a phone width does not overflow; a viewer sees it all but Run now;
// the key a host offered shows, and an admin accepts it (that host, unreachable, stays arranged
// through the store: an offered key is an odd state no real job here leaves).

import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../../src/store/database.js';
import { PASSPHRASE } from '../helpers/borgkeep-env.js';
import { openSideStore } from '../helpers/pull-fixture.js';
import { startPullClientHost, type PullClientHost } from '../helpers/pull-client-host.js';
import { axeViolations } from './axe.js';
import { overflowAt, startConsoleHarness, type ConsoleHarness } from './browser-harness.js';

/** This file's client host number (runner 11, pull-job 21, others 31 and 32). */
const NET = 41;
/** Enough fresh random data that borg create runs for several seconds: 24 files of 10 MiB. */
const FILES = 24;
const FILE_BYTES = 10 * 1024 * 1024;

const FINGERPRINT = 'SHA256:' + 'Q'.repeat(43);
const OFFERED = 'SHA256:' + 'R'.repeat(43);
const VIEWER_PASSWORD = 'viewer password for the pull e2e test';

// What page.evaluate callbacks use runs in the browser; the Node-side tsconfig has no DOM types.
declare const document: any;

/** What the page shows of a running job and of its row, sampled in the browser every 100 ms until the job leaves the running list. */
interface Sample {
  bytes: string | null;
  files: string | null;
  path: string | null;
  rowBytes: string | null;
}

describe('pull backups in the console', () => {
  let h: ConsoleHarness;
  let page: Page;
  let store: Store;
  let client: PullClientHost;
  let source: string;

  beforeAll(async () => {
    let keyLine = '';
    h = await startConsoleHarness('bk-e2e-pull', {
      async setup(e) {
        await e.repoWithKeys('main', { admin: 'full' });
        const init = await e.borg('admin', ['init', '-e', 'repokey', e.url('main')]);
        if (init.code !== 0) throw new Error(`borg init failed: ${init.stderr}`);
        const pass = join(e.root, 'passphrase');
        writeFileSync(pass, `${PASSPHRASE}\n`, { mode: 0o600 });
        await e.cliOk(['repo', 'key', 'main', '--passphrase-file', pass]);
        keyLine = (await e.cliOk(['pull-key'])).split('\n').find((l) => l.includes('ssh-ed25519'))!.trim();
      },
    });
    page = h.page;
    store = await openSideStore(h.env.dataDir);
    client = await startPullClientHost(NET, [keyLine]);
    // The client's files, written once: two directories, so the current path moves between them.
    source = join(client.dir, 'data');
    for (const sub of ['mail', 'photos']) mkdirSync(join(source, sub), { recursive: true, mode: 0o755 });
    for (let i = 0; i < FILES; i++) writeFileSync(join(source, i % 2 ? 'photos' : 'mail', `file-${String(i).padStart(2, '0')}.bin`), randomBytes(FILE_BYTES), { mode: 0o644 });
    await h.env.cliOk([
      'host', 'add', 'laptop', '--address', `${client.address}:${client.port}`, '--user', client.user, '--repo', 'main',
      '--paths', source, '--archive', '{host}-{now}', '--accept-host-key', client.hostKeyFingerprint,
    ]);
    await h.env.cliOk(['host', 'add', 'web1', '--address', '192.0.2.7', '--user', 'backup', '--repo', 'main', '--paths', '/etc,/home', '--schedule', '0 2 * * *']);
    await h.env.cliOk(['host', 'add', 'db1', '--address', 'db.example.org:2222', '--user', 'backup', '--repo', 'main', '--paths', '/etc,/home', '--accept-host-key', FINGERPRINT, '--keep-files-cache']);
    // The key web1 offered at a first contact, as the runner notes it.
    await store.notePullHostKeyOffered((await store.getPullHost('web1')).id, OFFERED);
    const passwordFile = join(h.env.root, 'viewer-password');
    writeFileSync(passwordFile, VIEWER_PASSWORD);
    await h.env.cliOk(['user', 'add', 'vic', '--role', 'viewer', '--password-file', passwordFile]);
  }, 60_000);
  afterAll(async () => {
    await store?.close();
    await client?.close();
    await h?.close();
  });

  it('lists hosts and jobs, runs a real job from Run now whose progress moves live, shows its real log following and downloading', async () => {
    // A retry of web1 that waits an hour: the queue says so (it never starts in this test).
    const retry = (await store.queuePullJob('web1', { trigger: 'schedule', attempt: 1, notBefore: new Date(Date.now() + 3_600_000) }))!.job;
    await h.login('admin', h.adminPassword);
    await h.nav('Pull backups').click();
    await page.getByRole('heading', { name: 'Pull backups', level: 1 }).waitFor();
    const waiting = page.locator(`li[data-waiting-job="${retry.id}"]`);
    await waiting.waitFor();
    expect(await waiting.textContent()).toMatch(/^web1 → main job \d+, queued (just now|.* ago) by the schedule \(retry 1\): retry 1 after a failed run; starts in \d+ (min|h)\.$/);

    // --- the hosts ---------------------------------------------------------------------------------
    const web1 = page.locator('tr[data-host="web1"]');
    await web1.waitFor();
    expect(await web1.locator('[data-host-key]').textContent()).toContain('not accepted yet');
    expect(await web1.locator(`[data-offered-key="${OFFERED}"]`).textContent()).toMatch(/^The host offered (just now|.* ago): SHA256:R+Compare it with ssh-keygen/);
    expect(await web1.textContent()).toContain('0 2 * * *');
    expect(await web1.getByRole('link', { name: 'main' }).getAttribute('href')).toBe('/repositories/main');
    expect(await web1.textContent()).toContain('waiting to start'); // its retry
    const db1 = page.locator('tr[data-host="db1"]');
    expect(await db1.locator('[data-host-key]').textContent()).toContain('accepted');
    expect(await db1.textContent()).toContain(FINGERPRINT);
    expect(await db1.textContent()).toContain('only when run by hand');
    // How each host deduplicates, in words.
    expect(await db1.locator('[data-dedup]').textContent()).toBe('uploads only new data; reads only new and changed files');
    expect(await web1.locator('[data-dedup]').textContent()).toBe('uploads only new data; reads every file');
    const laptop = page.locator('tr[data-host="laptop"]');
    expect(await laptop.locator('[data-host-key]').getAttribute('data-host-key')).toBe('accepted');
    expect(await laptop.textContent()).toContain(client.hostKeyFingerprint);
    expect(await laptop.textContent()).toContain('none yet');
    // Times in words, never raw ISO.
    expect(await web1.textContent()).toMatch(/next in \d/);
    expect(await page.locator('main').textContent()).not.toMatch(/\d{4}-\d\d-\d\dT\d\d:/);

    // --- the pull key line, with its copy button --------------------------------------------------
    await page.context().grantPermissions(['clipboard-read', 'clipboard-write']);
    const keyLine = (await page.locator('[data-pull-key]').textContent())!;
    expect(keyLine).toMatch(/^restrict,port-forwarding,permitlisten="127\.0\.0\.1:\*" ssh-ed25519 \S+ borgkeep-pull$/);
    await page.getByRole('button', { name: 'Copy the pull key line' }).click();
    await page.getByText('Copied.').waitFor();

    // --- Run now (keyboard): serve's pull service starts a real job on the client ------------------
    const reloads: string[] = [];
    page.on('framenavigated', (f) => f === page.mainFrame() && reloads.push(f.url()));
    // 240 MiB at 40 Mbit/s is at least 50 s of sending, so the job surely still runs while the page
    // is checked below (unlimited, a fast machine sent it all before the log was counted as
    // running); the limit is lifted once the running job has been seen.
    client.limitUpload(40);
    const runNow = laptop.getByRole('button', { name: 'Run now: laptop' });
    await runNow.focus();
    await page.keyboard.press('Enter');
    const said = laptop.getByRole('status').filter({ hasText: /queued/ });
    await said.waitFor();
    const jobId = Number(/Job (\d+) of laptop is queued/.exec((await said.textContent())!)![1]);
    const row = page.locator(`table.pull-jobs tr[data-job="${jobId}"]`);
    await row.waitFor();
    expect(await row.textContent()).toContain('a person');

    // --- its progress, live: sampled in the page while borg create runs on the client --------------
    const running = page.locator(`li[data-running-job="${jobId}"]`);
    await running.waitFor({ timeout: 30_000 });
    expect(await running.textContent()).toMatch(/connecting|backing up/);
    // Sampled in the browser itself, so no change between two round trips is missed: until bytes,
    // files and the current path have each shown two values past the start (so the log opens while
    // the job still runs), or the job leaves the running list, or 45 s.
    const samples: Sample[] = await page.evaluate(
      ({ id, ms }) =>
        new Promise<Sample[]>((resolve) => {
          const out: Sample[] = [];
          const text = (el: any, sel: string) => (el?.querySelector(sel)?.textContent ?? null) as string | null;
          const moved = (k: keyof Sample) => new Set(out.map((s) => s[k]).filter((v) => v !== null && v !== '' && v !== '0 B' && v !== '0' && (k !== 'path' || v.endsWith('.bin')))).size >= 2;
          const until = Date.now() + ms;
          const t = setInterval(() => {
            const li = document.querySelector(`li[data-running-job="${id}"]`);
            const tr = document.querySelector(`table.pull-jobs tr[data-job="${id}"]`);
            if (li) out.push({ bytes: text(li, '.job-bytes'), files: text(li, '.job-files'), path: text(li, '.job-path'), rowBytes: text(tr, '.job-bytes') });
            if (!li || Date.now() > until || (moved('bytes') && moved('files') && moved('path') && moved('rowBytes'))) {
              clearInterval(t);
              resolve(out);
            }
          }, 100);
        }),
      { id: jobId, ms: 45_000 },
    );
    const distinct = (k: keyof Sample) => [...new Set(samples.map((s) => s[k]).filter((v) => v !== null && v !== '' && v !== '0 B' && v !== '0'))];
    // Bytes, files and the current path each took at least two values while the job ran, without a reload.
    expect(distinct('bytes').length, JSON.stringify(samples)).toBeGreaterThanOrEqual(2);
    expect(distinct('files').length, JSON.stringify(samples)).toBeGreaterThanOrEqual(2);
    // borg names the files it reads (and, before them, their directories) without the leading slash.
    for (const p of distinct('path')) expect(p).toMatch(new RegExp(`^/?${source.slice(1)}(/(mail|photos)(/file-\\d\\d\\.bin)?)?$`));
    expect(distinct('path').filter((p) => p!.endsWith('.bin')).length, JSON.stringify(samples)).toBeGreaterThanOrEqual(2);
    for (const b of distinct('bytes')) expect(b).toMatch(/^[\d.,]+ (kB|MB|GB)$/);
    // The jobs table follows too.
    expect(distinct('rowBytes').length, JSON.stringify(samples)).toBeGreaterThanOrEqual(2);
    expect(reloads).toEqual([]);

    // --- its log while it runs (keyboard: the Log link by Tab and Enter) ---------------------------
    const logLink = row.getByRole('link', { name: `Show the log of job ${jobId}` });
    await logLink.focus();
    await page.keyboard.press('Enter');
    await page.waitForURL(`${h.url}/pull?job=${jobId}`);
    const detail = page.locator(`[data-job-detail="${jobId}"]`);
    await detail.getByRole('heading', { name: `Job ${jobId} of laptop` }).waitFor();
    const lines = detail.getByRole('list', { name: 'Log' });
    await expect.poll(() => lines.textContent()).toContain('borg create started: archive laptop-');
    const whileRunning = await lines.locator('li').count();
    // The job still runs (the sampling above stopped two files in): the log is being followed.
    expect(await running.count()).toBe(1);
    expect(await detail.textContent()).toContain('Following the job');
    // The runner writes its next lines only when the state changes (which re-reads the log anyway):
    // one line added to the real job's log here, mid-run, shows that the page follows the log
    // within a state, while the job still runs.
    await store.appendPullJobLog(jobId, 'a line the test adds while the job runs');
    await expect.poll(() => lines.textContent(), { timeout: 10_000 }).toContain('a line the test adds while the job runs');
    expect(await running.count()).toBe(1);

    // axe on the page with hosts, jobs, a running job and its log, in both colour schemes.
    for (const colorScheme of ['light', 'dark'] as const) {
      await page.emulateMedia({ colorScheme });
      expect(await axeViolations(page), colorScheme).toEqual([]);
    }
    await page.emulateMedia({ colorScheme: 'light' });
    await h.screenshot('pull-backups');
    client.limitUpload(null);

    // --- the job ends done with its archive: the page says so, the log followed to its end ---------
    await expect.poll(() => row.getAttribute('data-state'), { timeout: 60_000 }).toBe('done');
    await running.waitFor({ state: 'detached' });
    await page.getByText('No pull job is running.').waitFor();
    const [job] = (JSON.parse(await h.env.cliOk(['pull', 'list', '--host', 'laptop', '--json'])) as { jobs: Array<{ id: number; state: string; archive: string; files: number }> }).jobs;
    expect(job).toMatchObject({ id: jobId, state: 'done', files: FILES });
    expect(await row.textContent()).toContain(job!.archive);
    const listed = await h.env.borg('admin', ['list', '--short', h.env.url('main')]);
    expect(listed.stdout.split('\n').filter(Boolean)).toEqual([job!.archive]);
    await expect.poll(() => lines.locator('li').last().textContent(), { timeout: 10_000 }).toContain(`job ${jobId} done: archive ${job!.archive}`);
    const shown = (await lines.locator('li').allTextContents()).join('\n');
    expect(shown).toContain('borg create ended with status 0');
    // Lines the runner wrote after the log was opened came in without a reload.
    expect(await lines.locator('li').count()).toBeGreaterThan(whileRunning);
    expect(reloads.filter((u) => !u.includes(`?job=${jobId}`))).toEqual([]);
    expect(await detail.textContent()).not.toContain('Following the job');
    expect(await laptop.locator('td[data-label="Last job"]').textContent()).toContain('done');
    expect(await row.locator('.job-files').textContent()).toBe(String(FILES));

    // --- the download: the job's real log ----------------------------------------------------------
    const [download] = await Promise.all([page.waitForEvent('download'), detail.getByRole('link', { name: 'Download the log' }).click()]);
    expect(download.suggestedFilename()).toBe(`borgkeep-pull-job-${jobId}.log`);
    const text = readFileSync((await download.path())!, 'utf8');
    expect(text.trimEnd().split('\n')).toHaveLength(await lines.locator('li').count());
    expect(text).toContain(`borg create started: archive ${job!.archive}`);
    expect(text).toContain(`job ${jobId} done: archive ${job!.archive}`);

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
    await viewer.locator(`table.pull-jobs tr[data-job="${jobId}"]`).waitFor();
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
  }, 120_000);
});
