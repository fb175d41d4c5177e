// Single sign-on in the console, in chromium: the login page offers "Sign in with …" (a real
// OpenID provider, oidc-provider on loopback) and the directory account (a real slapd); the
// OpenID flow by keyboard through the provider's login form back into the console; the user
// listed with how they sign in; a removed group refused with its sentence on the login page and
// the open console session ended; an LDAP login; axe-core finds no serious or critical violation
// on the login page and the users page.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/borgkeep-env.js';
import { startSlapd, ldapConfigFor, type Slapd } from '../sso/ldap-fixture.js';
import { freePort, startOidcProvider, writeSsoConfig, type OidcFixture } from '../sso/sso-fixtures.js';
import { startConsoleHarness, type ConsoleHarness } from './browser-harness.js';

declare const window: any;

let h: ConsoleHarness;
let idp: OidcFixture;
let slapd: Slapd;
const configDir = mkdtempSync(join(tmpdir(), 'bk-e2e-sso-'));

beforeAll(async () => {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  idp = await startOidcProvider(`${url}/api/v1/sso/oidc/callback`);
  idp.accounts.set('alice-sub', { preferred_username: 'alice', groups: ['backup-admins'] });
  slapd = await startSlapd();
  const config = writeSsoConfig({
    dir: configDir,
    publicUrl: url,
    oidc: { issuer: idp.issuer, roles: { 'backup-admins': 'admin', 'backup-viewers': 'viewer' } },
    ldap: ldapConfigFor(slapd, { 'backup-admins': 'admin', 'backup-viewers': 'viewer' }),
  });
  h = await startConsoleHarness('bk-e2e-sso', { envOptions: { serveArgs: ['--http-listen', `127.0.0.1:${port}`, '--config', config] } });
});
afterAll(async () => {
  await h?.close();
  await idp?.close();
  await slapd?.close();
  rmSync(configDir, { recursive: true, force: true });
});

/** A page in a context of its own that lets axe-core be injected despite the console's CSP. */
async function freshPage(): Promise<Page> {
  const context = await h.browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'light', bypassCSP: true });
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  page.on('pageerror', (e) => h.pageErrors.push(`page error: ${e.message}`));
  return page;
}

async function axeSeriousOrCritical(page: Page): Promise<string[]> {
  await page.addScriptTag({ path: join(ROOT, 'node_modules', 'axe-core', 'axe.min.js') });
  const violations: Array<{ id: string; impact: string; help: string }> = await page.evaluate(async () => (await window.axe.run()).violations);
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id}: ${v.help}`);
}

/** From the console's login page, through the provider's form, by keyboard. */
async function signOnWithKeyboard(page: Page, account: string) {
  await page.goto(h.url);
  await page.getByRole('link', { name: 'Sign in with Test IdP' }).focus();
  await page.keyboard.press('Enter');
  await page.locator('input[name=login]').waitFor();
  await page.keyboard.type(account);
  await page.keyboard.press('Tab');
  await page.keyboard.type('any password');
  await page.keyboard.press('Enter');
}

describe('single sign-on in the console', () => {
  it('offers the sign-on and the directory on an accessible login page', async () => {
    const page = await freshPage();
    await page.goto(h.url);
    await expect.poll(() => page.getByRole('link', { name: 'Sign in with Test IdP' }).count()).toBe(1);
    await expect.poll(() => page.getByRole('radio', { name: 'Company directory' }).count()).toBe(1);
    expect(await axeSeriousOrCritical(page)).toEqual([]);
    await page.screenshot({ path: join(ROOT, 'test-results', 'screenshots', 'login-sso.png'), fullPage: true });
    await page.context().close();
  });

  it('signs on through the OpenID provider and lists the user with their source', async () => {
    const page = await freshPage();
    await signOnWithKeyboard(page, 'alice-sub');
    await page.getByRole('button', { name: 'Log out' }).waitFor();
    expect(await page.locator('.who').innerText()).toMatch(/^alice\s+\(admin\)$/);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Users', exact: true }).click();
    const row = page.locator('tr[data-user=alice]');
    await expect.poll(() => row.locator('td[data-source]').innerText()).toBe('OpenID sign-on');
    expect(await row.getByRole('combobox', { name: 'role of alice' }).isDisabled()).toBe(true);
    expect(await axeSeriousOrCritical(page)).toEqual([]);

    // Removed from the group: the next sign-on is refused on the login page, and the open session ends.
    idp.accounts.set('alice-sub', { preferred_username: 'alice', groups: ['staff'] });
    const other = await freshPage();
    await signOnWithKeyboard(other, 'alice-sub');
    await expect.poll(() => other.getByRole('alert').innerText()).toBe("your account is in no group that gives a borgkeep role (the 'groups' claim matches no mapping); ask an admin");
    expect(new URL(other.url()).search).toBe('');
    await page.reload();
    await page.getByRole('button', { name: 'Log in' }).waitFor();
    await page.context().close();
    await other.context().close();
  });

  it('logs in with a directory account', async () => {
    const page = await freshPage();
    await page.goto(h.url);
    await page.getByRole('radio', { name: 'Company directory' }).check();
    await page.getByLabel('User', { exact: true }).fill('bob');
    await page.getByLabel('Password', { exact: true }).fill('bob-password');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('button', { name: 'Log out' }).waitFor();
    expect(await page.locator('.who').innerText()).toMatch(/^bob\s+\(viewer\)$/);
    await page.context().close();
    expect(h.pageErrors).toEqual([]);
  });
});
