// Lookups several stores share, each with the one sentence the CLI prints when nothing matches.
// They take the handle they are given, so they run inside the caller's transaction.

import type { Kysely, Selectable } from 'kysely';
import { notFound } from '../errors.js';
import type { Database, RepositoriesTable, SshKeysTable } from './schema.js';

/** KEY as the command line takes it: all digits is an id (key names cannot be all digits), else a name. */
export function isKeyId(ref: string): boolean {
  return /^[0-9]{1,15}$/.test(ref);
}

export async function selectKey(db: Kysely<Database>, ref: string): Promise<Selectable<SshKeysTable> | undefined> {
  const query = db.selectFrom('ssh_keys').selectAll();
  return isKeyId(ref) ? query.where('id', '=', Number(ref)).executeTakeFirst() : query.where('name', '=', ref).executeTakeFirst();
}

export const keyNotFound = (ref: string) => notFound(isKeyId(ref) ? `no key with id ${ref}` : `no key named '${ref}'`);
export const repositoryNotFound = (name: string) => notFound(`no repository named '${name}'`);

export async function requireKey(db: Kysely<Database>, ref: string): Promise<Selectable<SshKeysTable>> {
  const row = await selectKey(db, ref);
  if (!row) throw keyNotFound(ref);
  return row;
}

export async function selectRepository(
  db: Kysely<Database>,
  name: string,
): Promise<Selectable<RepositoriesTable> | undefined> {
  return db.selectFrom('repositories').selectAll().where('name', '=', name).executeTakeFirst();
}

export async function requireRepository(db: Kysely<Database>, name: string): Promise<Selectable<RepositoriesTable>> {
  const row = await selectRepository(db, name);
  if (!row) throw repositoryNotFound(name);
  return row;
}
