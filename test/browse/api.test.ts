// GET /repositories/:name/archives/:archive/entries and .../diff over real HTTP against a
// repository written by the real borg client, its key handed over with `borgkeep repo key`: the
// answers are what `borgkeep ls --json` and `borgkeep diff --json` print (and so what borg list
// and borg diff tell, test/browse/browse.test.ts); operators and admins may read them, viewers
// not yet; an unknown archive or path is a 404 and a repository without a held key a 409, each in
// the API's one error shape; no answer names the repository's folder on the server. Downloads: a
// file's bytes (whole, or one Range: 206 with Content-Range, 416 for one it does not have), a
// folder as a tar that unpacks to the files, each in the ledger; viewers are refused.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createApiServer, type ApiServer } from '../../src/api/api-server.js';
import { createPasswordHasher } from '../../src/api/auth/passwords.js';
import { openStore, type Store } from '../../src/store/database.js';
import { PASSWORD, TEST_ARGON2 } from '../api/api-harness.js';
import { PASSPHRASE, createBorgkeepEnv, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { run } from '../helpers/borgkeep-env.js';
import { borgOk, changeTree, makeTree } from './browse-fixture.js';

let env: BorgkeepEnv;
let store: Store;
let server: ApiServer;
let url = '';
let repoPath = '';
let work = '';
let operatorCookie = '';
const answers: string[] = [];

async function as(role: 'admin' | 'operator' | 'viewer') {
  const passwords = await createPasswordHasher(TEST_ARGON2);
  const name = `${role}-user`;
  await store.addUser({ name, role, passwordHash: await passwords.hash(PASSWORD) });
  const r = await fetch(`${url}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, password: PASSWORD }) });
  expect(r.status).toBe(200);
  const cookie = /^bk_session=([^;]*)/.exec(r.headers.get('set-cookie') ?? '')![0];
  if (role === 'operator') operatorCookie = cookie;
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
  work = join(env.root, 'work');
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

    const meta = await admin('/repositories/main/archives/two');
    expect(meta.status).toBe(200);
    const listed = JSON.parse(await env.cliOk(['archives', 'main', '--json'])) as { archives: Array<Record<string, unknown>> };
    const { firstSeenAt: _seen, check: _check, ...fromCli } = listed.archives.find((a) => a.name === 'two')!;
    expect(meta.body.archive).toEqual(fromCli);
    expect(meta.body.archive.commandLine).toContain('./main::two');

    // A search by path pattern: names in any folder, or whole paths; in the archive's order.
    const txt = await operator('/repositories/main/archives/one/search?pattern=*.txt');
    expect(txt.status).toBe(200);
    const listedTxt = txt.body.entries.map((e: { path: string }) => e.path);
    expect(listedTxt).toEqual(expect.arrayContaining(['src/dir/a.txt', 'src/dir/b.txt', 'src/dir/deeper/c.txt', 'src/ünïcödé.txt']));
    expect(txt.body.entries.every((e: { path: string }) => e.path.endsWith('.txt'))).toBe(true);
    expect(txt.body.truncated).toBe(false);
    const deep = await operator(`/repositories/main/archives/one/search?pattern=${encodeURIComponent('src/**/c.txt')}`);
    expect(deep.body.entries).toEqual([JSON.parse(await env.cliOk(['ls', 'main', 'one', 'src/dir/deeper/c.txt', '--json'])).entries[0]]);
    const first = await operator('/repositories/main/archives/one/search?pattern=*&limit=2');
    expect(first.body.entries).toHaveLength(2);
    expect(first.body.truncated).toBe(true);
    expect((await operator('/repositories/main/archives/one/search?pattern=nothing-like-this')).body.entries).toEqual([]);
    const bad = await operator(`/repositories/main/archives/one/search?pattern=${encodeURIComponent('a[b')}`);
    expect(bad).toEqual({ status: 400, body: { code: 'BK_ERR_INVALID_INPUT', message: "the search pattern 'a[b' has a '[' without its ']'" } });

    const viewer = await as('viewer');
    expect((await viewer('/repositories/main/archives/one/search?pattern=*')).status).toBe(403);
    expect((await viewer('/repositories/main/archives/two')).status).toBe(403);
    expect((await viewer('/repositories/main/archives/one/entries')).status).toBe(403);
    expect((await viewer('/repositories/main/archives/one/content?path=src/big.bin')).status).toBe(403);

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

describe('downloads over the API', () => {
  const download = (path: string, headers: Record<string, string> = {}) => fetch(`${url}/api/v1${path}`, { headers: { cookie: operatorCookie, ...headers } });

  it("a file's bytes, one range of them, a folder's tar; each in the ledger", async () => {
    const big = readFileSync(join(work, 'src', 'big.bin'));
    const whole = await download('/repositories/main/archives/two/content?path=src/big.bin');
    expect(whole.status).toBe(200);
    expect(whole.headers.get('content-length')).toBe(String(big.length));
    expect(whole.headers.get('accept-ranges')).toBe('bytes');
    expect(whole.headers.get('content-disposition')).toBe(`attachment; filename="big.bin"; filename*=UTF-8''big.bin`);
    expect(Buffer.from(await whole.arrayBuffer()).equals(big)).toBe(true);

    const part = await download('/repositories/main/archives/two/content?path=/src/big.bin', { range: 'bytes=700000-1300000' });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 700000-1300000/${big.length}`);
    expect(Buffer.from(await part.arrayBuffer()).equals(big.subarray(700000, 1300001))).toBe(true);
    const tail = await download('/repositories/main/archives/two/content?path=src/big.bin', { range: 'bytes=-10' });
    expect(Buffer.from(await tail.arrayBuffer()).equals(big.subarray(big.length - 10))).toBe(true);
    const beyond = await download('/repositories/main/archives/two/content?path=src/big.bin', { range: `bytes=${big.length}-` });
    expect(beyond.status).toBe(416);
    expect(beyond.headers.get('content-range')).toBe(`bytes */${big.length}`);
    expect(((await beyond.json()) as { code: string }).code).toBe('BK_ERR_INVALID_INPUT');

    const tar = await download('/repositories/main/archives/two/content?path=src/dir');
    expect(tar.status).toBe(200);
    expect(tar.headers.get('content-type')).toBe('application/x-tar');
    const tarFile = join(env.root, 'dir.tar');
    writeFileSync(tarFile, Buffer.from(await tar.arrayBuffer()));
    const out = join(env.root, 'untarred');
    mkdirSync(out);
    const t = await run('tar', ['-xf', tarFile, '-C', out]);
    expect(t.code, t.stderr).toBe(0);
    for (const f of ['a.txt', 'hard2', 'deeper/c.txt']) expect(readFileSync(join(out, 'src', 'dir', f)).equals(readFileSync(join(work, 'src', 'dir', f))), f).toBe(true);

    const missing = await download('/repositories/main/archives/two/content?path=src/nothing');
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ code: 'BK_ERR_NOT_FOUND', message: "archive 'two' of repository 'main' has nothing at '/src/nothing'" });

    const ledger = JSON.parse(await env.cliOk(['ledger', '--repo', 'main', '--json'])) as { sessions: Array<{ keyName: string | null; result: string; detail: string | null; bytesOut: number; clientAddress: string | null }> };
    const restores = ledger.sessions.filter((x) => x.keyName === '(restore by operator-user)');
    expect(restores.map((x) => [x.result, x.bytesOut]).reverse().slice(0, 4)).toEqual([
      ['ok', big.length],
      ['ok', 600001],
      ['ok', 10],
      ['ok', restores.find((x) => x.detail?.includes('tar stream'))!.bytesOut],
    ]);
    expect(restores.find((x) => x.detail?.includes('bytes 700000-1300000'))?.detail).toBe("operator-user restored '/src/big.bin' of archive 'two' as bytes 700000-1300000 of a file (1 item, 600001 bytes)");
  });
});
