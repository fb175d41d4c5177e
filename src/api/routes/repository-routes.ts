// Repositories: create, list with status, show, change quota and expected backup interval,
// delete (the files move to the data directory's trash; the response never says where).

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
  /** What the status does not hold: whether borg init made the repository, and its size. */
  const onDisk = async (s: RepositoryStatus, now: Date) => {
    const path = ctx.store.paths.repository(s.repository.dirName);
    const initialized = isInitialized(path, now.getTime());
    return { now, initialized, sizeBytes: initialized ? await ctx.sizeOf(path, s.lastWriteAt) : null, keyHeld: ctx.vault.holds(s.repository) };
  };
  const present = async (s: RepositoryStatus, now = ctx.now()) => repositoryJson(s, await onDisk(s, now));
  // The dashboard asks for every repository often; the store keeps a repository's status object
  // while nothing it depends on changed, and its JSON is kept with it while its size, whether it
  // is initialised and whether its backup is late are the same too.
  const presented = new WeakMap<RepositoryStatus, { key: string; json: string }>();
  const presentedJson = async (s: RepositoryStatus, now: Date) => {
    const extra = await onDisk(s, now);
    const key = `${extra.initialized}:${extra.sizeBytes}:${backupState(s, now)}:${extra.keyHeld}`;
    let hit = presented.get(s);
    if (hit?.key !== key) {
      hit = { key, json: JSON.stringify(repositoryJson(s, extra)) };
      presented.set(s, hit);
    }
    return hit.json;
  };
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
        const now = ctx.now();
        const all = await ctx.store.listRepositoryStatuses({ denialsSince: new Date(now.getTime() - DAY_MS) });
        const parts = await Promise.all(all.map((s) => presentedJson(s, now)));
        return new JsonText(`{"repositories":[${parts.join(',')}]}`);
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
        const deletion = await ctx.store.deleteRepository(params.name, async (repository) => moveToTrash(ctx.store.paths, repository, ctx.now()));
        return { name: deletion.repository.name, grantsRemoved: deletion.grantsRemoved, filesMovedToTrash: deletion.movedTo !== null };
      },
    }),
  ];
}
