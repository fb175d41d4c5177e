// A private PostgreSQL server for one test run (issue 19): Debian's postgresql package, a fresh
// cluster in a temporary directory owned by the `postgres` system user, listening on a loopback
// port and its own socket directory, without fsync (the tests need a real server, not a durable
// one). Started by test/global-setup.ts when the suite runs as root; otherwise the suite uses
// BORGKEEP_TEST_POSTGRES_URL (a server where that user may create databases), or says how.

import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { freePort } from '../helpers/ssh-transports.js';

/** The newest installed server's bin directory (/usr/lib/postgresql/N/bin), or null. */
export function postgresBinDir(): string | null {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return null;
  const versions = readdirSync(base)
    .filter((v) => existsSync(join(base, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length > 0 ? join(base, versions[0]!, 'bin') : null;
}

export interface TestPostgres {
  /** Connects as the superuser to the `postgres` database; tests make their own databases. */
  url: string;
  stop(): void;
}

/** Why a private server cannot be started here, or null when it can. */
export function whyNoPrivatePostgres(): string | null {
  if (process.getuid?.() !== 0) return 'the suite does not run as root (it starts a private server as the postgres user)';
  if (!postgresBinDir()) return "PostgreSQL's server is not installed (apt-get install postgresql; .ci/run does)";
  if (spawnSync('id', ['-u', 'postgres']).status !== 0) return 'there is no postgres system user (the postgresql package makes it)';
  return null;
}

export async function startTestPostgres(): Promise<TestPostgres> {
  const bin = postgresBinDir()!;
  const root = mkdtempSync(join(tmpdir(), 'borgkeep-test-pg-'));
  chownSync(root, Number(execFileSync('id', ['-u', 'postgres']).toString()), Number(execFileSync('id', ['-g', 'postgres']).toString()));
  const data = join(root, 'data');
  const asPostgres = (cmd: string, args: string[]) => execFileSync('runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args], { stdio: 'pipe', cwd: root });
  try {
    asPostgres('initdb', ['-D', data, '--auth=trust', '--username=postgres', '--encoding=UTF8', '--locale=C.UTF-8', '--no-sync']);
    const port = await freePort();
    const settings = [`-p ${port}`, `-k ${root}`, "-c listen_addresses='127.0.0.1'", '-c fsync=off', '-c synchronous_commit=off', '-c full_page_writes=off', '-c max_connections=300'];
    asPostgres('pg_ctl', ['-D', data, '-l', join(root, 'server.log'), '-w', '-t', '60', '-o', settings.join(' '), 'start']);
    return {
      url: `postgres://postgres@127.0.0.1:${port}/postgres`,
      stop() {
        try {
          asPostgres('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
        } finally {
          rmSync(root, { recursive: true, force: true });
        }
      },
    };
  } catch (error) {
    rmSync(root, { recursive: true, force: true });
    const detail = (error as { stderr?: Buffer }).stderr?.toString().trim();
    throw new Error(`could not start a private PostgreSQL server: ${detail || (error as Error).message}`);
  }
}
