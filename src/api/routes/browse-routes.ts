// Browsing an archive over the API, read by the server from the repository's last committed
// transaction with the key borgkeep holds (src/browse/): one folder's direct children, and what
// changed between two archives. Operators and admins only for now: the issue lets a viewer see
// names only where an admin allows it per repository, and that switch does not exist yet.
// Read-only; never names the repository's folder on the server, never any key material.

import { z } from 'zod';
import type { ArchiveReader } from '../../browse/archive-reader.js';
import type { ApiContext } from '../api-server.js';
import { defineRoute } from '../route.js';
import { name } from '../schemas.js';

const archiveName = z.string().min(1).max(255);

const entrySchema = z.object({
  name: z.string().describe("the entry's name in the folder (bytes that are not UTF-8 shown as '?', as borg list shows them)"),
  path: z.string().describe('its whole path in the archive'),
  type: z.enum(['file', 'directory', 'symlink', 'hardlink', 'fifo', 'chardev', 'blockdev', 'socket', 'other']),
  mode: z.string().describe("ls -l's mode text, as borg list shows it"),
  user: z.string().nullable(),
  group: z.string().nullable(),
  uid: z.number().nullable(),
  gid: z.number().nullable(),
  size: z.number().describe("content size in bytes (a later hardlink: its first copy's)"),
  mtime: z.string().nullable().describe('ISO 8601, UTC, to the microsecond'),
  linkTarget: z.string().nullable().describe("a symlink's target, or a later hardlink's first copy"),
  rdev: z.number().nullable(),
  implied: z.boolean().describe('no item in the archive: a folder implied by the paths below it'),
});

const changeSchema = z.object({ type: z.string() }).catchall(z.union([z.string(), z.number(), z.null()]));

export function browseRoutes(ctx: ApiContext) {
  async function withArchives<T>(repoName: string, archives: string[], work: (opened: { readers: ArchiveReader[] }) => Promise<T>): Promise<T> {
    const [{ openForBrowse, browseFailure }, { openArchive }] = await Promise.all([import('../../browse/open-browse.js'), import('../../browse/archive-reader.js')]);
    const repository = await ctx.store.getRepository(repoName);
    const path = ctx.store.paths.repository(repository.dirName);
    const { objects, key } = await openForBrowse(repository, path, () => ctx.repositoryKey(repository, path));
    try {
      const readers: ArchiveReader[] = [];
      for (const a of archives) readers.push(await openArchive(objects, key, a));
      return await work({ readers });
    } catch (error) {
      throw browseFailure(error, repository.name);
    } finally {
      await objects.close();
    }
  }

  return [
    defineRoute({
      method: 'GET',
      url: '/repositories/:name/archives/:archive/entries',
      tag: 'repositories',
      summary: "one folder of an archive: its direct children with size, mode, owner, mtime and link target, read with the key borgkeep holds",
      access: 'operator',
      params: z.object({ name, archive: archiveName }).strict(),
      query: z.object({ path: z.string().max(4096).default('').describe("the folder ('' or '/': the archive's top)") }).strict(),
      response: z.object({ archive: z.string(), folder: z.string(), entries: z.array(entrySchema) }),
      async handler({ params, query }) {
        const { listFolder } = await import('../../browse/browse.js');
        return withArchives(params.name, [params.archive], async ({ readers }) => {
          const listing = await listFolder(readers[0]!, query.path);
          return { archive: params.archive, folder: listing.folder, entries: listing.entries };
        });
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/repositories/:name/archives/:archive/diff',
      tag: 'repositories',
      summary: 'what changed from this archive to another (added, removed, modified paths with sizes), as borg diff tells it',
      access: 'operator',
      params: z.object({ name, archive: archiveName }).strict(),
      query: z.object({ to: archiveName.describe('the newer archive') }).strict(),
      response: z.object({
        archive1: z.string(),
        archive2: z.string(),
        sameChunkerParams: z.boolean().describe('false: files are compared by chunk ids though the archives were cut differently, so some may show as modified though unchanged'),
        changes: z.array(z.object({ path: z.string(), changes: z.array(changeSchema) })),
      }),
      async handler({ params, query }) {
        const { diffArchives } = await import('../../browse/archive-diff.js');
        return withArchives(params.name, [params.archive, query.to], async ({ readers }) => {
          const [a, b] = readers as [ArchiveReader, ArchiveReader];
          return {
            archive1: params.archive,
            archive2: query.to,
            sameChunkerParams: JSON.stringify(a.info.chunkerParams) === JSON.stringify(b.info.chunkerParams),
            changes: await diffArchives(a, b),
          };
        });
      },
    }),
  ];
}
