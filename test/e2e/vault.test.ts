// The repository key in the console, end to end: a real `borgkeep serve`, a repository the real borg
// client initialised through its embedded gateway, Debian's chromium. The repository page says
// borgkeep does not hold the key; an admin's wrong passphrase is refused with the API's sentence;
// the right one is checked and held; the passphrase field is empty again; forgetting it returns to
// "does not hold"; a viewer sees the state without the form.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { PASSPHRASE } from '../helpers/borgkeep-env.js';
import { startConsoleHarness, type ConsoleHarness } from './browser-harness.js';

const VIEWER_PASSWORD = 'viewer password for the vault test';

describe('the repository key in the console', () => {
  let h: ConsoleHarness;

  beforeAll(async () => {
    h = await startConsoleHarness('bk-e2e-vault', { setup: (e) => e.repoWithKeys('main', { admin: 'full' }) });
    const passwordFile = join(h.env.root, 'viewer-password');
    writeFileSync(passwordFile, VIEWER_PASSWORD);
    await h.env.cliOk(['user', 'add', 'watcher', '--role', 'viewer', '--password-file', passwordFile]);
    const init = await h.env.borg('admin', ['init', '-e', 'repokey', h.env.url('main')]);
    expect(init.code, init.stderr).toBe(0);
  }, 120_000);
  afterAll(() => h?.close());

  it('hands the key over, refuses a wrong passphrase, forgets it, and shows a viewer only the state', async () => {
    const { page } = h;
    page.on('dialog', (d) => void d.accept());
    await h.login('admin', h.adminPassword);
    await page.goto(`${h.url}/repositories/main`);
    const state = page.locator('[data-key-held]');
    await state.getByText("borgkeep does not hold this repository's key").waitFor();

    const form = page.getByRole('form', { name: 'hand over the repository key' });
    await form.getByLabel('Repository passphrase').fill('not the passphrase');
    await form.getByRole('button', { name: 'Hand over the key' }).click();
    await form.getByRole('alert').getByText("the key of repository 'main' was not stored: the passphrase is wrong").waitFor();
    expect(await state.getAttribute('data-key-held')).toBe('no');

    await form.getByLabel('Repository passphrase').fill(PASSPHRASE);
    await form.getByRole('button', { name: 'Hand over the key' }).click();
    await state.getByText("borgkeep holds this repository's key").waitFor();
    await page.getByRole('status').getByText(/Key checked \(repokey, 0 archives in the current manifest\)/).waitFor();
    expect(await form.getByLabel('Repository passphrase').inputValue()).toBe('');
    expect(await page.content()).not.toContain(PASSPHRASE);
    await h.screenshot('repository-key', { forDocs: false });

    await page.getByRole('button', { name: 'Forget the key' }).click();
    await state.getByText("borgkeep does not hold this repository's key").waitFor();

    await form.getByLabel('Repository passphrase').fill(PASSPHRASE);
    await form.getByRole('button', { name: 'Hand over the key' }).click();
    await state.getByText("borgkeep holds this repository's key").waitFor();

    const viewer = await h.newPage();
    await h.login('watcher', VIEWER_PASSWORD, viewer);
    await viewer.goto(`${h.url}/repositories/main`);
    await viewer.locator('[data-key-held="yes"]').getByText("borgkeep holds this repository's key").waitFor();
    expect(await viewer.getByRole('form', { name: 'hand over the repository key' }).count()).toBe(0);
    expect(await viewer.getByRole('button', { name: 'Forget the key' }).count()).toBe(0);
    expect(h.pageErrors.filter((e) => !/status of 400/.test(e))).toEqual([]);
  }, 120_000);
});
