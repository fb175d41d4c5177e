// `borgkeep archives REPO`, `ls REPO ARCHIVE [PATH]`, `restore REPO ARCHIVE PATH [--to FILE|-]`
// and `diff REPO ARCHIVE1 ARCHIVE2`: a repository's archives read by the server itself, with the
// key borgkeep holds in its vault (none needed for an unencrypted repository), straight from the
// repository's files at its last committed transaction (src/browse/), so they work while a
// backup runs and never take borg's lock. Never writes into the repository; never prints a server
// path, a passphrase or key material. Each restore is a ledger session (who, what, how many bytes).

import { closeSync, existsSync, openSync, renameSync, unlinkSync } from 'node:fs';
import { createWriteStream } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Writable } from 'node:stream';
import type { Command } from 'commander';

import type { BorgKey } from '../repository/borg-key.js';
import type { ObjectReader } from '../browse/object-reader.js';
import type { Store } from '../store/database.js';
import type { Repository } from '../store/types.js';
import { invalidInput } from '../errors.js';
import { withStore, type CliContext } from './cli-context.js';
import { formatSize, formatTable, formatTime, plural } from './output.js';

interface VaultOption {
  vaultPassphraseFile?: string;
}

interface Opened {
  readonly store: Store;
  readonly repository: Repository;
  readonly objects: ObjectReader;
  readonly key: BorgKey | null;
}

/**
 * Opens the named repository for reading with the key the vault holds, runs `work`, closes it.
 * Every failure becomes one sentence naming the repository, never its path on the server.
 */
async function withRepository<T>(ctx: CliContext, name: string, opts: VaultOption, work: (o: Opened) => Promise<T>): Promise<T> {
  const { masterPassphrase } = await import('./vault-commands.js');
  const master = masterPassphrase(opts.vaultPassphraseFile, process.env);
  return withStore(ctx, async (store) => {
    const repository = await store.getRepository(name);
    const [{ openVault }, { createRepositoryKeySource }, { openForBrowse, browseFailure }] = await Promise.all([
      import('../vault/vault.js'),
      import('../vault/repository-key.js'),
      import('../browse/open-browse.js'),
    ]);
    const path = store.paths.repository(repository.dirName);
    const { objects, key } = await openForBrowse(repository, path, () => createRepositoryKeySource(openVault(store.paths.root, master === undefined ? {} : { masterPassphrase: master }))(repository, path));
    try {
      return await work({ store, repository, objects, key });
    } catch (error) {
      throw browseFailure(error, repository.name);
    } finally {
      await objects.close();
    }
  });
}

