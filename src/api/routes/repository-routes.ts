// Repositories: create, list with status (whole, or what changed since a version the console
// holds: GET /repository-changes), show, change quota and expected backup interval, delete (the
// files move to the data directory's trash; the response never says where). Never walks a
// repository folder on a request that has a size to give (features/repository-size.ts).

import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { MAX_EXPECTED_INTERVAL_SECONDS, MIN_EXPECTED_INTERVAL_SECONDS, MIN_QUOTA_BYTES, type RepositoryStatus } from '../../store/repository-store.js';
import { moveToTrash } from '../../store/trash.js';
import type { ApiContext } from '../api-server.js';
import { SIZE_CACHE_MS } from '../features/repository-size.js';
import { backupState, grantJson, repositoryJson } from '../presenters.js';
import { JsonText, defineRoute } from '../route.js';
import { grantSchema, name, nameParams, repositorySchema } from '../schemas.js';
import { MAX_KEY_FILE_BYTES, MAX_PASSPHRASE_BYTES } from '../../vault/vault-service.js';

const tag = 'repositories';
const DAY_MS = 86_400_000;
const quota = z.number().int().min(MIN_QUOTA_BYTES).nullable().describe('storage quota in bytes (at least 10 MB, as borg needs); null: none');
const interval = z.number().int().min(MIN_EXPECTED_INTERVAL_SECONDS).max(MAX_EXPECTED_INTERVAL_SECONDS).describe('a backup is late after this many seconds (default 26 h)');

