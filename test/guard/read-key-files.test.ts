// A read key changes no file of the repository (issue 13, finding 6). borg 1.2's server-side
// `check` rewrites the repository's config (its progress lives there), and every encrypting
// client reserves nonce space, which rewrites the `nonce` file: the guard refuses both to the read
// role. After every command a read key runs with the stock client, every file of the repository
// has the same name, size, modification time and bytes as before.
//
// Compared: every regular file under the repository directory, and the names of its directories.
// Not compared: directories' modification times, which change when borg creates and removes its
// lock (lock.exclusive/, lock.roster) in the repository directory for any session, reads included;
// the lock files themselves must be gone once the session has ended, and that is asserted.

import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';

import { KEYS, createHostileFixture, type HostileFixture } from '../helpers/hostile-fixture.js';

let f: HostileFixture;
let repo: string;

beforeAll(async () => {
  f = await createHostileFixture({ label: 'read-files', encryption: 'repokey' });
  repo = f.repoDir('main');
});
afterAll(() => f?.cleanup());

/** Every file: "path size mtime-ns sha256"; every directory: "path/". */
function files(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    const p = join(dir, r);
    if (e.isDirectory()) out.push(`${r}/`, ...files(dir, r));
    else {
      const st = statSync(p, { bigint: true });
      out.push(`${r} ${st.size} ${st.mtimeNs} ${createHash('sha256').update(readFileSync(p)).digest('hex')}`);
    }
  }
  return out.sort();
}

const url = () => f.env.url('main');

test.each([
  ['list', () => ['list', url()]],
  ['list of an archive', () => ['list', `${url()}::first`]],
  ['info', () => ['info', url()]],
  ['extract', () => ['extract', `${url()}::first`]],
  ['extract --dry-run', () => ['extract', '--dry-run', `${url()}::first`]],
])('a read key running borg %s changes no file of the repository', async (name, args) => {
  const before = files(repo);
  const cwd = join(f.env.root, `extract-${name.replace(/\W+/g, '-')}`);
  mkdirSync(cwd, { recursive: true });
  const r = await f.env.borg(KEYS.read, args(), { cwd });
  expect(r.code, r.stderr).toBe(0);
  const after = files(repo);
  expect(after.some((l) => l.startsWith('lock.'))).toBe(false);
  expect(after).toEqual(before);
});

test.each([
  ['check', ['check'], "the read role may not run borg's repository check"],
  ['check --repository-only', ['check', '--repository-only'], "the read role may not run borg's repository check"],
  ['check --repository-only --max-duration', ['check', '--repository-only', '--max-duration', '60'], "the read role may not run borg's repository check"],
  ['check --archives-only', ['check', '--archives-only'], 'the read role may not reserve nonce space'],
])('a read key running borg %s is refused with a clear message and changes no file', async (_name, args, why) => {
  const before = files(repo);
  const r = await f.env.borg(KEYS.read, [...args, url()]);
  expect(r.code).not.toBe(0);
  expect(r.stderr).toContain(why);
  expect(r.stderr).toContain('role read');
  const after = files(repo);
  expect(after.some((l) => l.startsWith('lock.'))).toBe(false);
  expect(after).toEqual(before);
});

test('a writing key still runs borg check', async () => {
  for (const key of [KEYS.append, KEYS.full]) {
    const r = await f.env.borg(key, ['check', url()]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  }
});

test('the ledger holds every session closed and nothing reached the client that names the server', async () => {
  await f.closedLedger();
  f.leakCheck();
});
