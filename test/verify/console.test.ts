// The console's verification section in a real browser against a running `borgkeep serve` and a
// repository written by the real borg client: "Verify everything" shows intact; after a flipped
// bit in the next backup, "Verify what is new" shows the damage in the CLI's sentence with the
// archive that depends on it; a repository whose key borgkeep does not hold shows the server's
// sentence. No serious or critical axe-core violation on the page.

import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';

import { axeViolations } from '../e2e/axe.js';
import { startConsoleHarness, type ConsoleHarness } from '../e2e/browser-harness.js';
import { PASSPHRASE } from '../helpers/borgkeep-env.js';
import { chunksOf, flipBit } from './verify-fixture.js';

let h: ConsoleHarness;

async function backup(repo: string, archive: string): Promise<void> {
  const dir = join(h.env.root, 'src', `${repo}-${archive}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'data.bin'), randomBytes(150_000));
  const r = await h.env.borg('laptop', ['create', `${h.env.url(repo)}::${archive}`, dir]);
  expect(r.code, r.stderr).toBe(0);
}

beforeAll(async () => {
  h = await startConsoleHarness('verify-console', {
    setup: async (e) => {
      await e.repoWithKeys('main', { laptop: 'full' });
      await e.cliOk(['repo', 'create', 'other']);
      await e.cliOk(['grant', 'laptop', 'other', '--role', 'full']);
    },
  });
  for (const repo of ['main', 'other']) {
    expect((await h.env.borg('laptop', ['init', '-e', 'repokey', h.env.url(repo)])).code).toBe(0);
    await backup(repo, 'monday');
  }
  const pass = join(h.env.root, 'passphrase');
  writeFileSync(pass, `${PASSPHRASE}\n`, { mode: 0o600 });
  await h.env.cliOk(['repo', 'key', 'main', '--passphrase-file', pass]);
  await h.login('admin', h.adminPassword);
}, 120_000);
afterAll(() => h?.close());

test('verify from the repository page: intact, then damage named with its archive; a keyless repository says why not', async () => {
  const { page, url } = h;
  await page.goto(`${url}/repositories/main`);
  const section = page.getByRole('region', { name: 'Verification' });
  await expect.poll(() => section.textContent()).toContain('Not verified yet');
  await section.getByRole('button', { name: 'Verify everything' }).click();
  await expect.poll(() => section.getAttribute('data-verification')).toBe('intact');
  expect(await section.textContent()).toContain('every object');
  expect(await axeViolations(page)).toEqual([]);

  await backup('main', 'tuesday');
  const repoPath = await h.env.repoPath('main');
  const [chunk] = await chunksOf(repoPath, 'tuesday', 'data.bin');
  flipBit(repoPath, chunk!);
  await section.getByRole('button', { name: 'Verify what is new' }).click();
  await expect.poll(() => section.getAttribute('data-verification')).toBe('damaged');
  const text = await section.textContent();
  expect(text).toContain('damage found');
  expect(text).toMatch(/object [0-9a-f]{16}… in segment \d+ at offset \d+: its MAC does not verify with the repository key\. Archives that depend on it: tuesday\./);
  expect(await axeViolations(page)).toEqual([]);
  await h.screenshot('repository-verification', { forDocs: false });

  await page.goto(`${url}/repositories/other`);
  const other = page.getByRole('region', { name: 'Verification' });
  await other.getByRole('button', { name: 'Verify what is new' }).click();
  await expect.poll(() => other.getByRole('alert').textContent()).toBe("could not verify 'other': the repository is encrypted (repokey) and borgkeep holds no key for it: hand it over with 'borgkeep repo key'");
  expect(h.pageErrors.filter((e) => !/status of 409/.test(e))).toEqual([]);
});