export function repositoryRoutes(ctx: ApiContext) {
  // A repository stays initialised once borg init has written its config: a positive answer is
  // trusted for a minute, so the dashboard does not stat every repository on each look.
  const initializedAt = new Map<string, number>();
  const isInitialized = (path: string, t: number) => {
    const seen = initializedAt.get(path);
    if (seen !== undefined && t - seen < SIZE_CACHE_MS) return true;
    const initialized = existsSync(join(path, 'config'));
    if (initialized) initializedAt.set(path, t);
    else initializedAt.delete(path);
    return initialized;
  };
  /** What the status does not hold: whether borg init made the repository, its size, whether the vault holds its key. */
  const onDisk = async (s: RepositoryStatus, now: Date, holds: (r: RepositoryStatus['repository']) => boolean = (r) => ctx.vault.holds(r)) => {
    const path = ctx.store.paths.repository(s.repository.dirName);
    const initialized = isInitialized(path, now.getTime());
    const keyHeld = holds(s.repository);
    // The size comes from the sizer's cache (walks run behind it, never on this request but the very first).
    return { now, initialized, sizeBytes: initialized ? await ctx.sizeOf(path, s.lastWriteAt) : null, keyHeld };
  };
  const present = async (s: RepositoryStatus, now = ctx.now()) => repositoryJson(s, await onDisk(s, now));
  // The dashboard asks for every repository often; the store keeps a repository's status object
  // while nothing it depends on changed, and its JSON is kept with it while its size, whether it
  // is initialised and whether its backup is late are the same too.
  const presented = new WeakMap<RepositoryStatus, { key: string; json: string }>();
  const presentedJson = async (s: RepositoryStatus, now: Date, holds: (r: RepositoryStatus['repository']) => boolean) => {
    const extra = await onDisk(s, now, holds);
    const key = `${extra.initialized}:${extra.sizeBytes}:${backupState(s, now)}:${extra.keyHeld}`;
    let hit = presented.get(s);
    if (hit?.key !== key) {
      hit = { key, json: JSON.stringify(repositoryJson(s, extra)) };
      presented.set(s, hit);
    }
    return hit.json;
  };
  // The dashboard's list, and what changed in it: each repository's JSON with the list version in
  // which it last changed, so a console holding the list as of version N fetches only what
  // changed since (GET /repository-changes?since=N) instead of every repository on each refresh.
  // A version is `EPOCH.N`: EPOCH is this process's, so a version from before a restart is not
  // taken for one of this process (the console then gets the whole list).
  const list = { epoch: randomBytes(4).toString('hex'), version: 0, namesVersion: 0, names: [] as string[], byName: new Map<string, { json: string; version: number }>(), parts: [] as string[], text: '{"repositories":[]}' };
  const currentList = async () => {
    const now = ctx.now();
    const all = await ctx.store.listRepositoryStatuses({ denialsSince: new Date(now.getTime() - DAY_MS) });
    const holds = ctx.vault.holdings();
    const parts = await Promise.all(all.map((s) => presentedJson(s, now, holds)));
    // Strings kept by presentedJson are the same objects while unchanged: comparing is cheap.
    if (parts.length === list.parts.length && parts.every((p, i) => p === list.parts[i])) return list;
    const names = all.map((s) => s.repository.name);
    const next = list.version + 1;
    let changed = false;
    for (let i = 0; i < names.length; i++) {
      const seen = list.byName.get(names[i]!);
      if (seen?.json !== parts[i]) {
        list.byName.set(names[i]!, { json: parts[i]!, version: next });
        changed = true;
      }
    }
    if (names.length !== list.names.length || names.some((n, i) => n !== list.names[i])) {
      const present = new Set(names);
      for (const n of list.byName.keys()) if (!present.has(n)) list.byName.delete(n);
      list.namesVersion = next;
      list.names = names;
      changed = true;
    }
    if (changed) list.version = next;
    list.parts = parts;
    list.text = `{"repositories":[${parts.join(',')}]}`;
    return list;
  };
  const versionText = () => `${list.epoch}.${list.version}`;
  const status = async (repositoryName: string) =>
    (await ctx.store.listRepositoryStatuses({ denialsSince: new Date(ctx.now().getTime() - DAY_MS), name: repositoryName }))[0]!;

  return [
    defineRoute({
      method: 'GET',
      url: '/repositories',
      tag,
      summary: 'list repositories with their state: last backup, size, quota, audit and gate, denials in the last 24 h',
      access: 'viewer',
      response: z.object({ repositories: z.array(repositorySchema) }),
      async handler() {
        return new JsonText((await currentList()).text);
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/repository-changes',
      tag,
      summary:
        "the dashboard's list incrementally: without `since`, every repository and the list's version; with the version of a list held, only the repositories changed since, and the names in order when a repository was added, removed or renamed",
      access: 'viewer',
      query: z
        .object({ since: z.string().max(64).optional().describe('the version of the list held (from an earlier answer); an unknown or old one gets the whole list') })
        .strict(),
      response: z.object({
        version: z.string().describe('the version of the list this answer brings the holder to'),
        full: z.boolean().describe('true: `repositories` is the whole list (no `since`, or one this server does not know); false: only those changed since'),
        names: z.array(z.string()).nullable().describe('every repository name in the dashboard order; null: the same as at `since`'),
        repositories: z.array(repositorySchema),
      }),
      async handler({ query }) {
        await currentList();
        const m = query.since === undefined ? null : /^([0-9a-f]{8})\.(\d{1,15})$/.exec(query.since);
        const since = m && m[1] === list.epoch && Number(m[2]) <= list.version ? Number(m[2]) : null;
        const head = `{"version":${JSON.stringify(versionText())},"full":${since === null}`;
        if (since === null) return new JsonText(`${head},"names":${JSON.stringify(list.names)},"repositories":[${list.parts.join(',')}]}`);
        const changed: string[] = [];
        for (const n of list.names) {
          const e = list.byName.get(n)!;
          if (e.version > since) changed.push(e.json);
        }
        return new JsonText(`${head},"names":${list.namesVersion > since ? JSON.stringify(list.names) : 'null'},"repositories":[${changed.join(',')}]}`);
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/repositories',
      tag,
      summary: 'register a repository; the first borg init through borgkeep creates it on disk',
      access: 'operator',
      status: 201,
      body: z.object({ name, quotaBytes: quota.optional(), expectedIntervalSeconds: interval.optional() }).strict(),
      response: z.object({ repository: repositorySchema }),
      async handler({ body }) {
        const created = await ctx.store.createRepository({
          name: body.name,
          quotaBytes: body.quotaBytes ?? null,
          ...(body.expectedIntervalSeconds !== undefined && { expectedIntervalSeconds: body.expectedIntervalSeconds }),
        });
        return { repository: await present(await status(created.name)) };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/repositories/:name',
      tag,
      summary: 'a repository with its state and grants',
      access: 'viewer',
      params: nameParams,
      response: z.object({ repository: repositorySchema, grants: z.array(grantSchema) }),
      async handler({ params }) {
        const s = await status(params.name);
        return { repository: await present(s), grants: (await ctx.store.listGrants({ repositoryId: s.repository.id })).map(grantJson) };
      },
    }),
    defineRoute({
      method: 'PATCH',
      url: '/repositories/:name',
      tag,
      summary: "change a repository's quota or expected backup interval",
      access: 'operator',
      params: nameParams,
      body: z.object({ quotaBytes: quota.optional(), expectedIntervalSeconds: interval.optional() }).strict(),
      response: z.object({ repository: repositorySchema }),
      async handler({ params, body }) {
        await ctx.store.updateRepository(params.name, body);
        return { repository: await present(await status(params.name)) };
      },
    }),
    defineRoute({
      method: 'PUT',
      url: '/repositories/:name/key',
      tag,
      summary:
        "hand borgkeep the repository's key: the passphrase (and the key file of a keyfile repository), checked against the repository (the key unlocks and opens the current manifest) and sealed in the vault; never echoed, logged or stored elsewhere",
      access: 'admin',
      params: nameParams,
      body: z
        .object({
          passphrase: z.string().min(1).max(MAX_PASSPHRASE_BYTES).describe("the repository's passphrase"),
          keyFile: z.string().max(MAX_KEY_FILE_BYTES).nullable().optional().describe('the text of the borg key file, for keyfile-encrypted repositories'),
        })
        .strict(),
      response: z.object({ repository: repositorySchema, mode: z.string().describe("the repository's encryption mode"), archives: z.number().describe('archives in the current manifest') }),
      async handler({ params, body }) {
        const repository = await ctx.store.getRepository(params.name);
        const r = await ctx.vault.handOver(repository, { passphrase: body.passphrase, keyFile: body.keyFile ?? null });
        return { repository: await present(await status(params.name)), mode: r.mode, archives: r.archives };
      },
    }),
    defineRoute({
      method: 'DELETE',
      url: '/repositories/:name/key',
      tag,
      summary: "take the repository's key back: its vault entry is overwritten and removed",
      access: 'admin',
      params: nameParams,
      response: z.object({ repository: repositorySchema, forgotten: z.boolean().describe('false when borgkeep did not hold the key') }),
      async handler({ params }) {
        const repository = await ctx.store.getRepository(params.name);
        const forgotten = ctx.vault.forget(repository);
        return { repository: await present(await status(params.name)), forgotten };
      },
    }),
    defineRoute({
      method: 'DELETE',
      url: '/repositories/:name',
      tag,
      summary: "remove a repository's registration and grants; its files move to the data directory's trash, never destroyed",
      access: 'operator',
      params: nameParams,
      response: z.object({ name: z.string(), grantsRemoved: z.number(), filesMovedToTrash: z.boolean() }),
      async handler({ params }) {
        const deletion = await ctx.store.deleteRepository(params.name, async (repository) => {
          const moved = moveToTrash(ctx.store.paths, repository, ctx.now());
          // A deleted repository's key is no use to anyone: no secret outlives its registration.
          ctx.vault.forget(repository);
          return moved;
        });
        return { name: deletion.repository.name, grantsRemoved: deletion.grantsRemoved, filesMovedToTrash: deletion.movedTo !== null };
      },
    }),
  ];
}
