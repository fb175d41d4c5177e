// The axe-core check the console's end-to-end tests share: inject axe-core into the page as it
// is now and list its serious and critical violations, one line each (an empty list passes).
// axe's source is evaluated, never added as a <script>: the console's Content-Security-Policy
// (script-src 'self') refuses inline scripts, and evaluation through the DevTools protocol is
// not subject to it. It only reads the page; it never changes it.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { ROOT } from '../helpers/borgkeep-env.js';

declare const axe: any;
declare const document: any;

let source: string | undefined;

/** Serious and critical axe-core violations of the page as it is now: "impact rule: targets". */
export async function axeViolations(page: Page): Promise<string[]> {
  source ??= readFileSync(join(ROOT, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');
  if (!(await page.evaluate(() => typeof (globalThis as any).axe !== 'undefined'))) await page.evaluate(source);
  const violations = (await page.evaluate(async () => (await axe.run(document)).violations)) as Array<{ id: string; impact: string; nodes: Array<{ target: string[] }> }>;
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.impact} ${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}
