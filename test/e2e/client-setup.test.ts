// The client set-up in the console, in a real browser against a real `borgkeep serve`: a full
// key's set-up shows borg init (repokey-blake2) until the real borg client initialises the
// repository, and not after; an append key's set-up is switched between borgmatic 1.7 and 1.8 by
// keyboard alone; its 1.7 snippet is copied with its Copy button (read back from the clipboard)
// and run, with the known_hosts lines and the command line the page shows, by Debian's borgmatic
// 1.7.7 against the server with StrictHostKeyChecking=yes; and axe-core finds no serious or
// critical violation in the set-up section.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSPHRASE, run, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { startConsoleHarness, type ConsoleHarness } from './browser-harness.js';

// What page.evaluate callbacks use runs in the browser; the Node-side tsconfig has no DOM types.
declare const document: any;
declare const navigator: any;
declare const axe: any;

const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

describe('client set-up in the console', () => {
  let h: ConsoleHarness;
  let env: BorgkeepEnv;
  let page: Page;

  beforeAll(async () => {
    h = await startConsoleHarness('bk-setup-e2e', {
      setup: async (e) => {
        await e.cliOk(['repo', 'create', 'laptop']);
        await e.addKey('admin');
        await e.addKey('backup-only');
        await e.cliOk(['grant', 'admin', 'laptop', '--role', 'full']);
        await e.cliOk(['grant', 'backup-only', 'laptop', '--role', 'append']);
      },
    });
    ({ env, page } = h);
    await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: h.url });
  }, 120_000);

  afterAll(async () => {
    await h?.close();
  });

  it('shows borg init only before the repository exists, switches 1.7/1.8 by keyboard, and the copied 1.7 snippet runs with borgmatic', async () => {
    const port = (await env.frontEnd()).port;
    await h.login('admin', h.adminPassword);
    await page.goto(`${h.url}/repositories/laptop`);
    await page.getByRole('heading', { name: 'laptop', level: 1 }).waitFor();

    // --- the full key, before and after borg init -------------------------------------------------
    const admin = page.locator('li[data-grant="admin"]');
    await admin.getByRole('button', { name: 'Client set-up' }).click();
    const adminShell = admin.getByLabel('Shell snippet', { exact: true });
    await expect.poll(() => adminShell.textContent()).toContain(`borg init --encryption=repokey-blake2 ssh://borg@127.0.0.1:${port}/./laptop`);
    const init = await env.borg('admin', ['init', '--encryption=repokey-blake2', env.url('laptop')]);
    expect(init.code, init.stderr).toBe(0);
    // The live view reloads the repository; the set-up follows without a reload of the page.
    await expect.poll(() => adminShell.textContent(), { timeout: 20_000 }).not.toContain('borg init');
    await admin.getByRole('button', { name: 'Hide' }).click();

    // --- the append key: client paths, then the version switch by keyboard alone ------------------
    const grant = page.locator('li[data-grant="backup-only"]');
    await grant.getByRole('button', { name: 'Client set-up' }).click();
    const configDir = join(env.root, 'client-etc', 'borgmatic');
    await grant.getByLabel(/Key file on the client/).fill(join(env.root, 'ssh-keys', 'backup-only'));
    await grant.getByLabel('borgmatic folder on the client').fill(configDir);
    const borgmatic18 = grant.getByLabel('borgmatic 1.8 snippet', { exact: true });
    await expect.poll(() => borgmatic18.textContent()).toContain(`${configDir}/passphrase`);
    expect(await borgmatic18.textContent()).toContain('skip_actions:\n    - prune\n    - compact');

    await grant.getByLabel('borgmatic folder on the client').focus();
    for (let i = 0; i < 12; i++) {
      await page.keyboard.press('Tab');
      if (await page.evaluate(() => document.activeElement?.type === 'radio')) break;
    }
    expect(await page.evaluate(() => document.activeElement?.value)).toBe('1.8');
    await page.keyboard.press('ArrowLeft');
    const borgmatic17 = grant.getByLabel('borgmatic 1.7 snippet', { exact: true });
    await borgmatic17.waitFor();
    expect(await grant.getByRole('radio', { name: /1\.7/ }).isChecked()).toBe(true);
    await page.keyboard.press('ArrowRight');
    await borgmatic18.waitFor();
    await page.keyboard.press('ArrowLeft');
    await borgmatic17.waitFor();
    const shown17 = (await borgmatic17.textContent())!;
    expect(shown17).toMatch(/^location:\n/m);
    expect(shown17).not.toContain('skip_actions');

    // --- copy, and run what was copied ------------------------------------------------------------
    await grant.getByRole('button', { name: 'copy the borgmatic 1.7 snippet' }).click();
    await grant.getByRole('button', { name: 'copy the borgmatic 1.7 snippet' }).filter({ hasText: 'Copied' }).waitFor();
    const copied = (await page.evaluate(() => navigator.clipboard.readText())) as string;
    expect(copied).toBe(shown17);
    const knownHosts = (await grant.getByLabel('known_hosts lines snippet', { exact: true }).textContent())!;
    expect(knownHosts).toMatch(new RegExp(`^\\[127\\.0\\.0\\.1\\]:${port} ssh-ed25519 AAAA`));
    const command = (await grant.getByText(/^Run it with/).locator('code').textContent())!;
    expect(command).toBe('borgmatic create check --verbosity 1');

    mkdirSync(configDir, { recursive: true, mode: 0o700 });
    writeFileSync(join(configDir, 'known_hosts'), `${knownHosts}\n`);
    writeFileSync(join(configDir, 'passphrase'), `${PASSPHRASE}\n`, { mode: 0o600 });
    writeFileSync(join(configDir, 'config.yaml'), copied);
    const client = join(env.root, 'borgmatic-client');
    mkdirSync(client, { recursive: true });
    const [, ...args] = command.split(' ');
    // No syslog socket on this machine: the only flag added to the page's command line.
    const r = await run('borgmatic', ['--config', join(configDir, 'config.yaml'), '--syslog-verbosity', '-1', ...args], {
      env: { PATH: process.env.PATH, HOME: client, BORG_BASE_DIR: client, LANG: 'C.UTF-8' },
    });
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    const list = await env.borg('admin', ['list', '--short', env.url('laptop')]);
    expect(list.stdout.split('\n').filter(Boolean)).toHaveLength(1);

    // --- accessibility of the set-up section ---------------------------------------------------------
    // The console's Content-Security-Policy refuses inline scripts (addScriptTag): evaluate it instead.
    await page.evaluate(readFileSync(AXE, 'utf8'));
    const violations = (await page.evaluate(async () => {
      const result = await axe.run(document.querySelector('li[data-grant="backup-only"] .instructions'));
      return result.violations.map((v: any) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length }));
    })) as Array<{ id: string; impact: string }>;
    expect(violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')).toEqual([]);
    await h.screenshot('client-setup');
    expect(h.pageErrors).toEqual([]);
  }, 180_000);
});
