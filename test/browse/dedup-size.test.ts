// Each archive's deduplicated size (src/browse/dedup-sizes.ts) against `borg info --json
// REPO::ARCHIVE`'s stats.deduplicated_size, on a repository the real borg 1.2 client wrote: three
// archives with data of their own, data shared by all, data shared by two, and a file repeated
// within one archive; `borgkeep archives --json` and the API's archive list give borg's figures
// exactly, and after `borg delete` of one archive (its data now only the others') the figures
// are computed again and are borg's again.

import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createApiServer, type ApiServer } from '../../src/api/api-server.js';
import { createPasswordHasher } from '../../src/api/auth/passwords.js';
import { openStore, type Store } from '../../src/store/database.js';
import { PASSWORD, TEST_ARGON2 } from '../api/api-harness.js';
import { PASSPHRASE, createBorgkeepEnv, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { SMALL_CHUNKS, borgOk } from './browse-fixture.js';

let env: BorgkeepEnv;
let store: Store;
let server: ApiServer;
let url = '';
let cookie = '';
let repoPath = '';
let work = '';

beforeAll(async () => {
  env = createBorgkeepEnv('dedup-size');
  await env.cliOk(['repo', 'create', 'main']);
  repoPath = await env.repoPath('main');
  work = join(env.root, 'work');
  const src = join(work, 'src');
  mkdirSync(src, { recursive: true });
  const everywhere = randomBytes(120_000);
  const inOneAndTwo = randomBytes(90_000);
  await borgOk(env, ['init', '-e', 'repokey', repoPath]);
  const create = (name: string) => borgOk(env, ['create', '--chunker-params', SMALL_CHUNKS, `${repoPath}::${name}`, 'src'], work);

  writeFileSync(join(src, 'everywhere.bin'), everywhere);
  writeFileSync(join(src, 'shared.bin'), inOneAndTwo);
  writeFileSync(join(src, 'own.bin'), randomBytes(70_000));
  // The same content twice in one archive: its chunks are referenced twice, by this archive only.
  const twice = randomBytes(50_000);
  writeFileSync(join(src, 'twice-a.bin'), twice);
  writeFileSync(join(src, 'twice-b.bin'), twice);
  writeFileSync(join(src, 'text.txt'), 'compressible text\n'.repeat(2000));
  await create('one');

  rmSync(join(src, 'twice-a.bin'));
  rmSync(join(src, 'twice-b.bin'));
  writeFileSync(join(src, 'own.bin'), randomBytes(40_000));
  writeFileSync(join(src, 'later.bin'), randomBytes(60_000));
  await create('two');

  rmSync(join(src, 'shared.bin'));
  writeFileSync(join(src, 'own.bin'), randomBytes(30_000));
  writeFileSync(join(src, 'more.bin'), randomBytes(20_000));
  await create('three');

  writeFileSync(join(env.root, 'passphrase'), `${PASSPHRASE}\n`);
  await env.cliOk(['repo', 'key', 'main', '--passphrase-file', join(env.root, 'passphrase')]);
  store = await openStore({ dataDir: env.dataDir });
  const passwords = await createPasswordHasher(TEST_ARGON2);
  server = createApiServer({ store, passwords, checkResponses: true });
  url = (await server.listen('127.0.0.1', 0)).url;
  await store.addUser({ name: 'op', role: 'operator', passwordHash: await passwords.hash(PASSWORD) });
  const login = await fetch(`${url}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'op', password: PASSWORD }) });
  cookie = /^bk_session=([^;]*)/.exec(login.headers.get('set-cookie') ?? '')![0];
}, 120_000);

afterAll(async () => {
  await server?.close();
  await store?.close();
  await env?.cleanup();
});

async function fromBorg(names: string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const name of names) {
    const info = JSON.parse(await borgOk(env, ['info', '--json', `${repoPath}::${name}`])) as { archives: Array<{ stats: { deduplicated_size: number } }> };
    out[name] = info.archives[0]!.stats.deduplicated_size;
  }
  return out;
}

async function fromCli(): Promise<Record<string, number | null>> {
  const listed = JSON.parse(await env.cliOk(['archives', 'main', '--json'])) as { archives: Array<{ name: string; deduplicatedSize: number | null }> };
  return Object.fromEntries(listed.archives.map((a) => [a.name, a.deduplicatedSize]));
}

/** The API's archive list; null figures are still being computed (off the request): asked again. */
async function fromApi(): Promise<Record<string, number | null>> {
  for (let attempt = 0; ; attempt++) {
    const r = await fetch(`${url}/api/v1/repositories/main/archives`, { headers: { cookie } });
    expect(r.status).toBe(200);
    const body = (await r.json()) as { archives: Array<{ name: string; deduplicatedSize: number | null }> };
    const sizes = Object.fromEntries(body.archives.map((a) => [a.name, a.deduplicatedSize]));
    if (Object.values(sizes).every((n) => n !== null) || attempt > 100) return sizes;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe("an archive's deduplicated size", () => {
  it("is borg info's deduplicated_size, in the CLI and the API, and again after an archive is deleted", async () => {
    const borg = await fromBorg(['one', 'two', 'three']);
    // The fixture is what it says: each archive has data of its own, and less than all it holds.
    for (const n of Object.values(borg)) expect(n).toBeGreaterThan(10_000);
    expect(borg.one).toBeGreaterThan(borg.two!);

    // The API first (nothing kept yet: it computes off the request), then the CLI (kept figures).
    expect(await fromApi()).toEqual(borg);
    expect(await fromCli()).toEqual(borg);

    // Deleting 'three' leaves 'later.bin' to 'two' alone.
    await borgOk(env, ['delete', `${repoPath}::three`]);
    const after = await fromBorg(['one', 'two']);
    expect(after.two).toBeGreaterThan(borg.two! + 50_000);
    expect(await fromCli()).toEqual(after);
    expect(await fromApi()).toEqual(after);

    // And deleting 'two': 'one' alone holds everything.
    await borgOk(env, ['delete', `${repoPath}::two`]);
    const alone = await fromBorg(['one']);
    expect(await fromApi()).toEqual(alone);
    expect(await fromCli()).toEqual(alone);
  }, 120_000);
});
