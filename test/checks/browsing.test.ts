// `borgkeep repo browsing NAME [--viewers on|off]`: the per-repository switch letting console viewers
// browse an archive's names (issue 18 point 2; what each role may then call is in the role matrix,
// test/api/authorization.test.ts). Off until an admin turns it on; a bad value is one sentence.

import { afterAll, beforeAll, expect, test } from 'vitest';

import { createBorgkeepEnv, type BorgkeepEnv } from '../helpers/borgkeep-env.js';

let env: BorgkeepEnv;

beforeAll(async () => {
  env = createBorgkeepEnv('checks-browsing');
  await env.cliOk(['repo', 'create', 'photos']);
});
afterAll(() => env?.cleanup());

test('viewers may not browse until an admin turns it on, and off again', async () => {
  expect(await env.cliOk(['repo', 'browsing', 'photos'])).toBe("only operators and admins may browse the archives of 'photos'.\n");
  const on = await env.cliOk(['repo', 'browsing', 'photos', '--viewers', 'on']);
  expect(on).toMatch(/^console viewers may browse the archives of 'photos' \(names and metadata; downloads stay with operators and admins\)\.\n  set by cli at /);
  expect(JSON.parse(await env.cliOk(['repo', 'browsing', 'photos', '--json']))).toMatchObject({ repository: 'photos', viewersMayBrowse: true, updatedBy: 'cli' });
  await env.cliOk(['repo', 'browsing', 'photos', '--viewers', 'off']);
  expect(JSON.parse(await env.cliOk(['repo', 'browsing', 'photos', '--json'])).viewersMayBrowse).toBe(false);
});

test('a bad value or an unknown repository is one sentence and a non-zero exit', async () => {
  const bad = await env.cli(['repo', 'browsing', 'photos', '--viewers', 'maybe']);
  expect(bad.code).not.toBe(0);
  expect(bad.stderr).toBe("borgkeep: --viewers must be on or off, not 'maybe'\n");
  const unknown = await env.cli(['repo', 'browsing', 'nope', '--viewers', 'on']);
  expect(unknown.code).not.toBe(0);
  expect(unknown.stderr).toMatch(/^borgkeep: .*'nope'.*\n$/);
});
