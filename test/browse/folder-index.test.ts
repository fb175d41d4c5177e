// The per-archive folder index (src/browse/folder-index.ts) against the streaming listing it
// replaces (listFolder, browse.ts), on archives the real borg client wrote: every folder, every
// file path and some absent ones list the same through both (nested folders, hardlinks, symlinks,
// a fifo, non-UTF-8 names, two raw folders and three raw files that read alike when typed, a path
// archived twice), also over the API; two first listings at once build it once; an index that is
// cut short, damaged or left half-written by a crash is not trusted but built again; an archive
// deleted from the repository has its index dropped; the total kept is capped, least recently used
// first. One borgkeep installation and one API server for the file.

import { mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createApiServer, type ApiServer } from '../../src/api/api-server.js';
import { createPasswordHasher } from '../../src/api/auth/passwords.js';
import { openArchive, type ArchiveReader } from '../../src/browse/archive-reader.js';
import { listFolder, typedForm } from '../../src/browse/browse.js';
import { createFolderIndexes, folderIndexesOf, type FolderIndexes, type IndexSource } from '../../src/browse/folder-index.js';
import { openObjectReader, type ObjectReader } from '../../src/browse/object-reader.js';
import { unlockKey, type BorgKey } from '../../src/repository/borg-key.js';
import { parseRepoConfig } from '../../src/repository/repo-config.js';
import { openStore, type Store } from '../../src/store/database.js';
import { PASSWORD, TEST_ARGON2 } from '../api/api-harness.js';
import { PASSPHRASE, createBorgkeepEnv, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { borgOk, makeTreeWithSpecials } from './browse-fixture.js';

let env: BorgkeepEnv;
let store: Store;
let server: ApiServer;
let url = '';
let cookie = '';
let repoPath = '';
let work = '';
let key: BorgKey;
let scratch = '';

const raw = (...parts: Array<string | Buffer>): Buffer => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p)));

