// Which database an installation's control plane lives in (issue 19): the data directory's own
// SQLite file by default, or PostgreSQL when a postgres:// URL is configured. Every process of
// the installation must agree — `serve`, the CLI, and sshd's forced command, which gets neither
// serve's flags nor its environment — so serve records a PostgreSQL URL in the data directory
// (DATA/database-url, mode 0600, like the vault's master key beside it) and the others read it.
//
// Order: serve's --database flag; BORGKEEP_DATABASE_URL; the config file's "database"; the
// recorded URL; else SQLite.

import { chmodSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { invalidInput } from '../errors.js';
import { readDefaultConfigFile } from '../cli/config-file.js';

export const RECORDED_URL_FILE = 'database-url';

function checked(url: string, from: string): string {
  const text = url.trim();
  if (!/^postgres(ql)?:\/\/\S+$/i.test(text)) {
    throw invalidInput(`${from}: is not a PostgreSQL URL like postgres://user@host/borgkeep (the embedded SQLite database needs no setting)`);
  }
  return text;
}

/** The PostgreSQL URL in use, or undefined for SQLite. `flag`: serve's --database. */
export function databaseUrlFor(dataDir: string, env: NodeJS.ProcessEnv = process.env, flag?: string, configFile?: Record<string, unknown>): string | undefined {
  if (flag !== undefined) return checked(flag, '--database');
  if (env.BORGKEEP_DATABASE_URL) return checked(env.BORGKEEP_DATABASE_URL, 'BORGKEEP_DATABASE_URL');
  const file = configFile ?? readDefaultConfigFile(dataDir, env);
  if (file.database !== undefined) {
    if (typeof file.database !== 'string') throw invalidInput('config file, database: is not a PostgreSQL URL like postgres://user@host/borgkeep');
    return checked(file.database, 'config file, database');
  }
  const recorded = join(dataDir, RECORDED_URL_FILE);
  if (existsSync(recorded)) return checked(readFileSync(recorded, 'utf8'), `the recorded database (${recorded})`);
  return undefined;
}

/** serve: keeps the URL in use where the forced command and the CLI find it. */
export function recordDatabaseUrl(dataDir: string, url: string): void {
  const file = join(dataDir, RECORDED_URL_FILE);
  if (existsSync(file) && readFileSync(file, 'utf8').trim() === url) return;
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, `${url}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}
