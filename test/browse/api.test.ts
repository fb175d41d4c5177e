// GET /repositories/:name/archives/:archive/entries and .../diff over real HTTP against a
// repository written by the real borg client, its key handed over with `borgkeep repo key`: the
// answers are what `borgkeep ls --json` and `borgkeep diff --json` print (and so what borg list
// and borg diff tell, test/browse/browse.test.ts); operators and admins may read them, viewers
// not yet; an unknown archive or path is a 404 and a repository without a held key a 409, each in
// the API's one error shape; no answer names the repository's folder on the server.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createApiServer, type ApiServer } from '../../src/api/api-server.js';
import { createPasswordHasher } from '../../src/api/auth/passwords.js';
import { openStore, type Store } from '../../src/store/database.js';
import { PASSWORD, TEST_ARGON2 } from '../api/api-harness.js';
import { PASSPHRASE, createBorgkeepEnv, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { borgOk, changeTree, makeTree } from './browse-fixture.js';

let env: BorgkeepEnv;
let store: Store;
let server: ApiServer;
let url = '';
let repoPath = '';
const answers: string[] = [];

async function as(role: 'admin' | 'operator' | 'viewer') {
  const passwords = await createPasswordHasher(TEST_ARGON2);
  const name = `${role}-user`;
  await store.addUser({ name, role, passwordHash: await passwords.hash(PASSWORD) });
  const r = await fetch(`${url}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, password: PASSWORD }) });
  expect(r.status).toBe(200);
  const cookie = /^bk_session=([^;]*)/.exec(r.headers.get('set-cookie') ?? '')![0];
  return async (path: string) => {
    const res = await fetch(`${url}/api/v1${path}`, { headers: { cookie } });
    const text = await res.text();
    answers.push(text);
    return { status: res.status, body: JSON.parse(text) };
  };
}

beforeAll(async () => {
  env = createBorgkeepEnv('browse-api');
  await env.cliOk(['repo', 'create', 'main']);
  await env.cliOk(['repo', 'create', 'nokey']);
  repoPath = await env.repoPath('main');
  const work = join(env.root, 'work');
  mkdirSync(work);
  makeTree(work);
  await borgOk(env, ['init', '-e', 'repokey', repoPath]);
  await borgOk(env, ['create', `${repoPath}::one`, 'src'], work);
  changeTree(work);
  await borgOk(env, ['create', `${repoPath}::two`, 'src'], work);
  await borgOk(env, ['init', '-e', 'repokey', await env.repoPath('nokey')]);
  await borgOk(env, ['create', `${await env.repoPath('nokey')}::one`, 'src'], work);
  writeFileSync(join(env.root, 'passphrase'), `${PASSPHRASE}\n`);
  await env.cliOk(['repo', 'key', 'main', '--passphrase-file', join(env.root, 'passphrase')]);
  store = await openStore({ dataDir: env.dataDir });
  server = createApiServer({ store, passwords: await createPasswordHasher(TEST_ARGON2), checkResponses: true });
  url = (await server.listen('127.0.0.1', 0)).url;
}, 120_000);

afterAll(async () => {
  await server?.close();
  await store?.close();
  await env?.cleanup();
});

describe('browsing over the API', () => {
  it("a folder's entries and a diff are what the CLI prints; viewers are refused; bad names are 404, no key 409", async () => {
    const operator = await as('operator');
    const entries = await operator('/repositories/main/archives/one/entries?path=src/dir');
    expect(entries.status).toBe(200);
    expect(entries.body).toEqual(JSON.parse(await env.cliOk(['ls', 'main', 'one', 'src/dir', '--json'])));
    expect(entries.body.entries.map((e: { name: string }) => e.name)).toContain('hard2');
    const top = await operator('/repositories/main/archives/one/entries');
    expect(top.body.entries.map((e: { name: string }) => e.name)).toEqual(['src']);

    const admin = await as('admin');
    const diff = await admin('/repositories/main/archives/one/diff?to=two');
    expect(diff.status).toBe(200);
    expect(diff.body).toEqual(JSON.parse(await env.cliOk(['diff', 'main', 'one', 'two', '--json'])));
    expect(diff.body.changes.map((c: { path: string }) => c.path)).toContain('src/new.txt');

    const viewer = await as('viewer');
    expect((await viewer('/repositories/main/archives/one/entries')).status).toBe(403);

    const unknownArchive = await operator('/repositories/main/archives/nosuch/entries');
    expect(unknownArchive).toEqual({ status: 404, body: { code: 'BK_ERR_NOT_FOUND', message: "repository 'main' has no archive named 'nosuch'" } });
    const unknownPath = await operator('/repositories/main/archives/one/entries?path=src/missing');
    expect(unknownPath).toEqual({ status: 404, body: { code: 'BK_ERR_NOT_FOUND', message: "archive 'one' of repository 'main' has nothing at '/src/missing'" } });
    const noKey = await operator('/repositories/nokey/archives/one/entries');
    expect(noKey.status).toBe(409);
    expect(noKey.body.message).toMatch(/^no key is held for repository 'nokey'/);
    expect((await operator('/repositories/nosuch/archives/one/entries')).status).toBe(404);

    for (const a of answers) expect(a).not.toContain(env.dataDir);
  });
});
