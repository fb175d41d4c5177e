// The console's archive checks in a real browser against a running `borgkeep serve` and a
// repository written by the real borg client: an admin sets the rules on the repository page (a
// bad value gets the CLI's sentence and saves nothing), the next backup misses a required path, and
// after the checks job the archive list marks that archive failed with the rule's sentence. A
// viewer browses an archive's names only once an admin ticks the repository's switch, and never
// sees a download link. No serious or critical axe-core violation on the pages.

import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';

import { axeViolations } from '../e2e/axe.js';
import { startConsoleHarness, type ConsoleHarness } from '../e2e/browser-harness.js';
import { PASSPHRASE } from '../helpers/borgkeep-env.js';

let h: ConsoleHarness;
const VIEWER_PASSWORD = 'viewer password for the checks test';
let tree: string;

async function backup(archive: string): Promise<void> {
  const r = await h.env.borg('laptop', ['create', `${h.env.url('main')}::${archive}`, 'etc', 'home'], { cwd: tree });
  expect(r.code, r.stderr).toBe(0);
}

/** Runs a job of the server through the API, as another admin session. */
async function runJob(name: string): Promise<void> {
  const login = await fetch(`${h.url}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'admin', password: h.adminPassword }) });
  const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
  const { csrfToken } = (await login.json()) as { csrfToken: string };
  const r = await fetch(`${h.url}/api/v1/jobs/${name}/run`, { method: 'POST', headers: { cookie, 'x-csrf-token': csrfToken } });
  expect(r.status).toBe(200);
}

beforeAll(async () => {
  h = await startConsoleHarness('checks-console', { setup: (e) => e.repoWithKeys('main', { laptop: 'full' }) });
  // Added once serve made its first admin (it makes one only while there is no user).
  writeFileSync(join(h.env.root, 'viewer-password'), VIEWER_PASSWORD);
  await h.env.cliOk(['user', 'add', 'vic', '--role', 'viewer', '--password-file', join(h.env.root, 'viewer-password')]);
  tree = join(h.env.root, 'machine');
  mkdirSync(join(tree, 'etc'), { recursive: true });
  mkdirSync(join(tree, 'home', 'alice'), { recursive: true });
  writeFileSync(join(tree, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(join(tree, 'home', 'alice', 'notes.txt'), 'notes\n');
  expect((await h.env.borg('laptop', ['init', '-e', 'repokey', h.env.url('main')])).code).toBe(0);
  await backup('main-2026-12-05');
  const pass = join(h.env.root, 'passphrase');
  writeFileSync(pass, `${PASSPHRASE}\n`, { mode: 0o600 });
  await h.env.cliOk(['repo', 'key', 'main', '--passphrase-file', pass]);
  // The first archive is checked now (no rules yet: readable), so it is not the first look's skip later.
  await runJob('archive-checks');
  await runJob('archive-checks');
  await h.login('admin', h.adminPassword);
}, 120_000);
afterAll(() => h?.close());

test('an admin sets the rules on the repository page, and a backup missing a required path is marked failed in the archive list', async () => {
  const { page, url } = h;
  await page.goto(`${url}/repositories/main`);
  const section = page.getByRole('region', { name: 'Archive checks' });
  await expect.poll(() => section.getAttribute('data-archive-checks')).toBe('none');
  expect(await section.textContent()).toContain('it must be readable.');
  await section.getByRole('button', { name: 'Set rules' }).click();
  const form = section.getByRole('form', { name: 'archive check rules' });
  await form.getByLabel(/Required paths/).fill('etc/passwd\nhome/*/');
  await form.getByLabel(/New or changed files at most/).fill('150');
  await form.getByRole('button', { name: 'Save rules' }).click();
  await expect.poll(() => form.getByRole('alert').textContent()).toBe("--max-changed must be a percentage from 0 to 100, not '150'");
  expect(await section.getAttribute('data-archive-checks')).toBe('none');
  await form.getByLabel(/New or changed files at most/).fill('50');
  await form.getByRole('button', { name: 'Save rules' }).click();
  await expect.poll(() => section.getAttribute('data-archive-checks')).toBe('set');
  expect(await section.textContent()).toContain("it must be readable; hold paths matching 'etc/passwd' and 'home/*/'; have at most 50 % of its files new or changed.");
  expect(await axeViolations(page)).toEqual([]);

  rmSync(join(tree, 'etc', 'passwd'));
  await backup('main-2026-12-06');
  await runJob('archive-checks');
  await runJob('archive-checks'); // a timer run may have been under way
  await page.reload();
  const row = page.locator('tr[data-archive="main-2026-12-06"]');
  await expect.poll(() => row.getAttribute('data-check')).toBe('failed');
  expect(await row.textContent()).toContain("archive 'main-2026-12-06' of 'main' holds no path matching 'etc/passwd'.");
  expect(await page.locator('tr[data-archive="main-2026-12-05"]').getAttribute('data-check')).toBe('passed');
  await expect.poll(() => page.getByRole('region', { name: 'Archive checks' }).getAttribute('data-archive-checks')).toBe('set');
  expect(await page.getByRole('region', { name: 'Archive checks' }).textContent()).toContain('1 archive passed, 1 archive failed');
  expect(await axeViolations(page)).toEqual([]);
  await h.screenshot('repository-archive-checks', { forDocs: false });
  expect(h.pageErrors.filter((e) => !/status of 400/.test(e))).toEqual([]);
});

test('a viewer browses the names of an archive only where an admin allowed it, and never sees a download link', async () => {
  const viewer = await h.newPage();
  await h.login('vic', VIEWER_PASSWORD, viewer);
  await viewer.goto(`${h.url}/repositories/main`);
  const row = viewer.locator('tr[data-archive="main-2026-12-05"]');
  await row.waitFor();
  await expect.poll(() => viewer.locator('[data-viewers-browse]').getAttribute('data-viewers-browse')).toBe('no');
  expect(await row.getByRole('button', { name: /Browse the files/ }).count()).toBe(0);
  expect(await viewer.locator('[data-viewers-browse]').textContent()).toContain('Only operators and admins may browse the files of these archives.');

  // The admin ticks the repository's switch.
  await h.page.goto(`${h.url}/repositories/main`);
  await h.page.getByLabel(/Viewers may browse the files of these archives/).click();
  await expect.poll(() => h.page.locator('[data-viewers-browse]').getAttribute('data-viewers-browse')).toBe('yes');
  expect(await axeViolations(h.page)).toEqual([]);

  await viewer.reload();
  await viewer.locator('tr[data-archive="main-2026-12-05"]').getByRole('button', { name: 'Browse the files of main-2026-12-05' }).click();
  const files = viewer.getByRole('region', { name: 'Files of archive main-2026-12-05' });
  await files.getByRole('button', { name: 'Open folder etc' }).click();
  await files.locator('tr[data-entry="passwd"]').waitFor();
  expect(await files.getByRole('link').count()).toBe(0);
  expect(await viewer.getByRole('region', { name: /Changes from archive/ }).count()).toBe(0);
  expect(await axeViolations(viewer)).toEqual([]);
  expect(h.pageErrors.filter((e) => !/status of 400/.test(e))).toEqual([]);
});