beforeAll(async () => {
  env = createBorgkeepEnv('browse-index');
  await env.cliOk(['repo', 'create', 'main']);
  repoPath = await env.repoPath('main');
  work = join(env.root, 'work');
  mkdirSync(work);
  await makeTreeWithSpecials(work);
  const src = join(work, 'src');
  // Two folders and three files whose names differ only in bytes that are not UTF-8 (or in a
  // literal U+FFFD): typed, they are the same path, so their listings merge as listFolder merges them.
  for (const [folder, file] of [[raw('dir', Buffer.from([0xff])), 'x'], [raw('dir', Buffer.from([0xfe])), 'y']] as const) {
    mkdirSync(raw(src, '/', folder));
    writeFileSync(raw(src, '/', folder, '/', file), `${file}\n`);
  }
  writeFileSync(raw(src, '/q', Buffer.from([0xff])), 'q ff\n');
  writeFileSync(raw(src, '/q', Buffer.from([0xfe])), 'q fe\n');
  writeFileSync(join(src, 'q\ufffd'), 'q fffd\n');
  mkdirSync(join(src, 'many'));
  for (let i = 0; i < 300; i++) writeFileSync(join(src, 'many', `f-${String(i).padStart(3, '0')}`), `${i}\n`);
  mkdirSync(join(work, 'other', 'deep', 'er'), { recursive: true });
  writeFileSync(join(work, 'other', 'deep', 'er', 'leaf'), 'leaf\n');
  symlinkSync('../src', join(work, 'other', 'up'));
  await borgOk(env, ['init', '-e', 'repokey', repoPath]);
  await borgOk(env, ['create', `${repoPath}::one`, 'src'], work);
  // src/dir archived twice (borg keeps both), and a second top folder reached only through deeper paths.
  await borgOk(env, ['create', `${repoPath}::two`, 'src', 'src/dir', 'other/deep/er'], work);
  await borgOk(env, ['create', `${repoPath}::three`, 'other'], work);
  writeFileSync(join(env.root, 'passphrase'), `${PASSPHRASE}\n`);
  await env.cliOk(['repo', 'key', 'main', '--passphrase-file', join(env.root, 'passphrase')]);
  const config = parseRepoConfig(readFileSync(join(repoPath, 'config'), 'utf8'));
  key = unlockKey(config.key!, PASSPHRASE, config.id);
  store = await openStore({ dataDir: env.dataDir });
  const passwords = await createPasswordHasher(TEST_ARGON2);
  server = createApiServer({ store, passwords, checkResponses: true });
  url = (await server.listen('127.0.0.1', 0)).url;
  await store.addUser({ name: 'op', role: 'operator', passwordHash: await passwords.hash(PASSWORD) });
  const login = await fetch(`${url}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'op', password: PASSWORD }) });
  cookie = /^bk_session=([^;]*)/.exec(login.headers.get('set-cookie') ?? '')![0];
  scratch = mkdtempSync(join(tmpdir(), 'browse-index-roots-'));
}, 120_000);

afterAll(async () => {
  await server?.close();
  await store?.close();
  await env?.cleanup();
});

async function opened<T>(work: (objects: ObjectReader, archive: (name: string) => Promise<ArchiveReader>) => Promise<T>): Promise<T> {
  const objects = await openObjectReader(repoPath, key);
  try {
    return await work(objects, (name) => openArchive(objects, key, name));
  } finally {
    await objects.close();
  }
}

const source = (objects: ObjectReader, archive: ArchiveReader): IndexSource => ({ repositoryPath: repoPath, objects, archive });
const settle = <T>(p: Promise<T>): Promise<{ ok: T } | { error: string }> => p.then((ok) => ({ ok }), (e: Error) => ({ error: `${e.name}: ${e.message}` }));

/** Every typed path of the archive and every folder above one, the top, and a few that are not there. */
async function pathsOf(archive: ArchiveReader): Promise<string[]> {
  const paths = new Set<string>(['', '/', 'nope', 'src/nope', 'src/dir/a.txt/deeper', '/src//dir/', 'src/./dir']);
  for await (const item of archive.items()) {
    const typed = typedForm(item.path.toString('latin1'));
    const parts = typed.split('/');
    for (let i = 1; i <= parts.length; i++) paths.add(parts.slice(0, i).join('/'));
  }
  return [...paths];
}

/** The middle byte of a folder's block in an index file (its directory read as the format says). */
function blockOf(file: Buffer, folder: string): number {
  const trailer = file.subarray(file.length - 52);
  const offset = Number(trailer.readBigUInt64LE(0));
  const directory = JSON.parse(file.toString('utf8', offset, offset + trailer.readUInt32LE(8))) as { folders: Array<[string, number, number]> };
  const [, at, length] = directory.folders.find((f) => f[0] === folder)!;
  return at + Math.floor(length / 2);
}

const indexFiles = (root: string): string[] => readdirSync(root, { recursive: true }).map(String).filter((f) => f.endsWith('.idx'));

/** A GET with the Accept-Encoding given, the body as sent (not decoded). */
function rawGet(path: string, acceptEncoding: string): Promise<{ headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${url}${path}`, { headers: { cookie, 'accept-encoding': acceptEncoding } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const api = async (path: string) => {
  const r = await fetch(`${url}/api/v1${path}`, { headers: { cookie } });
  return { status: r.status, body: (await r.json()) as { entries: unknown[] } & Record<string, unknown> };
};

describe('the folder index', () => {
  it('lists every folder, file and absent path exactly as reading the item stream does, also over the API', async () => {
    const indexes = createFolderIndexes(join(scratch, 'same'));
    await opened(async (objects, archiveNamed) => {
      for (const name of ['one', 'two', 'three']) {
        const archive = await archiveNamed(name);
        const paths = await pathsOf(archive);
        expect(paths.length).toBeGreaterThan(name === 'three' ? 5 : 320);
        for (const p of paths) {
          const streamed = await settle(listFolder(archive, p));
          expect(await settle(indexes.listing(source(objects, archive), p)), `${name}: '${p}'`).toEqual(streamed);
        }
      }
      expect(indexes.builds).toBe(3);
      // What the merged names list: both raw folders' children, and the last of three alike files.
      const one = await archiveNamed('one');
      const merged = await indexes.listing(source(objects, one), 'src/dir\ufffd');
      expect(merged.entries.map((e) => e.path)).toEqual(['src/dir?/y', 'src/dir?/x']);
      const alike = await indexes.listing(source(objects, one), 'src/q\ufffd');
      expect(alike.entries).toHaveLength(1);
      expect((await listFolder(one, 'src')).entries.filter((e) => e.name.startsWith('q'))).toHaveLength(3);
      // The later of the two hardlinks (whichever borg read second) shows its first copy's size.
      const links = [...(await indexes.listing(source(objects, one), 'src')).entries, ...(await indexes.listing(source(objects, one), 'src/dir')).entries].filter((e) => /^hard[12]$/.test(e.name));
      expect(links.map((e) => e.type).sort()).toEqual(['file', 'hardlink']);
      expect(links.map((e) => e.size)).toEqual([750, 750]);
      // Over the API: the same entries, the same 404 sentence.
      for (const p of ['', 'src', 'src/dir', 'src/dir\ufffd', 'src/many', 'src/link', 'src/dir/deeper/c.txt']) {
        const r = await api(`/repositories/main/archives/one/entries?path=${encodeURIComponent(p)}`);
        expect(r.status).toBe(200);
        expect(r.body.entries, p).toEqual((await listFolder(one, p)).entries);
      }
      // A client that takes deflate gets the index's stored entries inside one zlib stream; one
      // that does not, the same JSON (checked against the route's schema) as it is.
      for (const p of ['src/many', 'src/dir\ufffd']) {
        const path = `/api/v1/repositories/main/archives/one/entries?path=${encodeURIComponent(p)}`;
        const deflated = await rawGet(path, 'gzip, deflate');
        const plain = await rawGet(path, 'identity');
        expect(deflated.headers['content-encoding']).toBe('deflate');
        expect(plain.headers['content-encoding']).toBeUndefined();
        expect(deflated.body.length).toBeLessThan(plain.body.length);
        expect(inflateSync(deflated.body).equals(plain.body)).toBe(true);
        expect(JSON.parse(plain.body.toString('utf8')).entries).toEqual((await listFolder(one, p)).entries);
      }
      expect(await api('/repositories/main/archives/one/entries?path=src/missing')).toEqual({
        status: 404,
        body: { code: 'BK_ERR_NOT_FOUND', message: "archive 'one' of repository 'main' has nothing at '/src/missing'" },
      });
    });
    // Names only: owner-only files in owner-only folders.
    const root = join(env.dataDir, 'browse-index');
    const [file] = indexFiles(root);
    expect(statSync(join(root, file!)).mode & 0o777).toBe(0o600);
    expect(statSync(join(root, file!.split('/')[0]!)).mode & 0o777).toBe(0o700);
    expect(statSync(root).mode & 0o777).toBe(0o700);
  }, 60_000);

  it('two first listings at once build the index once', async () => {
    const shared = folderIndexesOf(store.paths.root);
    const before = shared.builds;
    const answers = await Promise.all(['src', 'src/dir', 'src/many'].map((p) => api(`/repositories/main/archives/two/entries?path=${encodeURIComponent(p)}`)));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    expect(shared.builds).toBe(before + 1);

    // In-process: the archive's items are read once for both.
    const indexes = createFolderIndexes(join(scratch, 'once'));
    await opened(async (objects, archiveNamed) => {
      const archive = await archiveNamed('one');
      let reads = 0;
      const counted: ArchiveReader = { info: archive.info, items: () => ((reads += 1), archive.items()) };
      const [a, b] = await Promise.all([indexes.listing(source(objects, counted), 'src'), indexes.listing(source(objects, counted), 'src/many')]);
      expect(reads).toBe(1);
      expect(indexes.builds).toBe(1);
      expect(a).toEqual(await listFolder(archive, 'src'));
      expect(b.entries).toHaveLength(300);
    });
  }, 60_000);

  it('an index cut short, damaged or left half-written is not trusted: built again', async () => {
    const root = join(scratch, 'damaged');
    const indexes = createFolderIndexes(root);
    await opened(async (objects, archiveNamed) => {
      const archive = await archiveNamed('one');
      const expected = await listFolder(archive, 'src/many');
      await indexes.listing(source(objects, archive), 'src/many');
      const file = join(root, indexFiles(root)[0]!);
      const good = readFileSync(file);
      const damages: Array<[string, () => void]> = [
        ["a flipped byte in the folder's block", () => {
          const bad = Buffer.from(good);
          bad[blockOf(good, 'src/many')]! ^= 0x10;
          writeFileSync(file, bad);
        }],
        ['a flipped byte in its directory', () => {
          const bad = Buffer.from(good);
          bad[bad.length - 80]! ^= 0x01;
          writeFileSync(file, bad);
        }],
        ['cut short (a crash before the trailer)', () => truncateSync(file, Math.floor(good.length / 2))],
        ['empty', () => writeFileSync(file, '')],
      ];
      for (const [what, damage] of damages) {
        const builds = indexes.builds;
        damage();
        expect(await indexes.listing(source(objects, archive), 'src/many'), what).toEqual(expected);
        expect(indexes.builds, what).toBe(builds + 1);
        expect(readFileSync(file).equals(good), what).toBe(true);
      }
      // A build that died leaves only its temporary file: never read, the index built anew.
      const other = await archiveNamed('two');
      const otherFile = join(root, indexFiles(root)[0]!.split('/')[0]!, `${other.info.id}.idx`);
      writeFileSync(`${otherFile}.tmp-1-dead`, good.subarray(0, 100));
      expect(await indexes.listing(source(objects, other), 'src')).toEqual(await listFolder(other, 'src'));
      expect(statSync(otherFile).size).toBeGreaterThan(100);
    });
  }, 60_000);

  it('the total kept is capped, least recently used first', async () => {
    const root = join(scratch, 'capped');
    const indexes = createFolderIndexes(root, { maxBytes: 1 });
    await opened(async (objects, archiveNamed) => {
      const one = await archiveNamed('one');
      const two = await archiveNamed('two');
      await indexes.listing(source(objects, one), 'src');
      expect(indexFiles(root).map((f) => f.split('/')[1])).toEqual([`${one.info.id}.idx`]);
      await indexes.listing(source(objects, two), 'src');
      expect(indexFiles(root).map((f) => f.split('/')[1])).toEqual([`${two.info.id}.idx`]);
      // Still answers the first (built again).
      expect(await indexes.listing(source(objects, one), 'src/dir')).toEqual(await listFolder(one, 'src/dir'));
    });
  }, 60_000);

  it("an archive deleted from the repository has its index dropped at the repository's next listing", async () => {
    const root = join(env.dataDir, 'browse-index');
    expect((await api('/repositories/main/archives/three/entries?path=other')).status).toBe(200);
    const three = await opened(async (_objects, archiveNamed) => (await archiveNamed('three')).info.id);
    const two = await opened(async (_objects, archiveNamed) => (await archiveNamed('two')).info.id);
    const names = () => indexFiles(root).map((f) => f.split('/')[1]);
    expect(names()).toEqual(expect.arrayContaining([`${three}.idx`, `${two}.idx`]));
    await borgOk(env, ['delete', `${repoPath}::three`]);
    expect((await api('/repositories/main/archives/two/entries?path=src')).status).toBe(200);
    expect(names()).not.toContain(`${three}.idx`);
    expect(names()).toContain(`${two}.idx`);
  }, 60_000);
});
