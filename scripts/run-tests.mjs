#!/usr/bin/env node
// `npm test`: builds, runs the whole vitest suite, and ends with the one line CI reads:
// "N passed, N failed". Extra arguments go to vitest (e.g. `npm test -- test/guard`).
import { spawnSync } from 'node:child_process';
import { readFileSync, mkdirSync, rmSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

import { build } from './build.mjs';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const run = (cmd, args, opts = {}) => spawnSync(cmd, args, { cwd: root, stdio: 'inherit', ...opts });

// The suite drives the real programs (and a real browser): install the Debian packages that are missing (as root),
// or say which ones to install.
const NEEDED = [
  ['borg', 'borgbackup'],
  ['borgmatic', 'borgmatic'],
  ['ssh', 'openssh-client'],
  ['/usr/sbin/sshd', 'openssh-server'],
  // The console's end-to-end test (test/e2e) drives it with playwright-core.
  ['/usr/bin/chromium', 'chromium'],
  // Certificates for the TLS tests (the mail server's STARTTLS).
  ['openssl', 'openssl'],
  // The LDAP sign-on tests start their own slapd.
  ['/usr/sbin/slapd', 'slapd'],
  ['ldapadd', 'ldap-utils'],
  // The store tests run on PostgreSQL too: the suite starts its own server (test/support/postgres-server.ts).
  ['pg_ctlcluster', 'postgresql'],
  // The build compiles the native object checker (native/objcheck.c); its tests need it built.
  ['cc', 'gcc'],
];
const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
const missing = NEEDED.filter(([cmd]) => !has(cmd)).map(([, pkg]) => pkg);
if (missing.length > 0) {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const installed =
    process.getuid?.() === 0 &&
    has('apt-get') &&
    run('apt-get', ['update', '-qq'], { env }).status === 0 &&
    run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { env }).status === 0;
  if (!installed) {
    console.log(`the suite needs ${missing.join(', ')}: install them (on Debian/Ubuntu: sudo apt-get install ${missing.join(' ')}) and run npm test again`);
    console.log('0 passed, 1 failed');
    process.exit(1);
  }
}

const buildError = await build();
if (buildError) {
  console.log(`build failed: ${buildError}`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}

const outDir = join(root, 'test-results');
mkdirSync(outDir, { recursive: true });
const report = join(outDir, 'vitest.json');
rmSync(report, { force: true });
// durations-reporter writes test-results/file-durations.json, the input of scripts/test-durations.mjs.
const vitest = run('npx', ['vitest', 'run', '--reporter=default', '--reporter=json', '--reporter=./scripts/durations-reporter.mjs', `--outputFile.json=${report}`, ...process.argv.slice(2)]);

let passed = 0;
let failed = 0;
let skipped = 0;
try {
  const r = JSON.parse(readFileSync(report, 'utf8'));
  passed = r.numPassedTests;
  failed = r.numFailedTests;
  skipped = r.numPendingTests + (r.numTodoTests ?? 0);
  // A file that fails to load has no tests counted; count it as a failure.
  for (const f of r.testResults ?? []) if (f.status === 'failed' && (f.assertionResults ?? []).length === 0) failed += 1;
} catch {
  failed = Math.max(failed, 1);
}
if (vitest.status !== 0 && failed === 0) failed = 1;
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed === 0 ? 0 : 1);
