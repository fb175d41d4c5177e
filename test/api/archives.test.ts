// GET /repositories/:name/archives with real borg repositories: backups made through the guard
// (forced command), the key handed over with `borgkeep repo key NAME --passphrase-file F`, and the
// real API server on the same data directory. The list is `borg list`'s; archives the guard saw
// committed carry the server's first-seen time and the session that added them; a backup stamped
// with an old --timestamp shows as retimed; without a held key the answer says so in one sentence;
// no answer names a server path or carries the passphrase; every console role may read it.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createApiServer, type ApiServer } from '../../src/api/api-server.js';
import { createPasswordHasher } from '../../src/api/auth/passwords.js';
import { openStore, type Store } from '../../src/store/database.js';
import { PASSPHRASE, createBorgkeepEnv, makeSourceTree, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { PASSWORD, TEST_ARGON2 } from './api-harness.js';

let env: BorgkeepEnv;
let store: Store;
let server: ApiServer;
let url: string;
let src: string;
const answers: string[] = [];

async function borgOk(key: string, args: string[]): Promise<string> {
  const r = await env.borg(key, args);
  if (r.code !== 0) throw new Error(`borg ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

/** A logged-in console user of the given role (null: no login). */
async function as(role: 'admin' | 'operator' | 'viewer' | null) {
  let cookie: string | null = null;
  if (role) {
    const passwords = await createPasswordHasher(TEST_ARGON2);
    const name = `${role}-user`;
    if (!(await store.listUsers()).some((u) => u.name === name)) await store.addUser({ name, role, passwordHash: await passwords.hash(PASSWORD) });
    const r = await fetch(`${url}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, password: PASSWORD }) });
    expect(r.status).toBe(200);
    cookie = /^bk_session=([^;]*)/.exec(r.headers.get('set-cookie') ?? '')![0];
  }
  return async (path: string) => {
    const r = await fetch(`${url}/api/v1${path}`, { headers: cookie ? { cookie } : {} });
    const text = await r.text();
    answers.push(text);
    return { status: r.status, body: JSON.parse(text) };
  };
}

beforeAll(async () => {
  env = createBorgkeepEnv('archives-api');
  src = makeSourceTree(join(env.root, 'tree'), 7);
  writeFileSync(join(env.root, 'passphrase'), `${PASSPHRASE}\n`);
  await env.repoWithKeys('main', { root: 'full', alice: 'append' });
  await env.cliOk(['repo', 'create', 'plain']);
  await env.cliOk(['grant', 'root', 'plain', '--role', 'full']);
  await borgOk('root', ['init', '-e', 'repokey', env.url('main')]);
  await borgOk('root', ['init', '-e', 'repokey', env.url('plain')]);
  // Before the key is handed over: the guard cannot read the manifest, so no sighting yet.
  await borgOk('root', ['create', `${env.url('main')}::before`, src]);
  await borgOk('root', ['create', `${env.url('plain')}::p1`, src]);
  await env.cliOk(['repo', 'key', 'main', '--passphrase-file', join(env.root, 'passphrase')]);
  await borgOk('alice', ['create', `${env.url('main')}::mon`, src]);
  await borgOk('alice', ['create', `${env.url('main')}::tue`, src]);
  // A full key may stamp an archive with any time; the list shows it as retimed.
  await borgOk('root', ['create', '--timestamp', '2020-01-01T00:00:00', `${env.url('main')}::old`, src]);
  store = await openStore({ dataDir: env.dataDir });
  server = createApiServer({ store, passwords: await createPasswordHasher(TEST_ARGON2), checkResponses: true });
  url = (await server.listen('127.0.0.1', 0)).url;
}, 180_000);

afterAll(async () => {
  await server?.close();
  await store?.close();
  await env?.cleanup();
});

describe('GET /repositories/:name/archives', () => {
  it("lists the committed manifest's archives as borg list does, with first sightings and who added them", async () => {
    const listed = JSON.parse(await borgOk('root', ['list', '--json', env.url('main')])) as { archives: Array<{ name: string; id: string }> };
    const get = await as('viewer');
    const r = await get('/repositories/main/archives');
    expect(r.status).toBe(200);
    expect(r.body.keyHeld).toBe(true);
    expect(r.body.reason).toBeNull();
    const archives = r.body.archives as Array<{ name: string; id: string; time: string; firstSeenAt: string | null; firstSeenBaseline: boolean; retimed: boolean; addedBy: { sessionId: number; keyName: string | null; role: string | null } | null }>;
    expect(archives.map((a) => [a.name, a.id]).sort()).toEqual(listed.archives.map((a) => [a.name, a.id]).sort());
    const by = Object.fromEntries(archives.map((a) => [a.name, a]));

    // Archives the guard saw committed: the server's time of that commit and the session's key.
    const sessions = new Map(
      (await store.querySessions({ repositoryId: (await store.getRepository('main')).id, limit: 100 })).items.map((s) => [s.id, s] as const),
    );
    for (const [name, key, role] of [['mon', 'alice', 'append'], ['tue', 'alice', 'append'], ['old', 'root', 'full']] as const) {
      const a = by[name]!;
      expect(a.firstSeenAt, name).not.toBeNull();
      expect(a.firstSeenBaseline).toBe(false);
      expect(a.addedBy).toMatchObject({ keyName: key, role });
      const session = sessions.get(a.addedBy!.sessionId)!;
      expect(session.keyName).toBe(key);
      expect(Date.parse(a.firstSeenAt!)).toBeGreaterThanOrEqual(session.startedAt.getTime());
      expect(Date.parse(a.firstSeenAt!)).toBeLessThanOrEqual(Date.now());
    }
    expect(by.mon!.addedBy!.sessionId).not.toBe(by.tue!.addedBy!.sessionId);
    expect(by.mon!.retimed).toBe(false);
    expect(by.old!.time.startsWith('2020-01-01T00:00:00')).toBe(true);
    expect(by.old!.retimed).toBe(true);
    // Made before borgkeep held the key: first read at the next commit, "then or earlier", by no one known.
    expect(by.before!.addedBy).toBeNull();
    expect(by.before!.retimed).toBe(false);
    if (by.before!.firstSeenAt !== null) expect(by.before!.firstSeenBaseline).toBe(true);
  });

  it('says in one sentence that the key is not held, and has no list then', async () => {
    const r = await (await as('operator'))('/repositories/plain/archives');
    expect(r.status).toBe(200);
    expect(r.body.keyHeld).toBe(false);
    expect(r.body.archives).toBeNull();
    expect(r.body.reason).toMatch(/^borgkeep does not hold this repository's key[^\n]*\.$/);
  });

  it('is for logged-in console users of any role, and 404 for an unknown repository', async () => {
    for (const role of ['viewer', 'operator', 'admin'] as const) expect((await (await as(role))('/repositories/main/archives')).status).toBe(200);
    expect((await (await as(null))('/repositories/main/archives')).status).toBe(401);
    expect((await (await as('viewer'))('/repositories/nosuch/archives')).status).toBe(404);
  });

  it('never names a server path or carries the passphrase', () => {
    expect(answers.length).toBeGreaterThan(3);
    for (const a of answers) {
      expect(a).not.toContain(env.root);
      expect(a).not.toContain(PASSPHRASE);
    }
  });
});
