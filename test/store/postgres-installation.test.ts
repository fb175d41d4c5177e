// An installation on PostgreSQL (issue 19), end to end with real parts: the built CLI, the real
// borg client through sshd's forced command and through the embedded gateway of `borgkeep serve
// --database`, a real PostgreSQL server. Every process of the installation finds the same
// database (the config file's "database", or the URL serve records in the data directory), the
// ledger lives there, and no SQLite file appears beside the repositories.

import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

import { createBorgkeepEnv, makeSourceTree, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { createTestPostgresDatabase, queryPostgres } from '../support/temp-store.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const rows = (url: string, text: string) => queryPostgres(url, text);

interface LedgerJson {
  sessions: Array<{ result: string; keyName: string | null; repositoryName: string | null; transactions: Array<{ state: string }> }>;
}

async function backUp(env: BorgkeepEnv, repo: string): Promise<void> {
  const init = await env.borg('laptop', ['init', '-e', 'repokey', env.url(repo)]);
  expect(init.code, init.stderr).toBe(0);
  const create = await env.borg('laptop', ['create', `${env.url(repo)}::first`, makeSourceTree(join(env.root, `src-${repo}`), 1)]);
  expect(create.code, create.stderr).toBe(0);
  const list = await env.borg('laptop', ['list', '--short', env.url(repo)]);
  expect(list.stdout.trim()).toBe('first');
}

/** A forced-command installation whose config file names a fresh PostgreSQL database. */
async function forcedCommandOnPostgres(label: string) {
  const db = await createTestPostgresDatabase();
  const env = createBorgkeepEnv(label);
  cleanups.push(() => db.drop(), () => env.cleanup());
  mkdirSync(env.dataDir, { recursive: true, mode: 0o700 });
  writeFileSync(join(env.dataDir, 'borgkeep.json'), JSON.stringify({ database: db.url }));
  return { db, env };
}

describe('an installation on PostgreSQL', () => {
  it('through the forced command: the config file names the database, and the CLI, borg-serve and the ledger all use it', async () => {
    const { db, env } = await forcedCommandOnPostgres('bk-pg-forced');

    await env.repoWithKeys('photos', { laptop: 'full' });
    await backUp(env, 'photos');

    const ledger = JSON.parse(await env.cliOk(['ledger', '--json', '--repo', 'photos'])) as LedgerJson;
    expect(ledger.sessions.map((s) => s.result)).toEqual(['ok', 'ok', 'ok']);
    expect(ledger.sessions.some((s) => s.transactions.some((t) => t.state === 'committed'))).toBe(true);
    // The rows are in PostgreSQL, and the data directory holds no SQLite database.
    expect(await rows(db.url, "select count(*)::int as n from sessions where repository_name = 'photos' and result = 'ok'")).toEqual([{ n: 3 }]);
    expect(existsSync(join(env.dataDir, 'borgkeep.db'))).toBe(false);
  });

  it('through the embedded gateway of serve --database: serve records the URL, so the CLI afterwards needs no setting', async () => {
    const db = await createTestPostgresDatabase();
    const env = createBorgkeepEnv('bk-pg-embedded', 'embedded', { serveArgs: ['--database', db.url] });
    cleanups.push(() => db.drop(), () => env.cleanup());
    await env.frontEnd();
    const recorded = join(env.dataDir, 'database-url');
    expect(readFileSync(recorded, 'utf8').trim()).toBe(db.url);
    expect(statSync(recorded).mode & 0o777).toBe(0o600);

    await env.repoWithKeys('mail', { laptop: 'full' });
    await backUp(env, 'mail');
    const ledger = JSON.parse(await env.cliOk(['ledger', '--json', '--repo', 'mail'])) as LedgerJson;
    expect(ledger.sessions.map((s) => [s.result, s.keyName])).toEqual([
      ['ok', 'laptop'],
      ['ok', 'laptop'],
      ['ok', 'laptop'],
    ]);
    expect(existsSync(join(env.dataDir, 'borgkeep.db'))).toBe(false);
  });

  it("tells a borg client whose server cannot reach its database one sentence, naming neither the database nor its address", async () => {
    const { env } = await forcedCommandOnPostgres('bk-pg-down');
    await env.repoWithKeys('photos', { laptop: 'full' });
    // The database server moves away (here: the setting names a port nothing listens on).
    writeFileSync(join(env.dataDir, 'borgkeep.json'), JSON.stringify({ database: 'postgres://borgkeep:s3cret@127.0.0.1:9/borgkeep' }));
    const r = await env.borg('laptop', ['init', '-e', 'repokey', env.url('photos')]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("the server cannot open its database right now; try again later (the reason is in the server's system log)");
    expect(r.stderr).not.toMatch(/postgres|127\.0\.0\.1:9|s3cret|ECONNREFUSED|borgkeep\.json|\/tmp\//);
  });

  it('refuses a database setting that is no PostgreSQL URL, in one sentence, changing nothing', async () => {
    const env = createBorgkeepEnv('bk-pg-bad');
    cleanups.push(() => env.cleanup());
    const r = await env.cli(['key', 'list'], { env: { BORGKEEP_DATABASE_URL: 'mysql://root@localhost/borgkeep' } });
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim()).toBe('borgkeep: BORGKEEP_DATABASE_URL: is not a PostgreSQL URL like postgres://user@host/borgkeep (the embedded SQLite database needs no setting)');
    expect(existsSync(join(env.dataDir, 'borgkeep.db'))).toBe(false);
  });
});
