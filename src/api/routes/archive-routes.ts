// A repository's archive list as the server reads it with the key borgkeep holds (see
// features/archive-list.ts): per archive its name, id, the client's time, the server's first
// sighting, the session that added it, its deduplicated size (src/browse/dedup-sizes.ts: kept
// figures, or null while they are computed off the request), and the verdict of its archive checks
// (src/checks). Without a held key it says so in one sentence.

import { z } from 'zod';
import type { ApiContext } from '../api-server.js';
import { listArchives } from '../features/archive-list.js';
import { requestDeduplicatedSizes } from '../features/deduplicated-sizes.js';
import { defineRoute } from '../route.js';
import { archiveCheckKey, shownArchiveCheck } from '../../checks/check-rules.js';
import { archiveCheckSchema } from './archive-check-routes.js';
import { nameParams } from '../schemas.js';

const archiveSchema = z.object({
  name: z.string(),
  id: z.string().describe('the archive metadata object id, hex'),
  time: z.string().describe("the archive's time as the client wrote it (UTC, no zone)"),
  firstSeenAt: z.string().nullable().describe('when the server first saw a commit list the archive; null: not seen yet'),
  firstSeenBaseline: z.boolean().describe('first seen in the first manifest read after a compaction: it appeared then or earlier'),
  retimed: z.boolean().describe("the client's time and the first sighting differ by more than a day"),
  addedBy: z
    .object({ sessionId: z.number(), keyName: z.string().nullable(), role: z.string().nullable() })
    .nullable()
    .describe('the session whose committed transaction first listed the archive; null when the ledger cannot tell'),
  deduplicatedSize: z
    .number()
    .nullable()
    .describe("as borg info's deduplicated_size: the stored bytes of the chunks no other archive references; null: still being computed for the current archives (ask again)"),
  check: archiveCheckSchema.describe("the server's archive checks (src/checks): passed, failed with each failed rule, or skipped; null: not checked yet"),
});

export function archiveRoutes(ctx: ApiContext) {
  return [
    defineRoute({
      method: 'GET',
      url: '/repositories/:name/archives',
      tag: 'repositories',
      summary: "the archive list of the repository's committed manifest, read with the key borgkeep holds, with the server's first sighting and the session that added each archive",
      access: 'viewer',
      params: nameParams,
      response: z.object({
        keyHeld: z.boolean().describe("whether borgkeep holds the repository's key"),
        reason: z.string().nullable().describe('why there is no list, in one sentence; null when there is one'),
        archives: z.array(archiveSchema).nullable(),
      }),
      async handler({ params }) {
        const repository = await ctx.store.getRepository(params.name);
        const listing = await listArchives({ repositoryKey: ctx.repositoryKey, repositoryPath: (d) => ctx.store.paths.repository(d), store: ctx.store }, repository);
        if (!listing.archives) return listing;
        const checks = new Map((await ctx.store.listArchiveChecks(repository.id)).map((c) => [archiveCheckKey(c.archiveId, c.archiveName), c]));
        const sizes = await requestDeduplicatedSizes(ctx, repository, listing.archives.map((a) => a.id));
        return {
          ...listing,
          archives: listing.archives.map((a) => ({ ...a, deduplicatedSize: sizes?.get(a.id) ?? null, check: shownArchiveCheck(checks.get(archiveCheckKey(a.id, a.name))) })),
        };
      },
    }),
  ];
}
