// The account page end to end: a real `borgkeep serve` and Debian's chromium. A user changes
// their password and logs in with the new one; enrols a second factor from the page (the code
// computed here from the secret the page shows, as an authenticator app would) and logs in with
// a code, then with a recovery code once (the second use is refused); creates an API token by
// keyboard alone, copies it, uses it against the API, revokes it and sees it refused. An admin
// resets another user's password (who must choose a new one first) and removes a user. axe-core
// checks the account page; a screenshot of it goes to test-results/screenshots/account.png.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { totpCode } from '../../src/api/auth/totp.js';
import { ROOT } from '../helpers/borgkeep-env.js';
import { overflowAt, startConsoleHarness, type ConsoleHarness } from './browser-harness.js';

declare const document: any;
declare const navigator: any;
declare const axe: any;

const CAROL_PASSWORD = 'carol first password';
const CAROL_NEW = 'carol second password';
const OTHER_PASSWORD = 'a password of dave and erin';

const AXE_SOURCE = readFileSync(join(ROOT, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');

/** Serious and critical axe-core violations, one line each (axe is evaluated: the CSP refuses inline script tags). */
async function axeProblems(page: Page): Promise<string[]> {
  if (!(await page.evaluate(() => typeof (globalThis as any).axe !== 'undefined'))) await page.evaluate(AXE_SOURCE);
  const violations: Array<{ id: string; impact: string; nodes: Array<{ target: string[] }> }> = await page.evaluate(async () => (await axe.run()).violations);
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}

/** Logs in through the form, with a second-factor code when the page asks for one. */
async function loginWith(page: Page, url: string, name: string, password: string, code?: string): Promise<void> {
  await page.goto(url);
  await page.getByLabel('User').fill(name);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  if (code !== undefined) {
    const field = page.getByLabel('Code from your authenticator app, or a recovery code');
    await field.waitFor({ timeout: 10_000 }).catch(async () => {
      throw new Error(`no code field; the page says: ${await page.locator('body').innerText()}`);
    });
    await field.fill(code);
    await page.getByRole('button', { name: 'Log in' }).click();
  }
}

async function logout(page: Page): Promise<void> {
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByRole('button', { name: 'Log in' }).waitFor();
}

describe('the account page', () => {
  let h: ConsoleHarness;
  let page: Page;

  beforeAll(async () => {
    h = await startConsoleHarness('bk-e2e-account');
    page = h.page;
    const file = join(h.env.root, 'pw');
    writeFileSync(file, CAROL_PASSWORD);
    await h.env.cliOk(['user', 'add', 'carol', '--role', 'operator', '--password-file', file]);
    writeFileSync(file, OTHER_PASSWORD);
    await h.env.cliOk(['user', 'add', 'dave', '--role', 'viewer', '--password-file', file]);
    await h.env.cliOk(['user', 'add', 'erin', '--role', 'viewer', '--password-file', file]);
    page.on('dialog', (d) => void d.accept());
    await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: h.url });
  }, 120_000);

  afterAll(async () => {
    await h?.close();
  });

  it('changes the password and logs in with the new one; passes axe; screenshot', async () => {
    await h.login('carol', CAROL_PASSWORD);
    await page.getByRole('link', { name: /carol/ }).click();
    await page.getByRole('heading', { name: 'Your account', level: 1 }).waitFor();
    expect(await axeProblems(page)).toEqual([]);

    await page.getByLabel('Current password').fill('not my password');
    await page.getByLabel(/^New password \(/).fill(CAROL_NEW);
    await page.getByLabel('New password again').fill(CAROL_NEW);
    await page.getByRole('button', { name: 'Change password' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toBe('the current password is wrong');
    await page.getByLabel('Current password').fill(CAROL_PASSWORD);
    await page.getByRole('button', { name: 'Change password' }).click();
    await page.getByText('Your password is changed.').waitFor();
    await logout(page);
    await loginWith(page, h.url, 'carol', CAROL_PASSWORD);
    await page.getByText('wrong user name or password').waitFor();
    await h.login('carol', CAROL_NEW);
  });

  it('enrols a second factor with a QR code, logs in with a code, then with a recovery code once', async () => {
    await page.goto(`${h.url}/account`);
    await page.getByRole('button', { name: 'Turn on' }).click();
    const qr = page.getByRole('img', { name: 'QR code of the authenticator secret' });
    await qr.waitFor();
    expect(await qr.getAttribute('src')).toMatch(/^data:image\/svg\+xml/);
    const secret = (await page.locator('[data-totp-secret]').textContent())!;
    await page.getByLabel('Code from your authenticator app').fill(totpCode(secret, new Date()));
    await page.getByRole('button', { name: 'Confirm' }).click();
    await page.locator('[data-recovery-codes] li').first().waitFor(); // allTextContents does not wait
    const codes = await page.locator('[data-recovery-codes] li').allTextContents();
    expect(codes).toHaveLength(10);
    await page.getByRole('button', { name: 'I have saved them' }).click();
    await page.getByText('10 recovery codes left.').waitFor();
    await page.screenshot({ path: join(ROOT, 'test-results', 'screenshots', 'account-totp.png'), fullPage: true });
    await logout(page);

    // The confirming code's time step is used up: the next step's code, as an app shows it a moment later.
    await loginWith(page, h.url, 'carol', CAROL_NEW, totpCode(secret, new Date(Date.now() + 30_000)));
    await page.getByRole('button', { name: 'Log out' }).waitFor();
    await logout(page);
    await loginWith(page, h.url, 'carol', CAROL_NEW, codes[0]);
    await page.getByRole('button', { name: 'Log out' }).waitFor();
    await logout(page);
    await loginWith(page, h.url, 'carol', CAROL_NEW, codes[0]);
    await page.getByText('this recovery code is wrong or was already used').waitFor();
    await loginWith(page, h.url, 'carol', CAROL_NEW, codes[1]);
    await page.getByRole('button', { name: 'Log out' }).waitFor();
    await page.goto(`${h.url}/account`);
    await page.getByText('8 recovery codes left.').waitFor();
  });

  it('creates an API token by keyboard alone, copies it, uses it, revokes it and sees it refused', async () => {
    await page.goto(`${h.url}/account`);
    await page.getByRole('heading', { name: 'Your API tokens' }).waitFor();
    // Tab from the top of the page to the token name field.
    await page.locator('body').focus();
    for (let i = 0; i < 60 && (await page.evaluate(() => document.activeElement?.name)) !== 'tokenName'; i++) await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.name)).toBe('tokenName');
    await page.keyboard.type('ci');
    await page.keyboard.press('Tab'); // the role: keep viewer
    await page.keyboard.press('Tab'); // the expiry: keep 30 days
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Create token');
    await page.keyboard.press('Enter');
    const shown = page.locator('[data-new-token]');
    await shown.waitFor();
    const token = (await shown.textContent())!;
    expect(token).toMatch(/^bk_[A-Za-z0-9_-]{43}$/);
    for (let i = 0; i < 10 && (await page.evaluate(() => document.activeElement?.getAttribute('aria-label'))) !== 'copy the new token'; i++) await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await page.getByText('Copied.').waitFor();
    const copied: string = await page.evaluate(() => navigator.clipboard.readText());
    expect(copied).toBe(token);

    const row = page.locator('tr[data-token="ci"]');
    await row.waitFor();
    expect(await row.locator('td').allTextContents()).toEqual(['viewer', expect.stringMatching(/ago|now/), expect.stringMatching(/^in /), 'never', 'Revoke']);

    // The token works against the API as any script would call it.
    const get = (t: string) => fetch(`${h.url}/api/v1/repositories`, { headers: { authorization: `Bearer ${t}` } });
    expect((await get(copied)).status).toBe(200);

    // A second token of the same name: one sentence.
    await page.getByLabel('Token name').fill('ci');
    await page.getByRole('button', { name: 'Create token' }).click();
    await page.getByText("you already have an API token named 'ci'; pick another name or revoke that one first").waitFor();

    await row.getByRole('button', { name: 'revoke the token ci' }).focus();
    await page.keyboard.press('Enter'); // the confirm dialog is accepted
    await row.waitFor({ state: 'detached' });
    const refused = await get(copied);
    expect(refused.status).toBe(401);
    expect(await refused.json()).toEqual({ code: 'BK_ERR_UNAUTHENTICATED', message: 'this API token was revoked' });
    await page.screenshot({ path: join(ROOT, 'test-results', 'screenshots', 'account-tokens.png'), fullPage: true });
  });

  it("lets an admin reset another user's password (who must choose a new one) and remove a user", async () => {
    const admin = await h.newPage();
    admin.on('dialog', (d) => void d.accept());
    await h.login('admin', h.adminPassword, admin);
    await admin.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Users' }).click();
    const dave = admin.locator('tr[data-user="dave"]');
    await dave.getByRole('button', { name: 'Reset password' }).click();
    const notice = admin.getByText(/New password of dave, shown only now/);
    await notice.waitFor();
    const given = (await notice.locator('code').textContent())!;
    await dave.getByText('must choose a new password').waitFor();

    const davePage = await h.newPage();
    await loginWith(davePage, h.url, 'dave', OTHER_PASSWORD);
    await davePage.getByText('wrong user name or password').waitFor();
    await loginWith(davePage, h.url, 'dave', given);
    await davePage.getByRole('heading', { name: 'Choose a new password' }).waitFor();
    expect(await axeProblems(davePage)).toEqual([]);
    await davePage.getByLabel('Current password').fill(given);
    await davePage.getByLabel(/^New password \(/).fill('dave own password');
    await davePage.getByLabel('New password again').fill('dave own password');
    await davePage.getByRole('button', { name: 'Change password' }).click();
    await davePage.getByRole('button', { name: 'Log out' }).waitFor();
    await davePage.getByRole('heading', { name: 'Repositories', level: 1 }).waitFor();

    await admin.reload();
    await admin.locator('tr[data-user="erin"]').getByRole('button', { name: 'Remove' }).click();
    await admin.locator('tr[data-user="erin"]').waitFor({ state: 'detached' });
    expect(await admin.locator('tr[data-user="admin"]').getByRole('button', { name: 'Remove' }).count()).toBe(0);
    const erin = await h.newPage();
    await loginWith(erin, h.url, 'erin', OTHER_PASSWORD);
    await erin.getByText('wrong user name or password').waitFor();
  });

  it('ends with the account page screenshot and no page errors', async () => {
    await page.goto(`${h.url}/account`); // still carol's session
    await page.getByRole('heading', { name: 'Your account', level: 1 }).waitFor();
    await page.getByText('8 recovery codes left.').waitFor();
    await page.getByLabel('Token name').fill('nightly-report');
    await page.getByRole('button', { name: 'Create token' }).click();
    await page.locator('tr[data-token="nightly-report"]').waitFor();
    await page.getByRole('button', { name: 'Done' }).click();
    const phone = await overflowAt(page, 375);
    expect(phone.wide, 'elements wider than a phone').toEqual([]);
    await page.setViewportSize({ width: 1280, height: 800 });
    await h.screenshot('account');
    // The refusals the test asked for (a wrong current password, a duplicate token name) are the only failed requests.
    expect(h.pageErrors.filter((e) => !/status of (403|409)/.test(e))).toEqual([]);
    expect(h.pageErrors).toHaveLength(2);
  });
});