export function registerBrowseCommands(program: Command, ctx: CliContext): void {
  const vaultOption = ['--vault-passphrase-file <file>', "the vault's master passphrase, when the vault is sealed with one"] as const;

  program
    .command('archives')
    .description("a repository's archives as the server reads them (needs the key in borgkeep's vault)")
    .argument('<repo>', 'repository name')
    .option('--json', 'print JSON')
    .option(...vaultOption)
    .action(async (repoName: string, opts: { json?: boolean } & VaultOption) => {
      const [{ listManifestArchives, openArchive, BrowseError }, { summariseArchive }, { archiveCheckKey, shownArchiveCheck }, { deduplicatedSizesOf }] = await Promise.all([
        import('../browse/archive-reader.js'),
        import('../browse/archive-summary.js'),
        import('../checks/check-rules.js'),
        import('../browse/dedup-sizes.js'),
      ]);
      await withRepository(ctx, repoName, opts, async ({ store, repository, objects, key }) => {
        const path = store.paths.repository(repository.dirName);
        const sightings = await store.listArchiveSightings(repository.id);
        const checks = new Map((await store.listArchiveChecks(repository.id)).map((c) => [archiveCheckKey(c.archiveId, c.archiveName), c]));
        const firstSeen = new Map(sightings.map((s) => [`${s.archiveId}\n${s.name}`, s]));
        // Kept per set of archives under the data directory; computed here when not kept yet (it
        // reads every archive's item stream). A damaged item stream leaves the figures unknown,
        // not the list unshown.
        let deduplicated: ReadonlyMap<string, number> = new Map();
        let notDeduplicated: string | null = null;
        try {
          deduplicated = await deduplicatedSizesOf(store.paths.root).sizes(path, objects, key);
        } catch (error) {
          if (!(error instanceof BrowseError)) throw error;
          notDeduplicated = error.message;
        }
        const rows = [];
        // In time order, as borg list shows them.
        const entries = listManifestArchives(objects).sort((x, y) => (x.time < y.time ? -1 : x.time > y.time ? 1 : 0));
        for (const entry of entries) {
          const { info } = await openArchive(objects, key, entry.name);
          const seen = firstSeen.get(`${entry.id}\n${entry.name}`);
          rows.push({
            ...summariseArchive(info, repository, path),
            firstSeenAt: seen ? seen.firstSeenAt.toISOString() : null,
            // As borg info's deduplicated_size: stored bytes of the chunks no other archive references.
            deduplicatedSize: deduplicated.get(entry.id) ?? null,
            // The server's archive checks (src/checks); null: not checked yet.
            check: shownArchiveCheck(checks.get(archiveCheckKey(entry.id, entry.name))),
          });
        }
        if (opts.json) {
          ctx.out.json({ repository: repository.name, transaction: objects.transactionId, archives: rows });
          return;
        }
        if (rows.length === 0) {
          ctx.out.line(`repository '${repository.name}' has no archives.`);
          return;
        }
        ctx.out.line(
          formatTable(
            ['NAME', 'TIME', 'FIRST SEEN', 'SIZE', 'DEDUPLICATED', 'FILES', 'HOST', 'CHECKS', 'COMMAND'],
            rows.map((r) => [r.name, r.time ?? '-', r.firstSeenAt ? formatTime(new Date(r.firstSeenAt)) : '-', r.size === null ? '-' : formatSize(r.size), r.deduplicatedSize === null ? '-' : formatSize(r.deduplicatedSize), r.files === null ? '-' : String(r.files), r.hostname ?? '-', r.check?.verdict ?? 'not checked', r.commandLine.join(' ')]),
          ),
        );
        // Each failed rule in its own sentence, below the table.
        for (const r of rows) for (const f of r.check?.findings ?? []) ctx.out.line(`failed: ${f.sentence}`);
        if (notDeduplicated) ctx.out.line(`deduplicated sizes not computed: ${notDeduplicated}`);
      });
    });

  program
    .command('ls')
    .description("one folder of an archive (its direct children), read by the server with the key in its vault")
    .argument('<repo>', 'repository name')
    .argument('<archive>', 'archive name')
    .argument('[path]', 'folder inside the archive (default: its top)', '')
    .option('--json', 'print JSON')
    .option(...vaultOption)
    .action(async (repoName: string, archiveName: string, path: string, opts: { json?: boolean } & VaultOption) => {
      const [{ openArchive }, { folderIndexesOf }] = await Promise.all([import('../browse/archive-reader.js'), import('../browse/folder-index.js')]);
      await withRepository(ctx, repoName, opts, async ({ store, repository, objects, key }) => {
        const archive = await openArchive(objects, key, archiveName);
        // Through the archive's folder index, as the API lists (built here when it has none).
        const listing = await folderIndexesOf(store.paths.root).listing({ repositoryPath: store.paths.repository(repository.dirName), objects, archive }, path);
        if (opts.json) {
          ctx.out.json({ archive: archiveName, folder: listing.folder, entries: listing.entries });
          return;
        }
        if (listing.entries.length === 0) {
          ctx.out.line(`'${listing.folder}' in archive '${archiveName}' is an empty folder.`);
          return;
        }
        ctx.out.line(
          formatTable(
            ['MODE', 'USER', 'GROUP', 'SIZE', 'MODIFIED', 'NAME'],
            listing.entries.map((e) => [
              e.mode,
              e.user ?? (e.uid === null ? '-' : String(e.uid)),
              e.group ?? (e.gid === null ? '-' : String(e.gid)),
              e.type === 'directory' ? '-' : formatSize(e.size),
              e.mtime ? `${e.mtime.slice(0, 19)}Z` : '-',
              `${e.name}${e.type === 'directory' ? '/' : ''}${e.type === 'symlink' ? ` -> ${e.linkTarget}` : e.type === 'hardlink' ? ` => ${e.linkTarget}` : ''}`,
            ]),
          ),
        );
      });
    });

  program
    .command('restore')
    .description("one file's bytes, or a folder (or anything not a file) as a tar stream, read by the server with the key in its vault; recorded in the ledger")
    .argument('<repo>', 'repository name')
    .argument('<archive>', 'archive name')
    .argument('<path>', "path inside the archive ('/' for the whole archive)")
    .option('--to <file>', "where to write: a new file, or '-' for standard output", '-')
    .option('--as <name>', 'who restores, for the ledger (default: the login name)')
    .option(...vaultOption)
    .action(async (repoName: string, archiveName: string, path: string, opts: { to: string; as?: string } & VaultOption) => {
      const toStdout = opts.to === '-';
      if (toStdout && process.stdout.isTTY) throw invalidInput("standard output is a terminal: give --to FILE, or pipe the output (e.g. '| tar x')");
      if (!toStdout && existsSync(opts.to)) throw invalidInput(`${opts.to} exists already: restore writes only a new file`);
      const [{ openArchive }, { restorePath, restoreKind, normalisePath }, { actorName }, { recordRestore }] = await Promise.all([
        import('../browse/archive-reader.js'),
        import('../browse/browse.js'),
        import('./history-commands.js'),
        import('../browse/restore-ledger.js'),
      ]);
      const actor = actorName(opts.as);
      await withRepository(ctx, repoName, opts, async ({ store, repository, objects, key }) => {
        const archive = await openArchive(objects, key, archiveName);
        const kind = await restoreKind(archive, path);
        const shown = `/${normalisePath(path)}`;
        // A partial file beside the target, renamed into place when complete: never a half file.
        const partial = toStdout ? null : join(dirname(opts.to), `.${basename(opts.to)}.borgkeep-partial-${process.pid}`);
        let out: Writable;
        if (partial) {
          try {
            closeSync(openSync(partial, 'wx'));
          } catch (error) {
            throw invalidInput(`cannot write ${opts.to}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'its folder does not exist' : ((error as NodeJS.ErrnoException).code ?? 'error')}`);
          }
          out = createWriteStream(partial);
        } else out = process.stdout;
        const what = `'${shown}' of archive '${archiveName}' as ${kind === 'file' ? 'a file' : 'a tar stream'}`;
        const record = await recordRestore(store, repository, actor, what, { now: () => ctx.now() });
        // Without a listener a closed pipe's error would end the process before the ledger hears of it.
        const onStdoutError = () => {};
        if (toStdout) process.stdout.on('error', onStdoutError);
        try {
          const r = await restorePath(objects, archive, path, out);
          if (partial) {
            await new Promise<void>((resolve, reject) => {
              out.once('error', reject);
              out.end(() => resolve());
            });
            renameSync(partial, opts.to);
          }
          await record.done(r.bytes, r.items);
          if (!toStdout) process.stderr.write(`restored ${what} to ${opts.to} (${formatSize(r.bytes)}).\n`);
        } catch (error) {
          if (partial) {
            out.destroy();
            try {
              unlinkSync(partial);
            } catch {
              // already gone
            }
          }
          // A reader that stopped early (`| head`): its pipe closed, not the repository's fault.
          if ((error as NodeJS.ErrnoException | null)?.code === 'EPIPE') {
            await record.failed('the receiving end of standard output closed before the end', 0);
            throw invalidInput('standard output was closed before the restore was complete');
          }
          await record.failed(error instanceof Error ? error.message : String(error), 0);
          throw error;
        }
      });
    });

  program
    .command('diff')
    .description('what changed between two archives (added, removed, modified paths), as borg diff tells it')
    .argument('<repo>', 'repository name')
    .argument('<archive1>', 'the older archive')
    .argument('<archive2>', 'the newer archive')
    .option('--json', 'print JSON')
    .option(...vaultOption)
    .action(async (repoName: string, one: string, two: string, opts: { json?: boolean } & VaultOption) => {
      const [{ openArchive }, { diffArchives, diffLine }] = await Promise.all([import('../browse/archive-reader.js'), import('../browse/archive-diff.js')]);
      await withRepository(ctx, repoName, opts, async ({ objects, key }) => {
        const a = await openArchive(objects, key, one);
        const b = await openArchive(objects, key, two);
        const sameChunker = JSON.stringify(a.info.chunkerParams) === JSON.stringify(b.info.chunkerParams);
        const entries = await diffArchives(a, b);
        if (opts.json) {
          ctx.out.json({ archive1: one, archive2: two, sameChunkerParams: sameChunker, changes: entries });
          return;
        }
        if (!sameChunker) process.stderr.write('borgkeep: the archives were cut with different chunker params: files are compared by their chunks, so some may show as modified though unchanged.\n');
        if (entries.length === 0) {
          ctx.out.line(`archives '${one}' and '${two}' hold the same files.`);
          return;
        }
        for (const e of entries) ctx.out.line(diffLine(e, formatSize));
      });
    });
}
