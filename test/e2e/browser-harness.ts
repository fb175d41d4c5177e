// What the console's end-to-end tests share: a real `borgkeep serve` (embedded SSH gateway, API
// and console on loopback ports, from createBorgkeepEnv) and Debian's chromium driven by
// playwright-core, the first-run admin password the server printed, page and console errors
// collected (a test ends by expecting none), and screenshots into test-results/screenshots
// (and docs/screenshots when missing or with BORGKEEP_UPDATE_SCREENSHOTS=1).
//
// Without chromium this fails with what to install: the tests never skip.

import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { createBorgkeepEnv, ROOT, type BorgkeepEnv, type EnvOptions } from '../helpers/borgkeep-env.js';
import { firstAdminPassword } from '../helpers/first-admin.js';

export const CHROMIUM = process.env.BORGKEEP_CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = join(ROOT, 'test-results', 'screenshots');
const DOC_SHOTS = join(ROOT, 'docs', 'screenshots');

// What page.evaluate callbacks use runs in the browser; the Node-side tsconfig has no DOM types.
declare const document: any;

/** Elements wider than `width` at that viewport width (scrolling boxes excepted), and the page's scroll width. */
export async function overflowAt(page: Page, width: number): Promise<{ wide: string[]; scrollWidth: number }> {
  await page.setViewportSize({ width, height: 740 });
  await page.waitForTimeout(300); // charts follow their box's new width
  return page.evaluate((w) => ({
    wide: ([...document.querySelectorAll('body *')] as any[])
      .filter((el) => el.getBoundingClientRect().right > w + 1 && !el.parentElement?.closest('pre, .table-wrap'))
      .map((el) => `${el.tagName.toLowerCase()}.${el.className}`)
      .slice(0, 5),
    scrollWidth: document.documentElement.scrollWidth as number,
  }), width);
}

export interface ConsoleHarness {
  env: BorgkeepEnv;
  browser: Browser;
  page: Page;
  /** The console's address, e.g. http://127.0.0.1:41234 */
  url: string;
  adminPassword: string;
  pageErrors: string[];
  /** A link of the main navigation, by its name (a string matches exactly). */
  nav(name: string | RegExp): ReturnType<Page['getByRole']>;
  /** Logs `page` in through the login form. */
  login(name: string, password: string, page?: Page): Promise<void>;
  /** A new page in its own browser context (its own cookies), errors collected too. */
  newPage(): Promise<Page>;
  screenshot(name: string, options?: { forDocs?: boolean }): Promise<void>;
  close(): Promise<void>;
}

/** `setup` runs before `borgkeep serve` starts (keys, repositories by the CLI). */
export async function startConsoleHarness(label: string, { setup, envOptions }: { setup?: (env: BorgkeepEnv) => Promise<void>; envOptions?: EnvOptions } = {}): Promise<ConsoleHarness> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`the console's end-to-end test needs chromium at ${CHROMIUM}: install it (on Debian: apt-get install chromium) or set BORGKEEP_CHROMIUM`);
  }
  if (!existsSync(join(ROOT, 'dist', 'web', 'index.html'))) throw new Error('the console is not built: run npm run build first');
  const env = createBorgkeepEnv(label, 'embedded', envOptions);
  let browser: Browser | undefined;
  try {
    await setup?.(env);
    const log = (await env.frontEnd()).log();
    const url = /HTTP API listening on (\S+)\/api\/v1/.exec(log)![1]!;
    const adminPassword = firstAdminPassword(env.dataDir);
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
    const pageErrors: string[] = [];
    const openPage = async () => {
      const context = await browser!.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'light' });
      const p = await context.newPage();
      p.setDefaultTimeout(20_000);
      p.on('pageerror', (e) => pageErrors.push(`page error: ${e.message}`));
      p.on('console', (m) => {
        // The API's 401 before login and 404 for "not audited yet" are answers the console reads.
        if (m.type() === 'error' && !/Failed to load resource: the server responded with a status of 40[14]/.test(m.text())) pageErrors.push(`console error: ${m.text()}`);
      });
      return p;
    };
    const page = await openPage();
    mkdirSync(SHOTS, { recursive: true });
    return {
      env,
      browser,
      page,
      url,
      adminPassword,
      pageErrors,
      nav: (name) => page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: typeof name === 'string' }),
      async login(name, password, p = page) {
        await p.goto(url);
        await p.getByLabel('User').fill(name);
        await p.getByLabel('Password').fill(password);
        await p.getByRole('button', { name: 'Log in' }).click();
        await p.getByRole('button', { name: 'Log out' }).waitFor();
      },
      newPage: openPage,
      async screenshot(name, { forDocs = true } = {}) {
        const file = join(SHOTS, `${name}.png`);
        await page.screenshot({ path: file, fullPage: true });
        const doc = join(DOC_SHOTS, `${name}.png`);
        if (forDocs && (!existsSync(doc) || process.env.BORGKEEP_UPDATE_SCREENSHOTS === '1')) {
          mkdirSync(DOC_SHOTS, { recursive: true });
          copyFileSync(file, doc);
        }
      },
      async close() {
        await browser?.close();
        await env.cleanup();
      },
    };
  } catch (error) {
    await browser?.close();
    await env.cleanup();
    throw error;
  }
}
