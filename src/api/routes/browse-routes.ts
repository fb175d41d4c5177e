// Browsing an archive over the API, read by the server from the repository's last committed
// transaction with the key borgkeep holds (src/browse/): one folder's direct children, and what
// changed between two archives, and a download: a file's bytes (one Range of them, if asked) or a
// folder as a tar stream, each recorded in the ledger. Operators and admins; a console viewer may see
// an archive's metadata, its folders and the search (names and metadata, never content) where an
// admin allowed it for the repository (browse-access-routes.ts). Downloads and diffs stay with
// operators and admins.
// Read-only; never names the repository's folder on the server, never any key material.

import { z } from 'zod';
import type { ArchiveReader } from '../../browse/archive-reader.js';
import type { ObjectReader } from '../../browse/object-reader.js';
import type { ApiContext } from '../api-server.js';
import { requestDeduplicatedSizes } from '../features/deduplicated-sizes.js';
import { actorOf } from '../presenters.js';
import { invalidInput } from '../../errors.js';
import { JsonText, defineRoute } from '../route.js';
import { allowBrowse } from './browse-access-routes.js';
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
  async function withArchives<T>(repoName: string, archives: string[], work: (opened: { readers: ArchiveReader[]; objects: ObjectReader; path: string }) => Promise<T>): Promise<T> {
    const [{ openForBrowse, browseFailure }, { openArchive }] = await Promise.all([import('../../browse/open-browse.js'), import('../../browse/archive-reader.js')]);
    const repository = await ctx.store.getRepository(repoName);
    const path = ctx.store.paths.repository(repository.dirName);
    const { objects, key } = await openForBrowse(repository, path, () => ctx.repositoryKey(repository, path));
    try {
      const readers: ArchiveReader[] = [];
      for (const a of archives) readers.push(await openArchive(objects, key, a));
      return await work({ readers, objects, path });
    } catch (error) {
      throw browseFailure(error, repository.name);
    } finally {
      await objects.close();
    }
  }

  return [
    defineRoute({
      method: 'GET',
      url: '/repositories/:name/archives/:archive',
      tag: 'repositories',
      summary: "one archive's metadata as the server reads it: the client's times, host, user and command line, borg's totals, whether its authentication (TAM) verified; viewers only where an admin lets them browse the repository",
      access: 'viewer',
      params: z.object({ name, archive: archiveName }).strict(),
      response: z.object({
        archive: z.object({
          name: z.string(),
          id: z.string().describe('the archive metadata object id, hex'),
          time: z.string().nullable().describe("the client's start time, ISO 8601 UTC"),
          timeEnd: z.string().nullable(),
          hostname: z.string().nullable(),
          username: z.string().nullable(),
          commandLine: z.array(z.string()),
          comment: z.string().nullable(),
          size: z.number().nullable().describe('original bytes, as borg counted them'),
          compressedSize: z.number().nullable(),
          files: z.number().nullable(),
          deduplicatedSize: z
            .number()
            .nullable()
            .describe("as borg info's deduplicated_size: the stored bytes of the chunks no other archive references; null: still being computed (ask again)"),
          authentication: z.enum(['ok', 'missing', 'unchecked']),
        }),
      }),
      async handler({ params, principal }) {
        await allowBrowse(ctx, principal, params.name);
        const [{ summariseArchive }, { listManifestArchives }] = await Promise.all([import('../../browse/archive-summary.js'), import('../../browse/archive-reader.js')]);
        const repository = await ctx.store.getRepository(params.name);
        return withArchives(params.name, [params.archive], async ({ readers, objects, path }) => {
          const info = readers[0]!.info;
          const sizes = await requestDeduplicatedSizes(ctx, repository, listManifestArchives(objects).map((a) => a.id));
          return { archive: { ...summariseArchive(info, repository, path), deduplicatedSize: sizes?.get(info.id) ?? null } };
        });
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/repositories/:name/archives/:archive/entries',
      tag: 'repositories',
      summary: "one folder of an archive: its direct children with size, mode, owner, mtime and link target, read with the key borgkeep holds; viewers only where an admin lets them browse the repository",
      access: 'viewer',
      params: z.object({ name, archive: archiveName }).strict(),
      query: z.object({ path: z.string().max(4096).default('').describe("the folder ('' or '/': the archive's top)") }).strict(),
      response: z.object({ archive: z.string(), folder: z.string(), entries: z.array(entrySchema) }),
      async handler({ params, query, principal, request, reply }) {
        await allowBrowse(ctx, principal, params.name);
        // Through the archive's folder index (built at the first listing, src/browse/folder-index.ts):
        // the entries come as the JSON text the index keeps, not parsed and serialised again; to a
        // client that takes deflate (browsers, fetch) as the index stores them, not even inflated
        // (a folder of 50,000 entries is 12 MB of JSON, about 0.6 MB deflated).
        const { folderIndexesOf, deflatedAnswer } = await import('../../browse/folder-index.js');
        return withArchives(params.name, [params.archive], async ({ readers, objects, path }) => {
          const listing = await folderIndexesOf(ctx.store.paths.root).listingText({ repositoryPath: path, objects, archive: readers[0]! }, query.path);
          const prefix = `{"archive":${JSON.stringify(params.archive)},"folder":${JSON.stringify(listing.folder)},"entries":`;
          if (listing.deflated && acceptsDeflate(request.headers['accept-encoding'])) {
            const body = deflatedAnswer(prefix, listing.deflated, '}');
            reply.hijack();
            reply.raw.writeHead(200, {
              'content-type': 'application/json; charset=utf-8',
              'content-encoding': 'deflate',
              'content-length': body.length,
              vary: 'accept-encoding',
              'cache-control': 'no-store',
              'x-content-type-options': 'nosniff',
            });
            reply.raw.end(body);
            return undefined;
          }
          return new JsonText(`${prefix}${listing.entriesJson()}}`);
        });
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/repositories/:name/archives/:archive/search',
      tag: 'repositories',
      summary:
        "an archive's entries whose path matches a shell-style pattern ('*' within a path part, '**' across parts, '?', [set]; a pattern without '/' matches names in any folder), in the archive's order; viewers only where an admin lets them browse the repository",
      access: 'viewer',
      params: z.object({ name, archive: archiveName }).strict(),
      query: z
        .object({
          pattern: z.string().max(4096).describe("e.g. '*.conf', 'etc/passwd', 'home/*/.ssh/**'"),
          limit: z.coerce.number().int().min(1).max(10_000).default(1000).describe('the most entries given (1 to 10,000)'),
        })
        .strict(),
      response: z.object({ archive: z.string(), pattern: z.string(), entries: z.array(entrySchema), truncated: z.boolean().describe('more entries matched than were given') }),
      async handler({ params, query, principal }) {
        await allowBrowse(ctx, principal, params.name);
        const { searchArchive, pathMatcher } = await import('../../browse/browse.js');
        // A bad pattern is the asker's mistake, said before the repository is opened.
        try {
          pathMatcher(query.pattern);
        } catch (error) {
          throw invalidInput((error as Error).message);
        }
        return withArchives(params.name, [params.archive], async ({ readers }) => {
          const found = await searchArchive(readers[0]!, query.pattern, query.limit);
          return { archive: params.archive, pattern: found.pattern, entries: found.entries, truncated: found.truncated };
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
    defineRoute({
      method: 'GET',
      url: '/repositories/:name/archives/:archive/content',
      tag: 'repositories',
      summary: "download: a file's bytes (one HTTP Range of them when asked), or a folder, link or device (or '/': the whole archive) as a tar stream; each download is in the ledger",
      access: 'operator',
      contentType: 'application/octet-stream',
      params: z.object({ name, archive: archiveName }).strict(),
      query: z.object({ path: z.string().min(1).max(4096).describe("the path in the archive; '/' for all of it") }).strict(),
      async handler({ params, query, principal, request, reply }) {
        const [{ findFile, fileRange, writeAll, restorePath, normalisePath }, { recordRestore }] = await Promise.all([import('../../browse/browse.js'), import('../../browse/restore-ledger.js')]);
        const repository = await ctx.store.getRepository(params.name);
        return withArchives(params.name, [params.archive], async ({ readers, objects }) => {
          const archive = readers[0]!;
          const path = normalisePath(query.path);
          const file = await findFile(archive, path);
          const shown = `'/${path}' of archive '${params.archive}'`;
          const headers: Record<string, string | number> = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' };
          let status = 200;
          let range: [number, number] | null = null;
          if (file) {
            headers['accept-ranges'] = 'bytes';
            const asked = request.headers.range;
            if (asked !== undefined) {
              range = parseRange(asked, file.size);
              if (range === null) {
                reply.code(416).header('content-range', `bytes */${file.size}`).send({ code: 'BK_ERR_INVALID_INPUT', message: `the range '${asked.slice(0, 60)}' is not one this file of ${file.size} bytes has; ask for one range, e.g. bytes=0-1023` });
                return undefined;
              }
              status = 206;
              headers['content-range'] = `bytes ${range[0]}-${range[1]}/${file.size}`;
            }
            headers['content-type'] = 'application/octet-stream';
            headers['content-length'] = range ? range[1] - range[0] + 1 : file.size;
            headers['content-disposition'] = disposition(Buffer.from(file.name, 'latin1').toString('utf8'));
          } else {
            headers['content-type'] = 'application/x-tar';
            headers['content-disposition'] = disposition(`${params.archive}${path === '' ? '' : `-${path.split('/').pop()}`}.tar`);
          }
          const what = `${shown} as ${file ? (range ? `bytes ${range[0]}-${range[1]} of a file` : 'a file') : 'a tar stream'}`;
          const record = await recordRestore(ctx.store, repository, actorOf(principal!), what, { now: () => ctx.now(), clientAddress: request.ip });
          reply.hijack();
          const res = reply.raw;
          res.writeHead(status, headers);
          try {
            if (file) {
              const [start, end] = range ?? [0, file.size - 1];
              const bytes = file.size === 0 ? 0 : await writeAll(res, fileRange(objects, file.chunks, start, end));
              res.end();
              await record.done(bytes, 1);
            } else {
              const r = await restorePath(objects, archive, path, res);
              res.end();
              await record.done(r.bytes, r.items);
            }
          } catch (error) {
            // Past the first byte only the connection can say it failed: cut it short.
            res.destroy();
            await record.failed(error instanceof Error ? error.message : String(error), 0);
          }
          return undefined;
        });
      },
    }),
  ];
}

/** One range of `Range: bytes=A-B`, `bytes=A-` or `bytes=-N` within `size`; null when unsatisfiable or several. */
export function parseRange(header: string, size: number): [number, number] | null {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '') || size === 0) return null;
  let start: number;
  let end: number;
  if (m[1] === '') {
    start = Math.max(0, size - Number(m[2]));
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  return Number.isSafeInteger(start) && start <= end && start < size ? [start, end] : null;
}

/** Whether an Accept-Encoding header takes `deflate` (not refused with q=0). */
export function acceptsDeflate(header: string | string[] | undefined): boolean {
  const value = Array.isArray(header) ? header.join(',') : (header ?? '');
  return value.split(',').some((part) => {
    const [coding, ...params] = part.trim().toLowerCase().split(';');
    const q = params.map((p) => /^\s*q=([0-9.]+)\s*$/.exec(p)?.[1]).find((v) => v !== undefined);
    return coding!.trim() === 'deflate' && (q === undefined || Number(q) > 0);
  });
}

/** Content-Disposition with an ASCII fallback and the UTF-8 name (RFC 6266). */
function disposition(fileName: string): string {
  const ascii = fileName.replace(/[^\x20-\x7e]|["\\]/g, '_');
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(fileName)}`;
}
