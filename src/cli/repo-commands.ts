// `borgkeep repo create|set|list|show|delete`. A repository is registered here and created on disk
// by the first `borg init` through the guard; deleting one moves its directory to the trash,
// never destroys it.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import { invalidInput, notFound } from '../errors.js';
import type { DataDirPaths } from '../store/data-dir.js';
import type { GrantView } from '../store/grant-store.js';
import type { RepositorySummary } from '../store/repository-store.js';
import { findInTrash, moveBackFromTrash, moveToTrash } from '../store/trash.js';
import { openVault } from '../vault/vault.js';
import type { Repository } from '../store/types.js';
import { isLocalProcessAlive, withStore, type CliContext } from './cli-context.js';
import { archiveRules } from './grant-commands.js';
import { DURATION_UNITS, parseInterval, parseQuota } from './input.js';
import { registerKeyHistoryCommand } from './key-history-command.js';
import { registerRetentionCommand } from './retention-command.js';
import { registerChecksCommand } from './checks-command.js';
import { registerBrowsingCommand } from './browsing-command.js';
import { advertisedUrl, registerSetupCommand } from './setup-command.js';
import { registerVaultCommands } from './vault-commands.js';
import { RECOMMENDED_ENCRYPTION } from '../gateway/client-setup.js';
import { formatSize, formatTable, formatTime, plural } from './output.js';

export function registerRepoCommands(program: Command, ctx: CliContext): void {
  const repo = program.command('repo').description('create, change, list, show and delete repositories');
  registerKeyHistoryCommand(repo, ctx);
  registerRetentionCommand(repo, ctx);
  registerChecksCommand(repo, ctx);
  registerBrowsingCommand(repo, ctx);
  registerVaultCommands(repo, ctx);
  registerSetupCommand(repo, ctx);

  repo
    .command('create')
    .description('register a repository; the first borg init through borgkeep creates it on disk')
    .argument('<name>', "the name clients use: 1-64 of A-Z a-z 0-9 . _ -, not starting with '.' or '-'")
    .option('--quota <size>', 'storage quota, e.g. 500G (K, M, G, T, P are powers of 1000; at least 10M)')
    .option('--interval <duration>', 'a backup is late after this long, e.g. 26h (the default) or 7d')
    .option('--node <name>', 'the storage node to hold it (default: the node with the most free space, when there are nodes)')
    .action(async (name: string, opts: { quota?: string; interval?: string; node?: string }) => {
      const quotaBytes = opts.quota === undefined ? null : parseQuota(opts.quota);
      const expectedIntervalSeconds = opts.interval === undefined ? undefined : parseInterval(opts.interval);
      const { chooseNode } = await import('../store/placement.js');
      const { repository, node } = await withStore(ctx, async (store) => {
        const node = await chooseNode(store, opts.node ?? null, ctx.now());
        const repository = await store.createRepository({ name, quotaBytes, ...(expectedIntervalSeconds !== undefined && { expectedIntervalSeconds }) });
        if (node !== null) await store.placeRepository(repository.id, node);
        return { repository, node };
      });
      ctx.out.line(`created repository '${repository.name}' (${describeSettings(repository)})${node === null ? '' : ` on storage node '${node}'`}.`);
      ctx.out.line('Next:');
      ctx.out.line(`  1. let a key create it:  borgkeep grant KEY ${repository.name} --role full`);
      ctx.out.line(`                           (or: borgkeep key add KEY --file KEY.pub --repo ${repository.name} --role full)`);
      ctx.out.line(`  2. on that client:       borg init --encryption=${RECOMMENDED_ENCRYPTION} ${advertisedUrl(ctx.getDataDir(), repository.name)}`);
      ctx.out.line(`  3. for daily backups:    borgkeep grant KEY ${repository.name} --role append`);
      ctx.out.line(`  4. the client set-up:    borgkeep repo setup ${repository.name} --key KEY [--borgmatic 1.7]`);
    });

  repo
    .command('set')
    .description("change a repository's quota or expected backup interval")
    .argument('<name>', 'repository name')
    .option('--quota <size>', "storage quota, e.g. 500G (at least 10M), or 'none'")
    .option('--interval <duration>', 'a backup is late after this long, e.g. 26h or 7d')
    .action(async (name: string, opts: { quota?: string; interval?: string }) => {
      if (opts.quota === undefined && opts.interval === undefined) throw invalidInput('say what to change: --quota SIZE (or none) and/or --interval DURATION');
      const settings = {
        ...(opts.quota !== undefined && { quotaBytes: opts.quota.trim().toLowerCase() === 'none' ? null : parseQuota(opts.quota) }),
        ...(opts.interval !== undefined && { expectedIntervalSeconds: parseInterval(opts.interval) }),
      };
      const repository = await withStore(ctx, (store) => store.updateRepository(name, settings));
      ctx.out.line(`repository '${repository.name}': ${describeSettings(repository)}; sessions that start from now on use it.`);
    });

  repo
    .command('list')
    .description('list repositories: quota, whether initialized, grants, last session')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const { summaries, paths, nodes } = await withStore(ctx, async (store) => ({
        summaries: await store.listRepositories(),
        paths: store.paths,
        nodes: await store.repositoryNodes(),
      }));
      if (opts.json) {
        ctx.out.json({ repositories: summaries.map((s) => repositoryJson(s, paths, nodes.get(s.repository.id) ?? null)) });
        return;
      }
      if (summaries.length === 0) {
        ctx.out.line('no repositories yet; create one with: borgkeep repo create NAME');
        return;
      }
      ctx.out.line(
        formatTable(
          ['NAME', 'QUOTA', 'INITIALIZED', 'GRANTS', 'LAST SESSION'],
          summaries.map((s) => [
            s.repository.name,
            s.repository.quotaBytes === null ? '-' : formatSize(s.repository.quotaBytes),
            nodes.has(s.repository.id) ? `on node ${nodes.get(s.repository.id)}` : isInitialized(paths, s.repository) ? 'yes' : 'no',
            String(s.grantCount),
            formatTime(s.lastSessionAt, 'never'),
          ]),
        ),
      );
    });

  repo
    .command('move')
    .description("move a repository to another storage node: copied under borg's lock, verified (every file's SHA-256 and borg check), then switched; its ledger and history stay")
    .argument('<name>', 'repository name')
    .requiredOption('--to <node>', 'the storage node to move it to')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: { to: string; json?: boolean }) => {
      const { moveRepositoryToNode } = await import('./repo-move-command.js');
      const moved = await withStore(ctx, (store) => moveRepositoryToNode(ctx, store, name, opts.to));
      if (opts.json) return ctx.out.json(moved);
      ctx.out.line(
        `moved repository '${name}' from storage node '${moved.from}' to '${moved.to}': ${moved.files} files, ${formatSize(moved.bytes)}, verified (SHA-256 of every file, borg check --repository-only).`,
      );
      if (!moved.sourceCleared) ctx.out.line(`note: the old copy on '${moved.from}' could not be moved to its trash; it is no longer used (its node's log says why).`);
    });

  repo
    .command('show')
    .description("show a repository's details and grants")
    .argument('<name>', 'repository name')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: { json?: boolean }) => {
      const { summary, grants, paths, gate, node } = await withStore(ctx, async (store) => {
        const summary = await store.getRepositorySummary(name);
        const [grants, gate, placement] = await Promise.all([store.listGrants({ repositoryId: summary.repository.id }), store.compactionGate(summary.repository.id), store.repositoryPlacement(summary.repository.id)]);
        return { summary, grants, paths: store.paths, gate, node: placement?.node ?? null };
      });
      if (opts.json) {
        ctx.out.json({ ...repositoryJson(summary, paths, node), gate, grants: grants.map(grantJson) });
        return;
      }
      const r = summary.repository;
      const initialized = node !== null ? `on storage node '${node}'` : isInitialized(paths, r) ? 'initialized' : 'not initialized yet';
      ctx.out.line(
        formatTable(
          ['repository', r.name],
          [
            ['id', String(r.id)],
            ['directory', `${paths.repository(r.dirName)} (${initialized})`],
            ['quota', r.quotaBytes === null ? 'none' : `${formatSize(r.quotaBytes)} (${r.quotaBytes} bytes)`],
            ['backup expected every', formatInterval(r.expectedIntervalSeconds)],
            ['created', formatTime(r.createdAt)],
            ['last session', formatTime(summary.lastSessionAt, 'never')],
            ['compaction', `${gate.open ? 'goes through' : 'waits for review'}: ${gate.why}`],
            ['key', holdsKey(paths, r) ? 'borgkeep holds this repository\'s key' : `borgkeep does not hold this repository's key (hand it over: borgkeep repo key ${r.name} --passphrase-file FILE)`],
          ],
        ),
      );
      ctx.out.line();
      if (grants.length === 0) {
        ctx.out.line(`no grants; give a key access with: borgkeep grant KEY ${r.name} --role ROLE`);
        return;
      }
      ctx.out.line(
        formatTable(
          ['KEY', 'ROLE', 'BACKUPS/DAY', 'FROM', 'EXPIRES', 'ARCHIVE RULES'],
          grants.map((g) => [
            g.keyRevokedAt ? `${g.keyName} (revoked)` : g.keyName,
            g.grant.role,
            g.grant.writesPerDay === null ? '-' : String(g.grant.writesPerDay),
            g.grant.fromCidrs === null ? 'any' : g.grant.fromCidrs.join(','),
            formatTime(g.grant.expiresAt, 'never'),
            archiveRules(g.grant).join(' ') || '-',
          ]),
        ),
      );
    });

  repo
    .command('delete')
    .description("remove a repository's registration and grants; its directory moves to <data-dir>/trash")
    .argument('<name>', 'repository name')
    .option('--yes', 'do not ask for confirmation')
    .action(async (name: string, opts: { yes?: boolean }) => {
      let keyForgotten = false;
      const deletion = await withStore(ctx, async (store) => {
        await store.getRepository(name); // an unknown name is reported before any question
        if (!opts.yes) await confirm(ctx, name);
        await store.closeStaleSessions(isLocalProcessAlive);
        return store.deleteRepository(name, async (repository) => {
          const moved = moveToTrash(store.paths, repository, ctx.now());
          // A deleted repository's key is no use to anyone: no secret outlives its registration.
          keyForgotten = openVault(store.paths.root).forget(repository.dirName);
          return moved;
        });
      });
      const grants = plural(deletion.grantsRemoved, 'grant');
      ctx.out.line(`deleted repository '${name}' and its ${grants}.`);
      ctx.out.line(
        deletion.movedTo === null
          ? 'It had no files on disk (never initialized).'
          : `Its files were moved to ${deletion.movedTo}; remove that directory to free the space.`,
      );
      if (keyForgotten) ctx.out.line("borgkeep's copy of its key was removed from the vault.");
      if (deletion.movedTo !== null) ctx.out.line(`To bring it back: borgkeep repo restore ${name}`);
    });

  repo
    .command('restore')
    .description('register a deleted repository again from the trash, with its files, quota and interval (not its grants)')
    .argument('<name>', 'the name it had')
    .option('--as <new-name>', 'register it under another name (when the name is taken again)')
    .action(async (name: string, opts: { as?: string }) => {
      const restored = await withStore(ctx, async (store) => {
        const [entry] = findInTrash(store.paths, name);
        if (!entry) throw notFound(`the trash holds no repository that was named '${name}' (only repositories deleted with their files can come back)`);
        const as = opts.as ?? name;
        const repository = await store.createRepository({
          name: as,
          quotaBytes: entry.note.quotaBytes,
          expectedIntervalSeconds: entry.note.expectedIntervalSeconds,
          dirName: entry.note.dirName,
        });
        try {
          moveBackFromTrash(store.paths, entry, repository.dirName);
        } catch (error) {
          await store.deleteRepository(as); // the registration goes again: nothing half-restored
          throw error;
        }
        return { repository, deletedAt: entry.note.deletedAt };
      });
      ctx.out.line(`restored repository '${restored.repository.name}' (deleted ${restored.deletedAt}): ${describeSettings(restored.repository)}.`);
      ctx.out.line(`Its grants were not kept: give keys access again with borgkeep grant KEY ${restored.repository.name} --role ROLE.`);
    });
}

function isInitialized(paths: DataDirPaths, repository: Repository): boolean {
  return existsSync(join(paths.repository(repository.dirName), 'config'));
}

/** Whether the vault holds the repository's key: a look at the vault's directory, no secret needed. */
function holdsKey(paths: DataDirPaths, r: Repository): boolean {
  return openVault(paths.root).has(r.dirName);
}

/** A repository as JSON; one on a storage node (`node`) has no path here, and whether it is initialised is known there. */
function repositoryJson(summary: RepositorySummary, paths: DataDirPaths, node: string | null = null) {
  const r = summary.repository;
  return {
    id: r.id,
    name: r.name,
    dirName: r.dirName,
    node,
    path: node === null ? paths.repository(r.dirName) : null,
    quotaBytes: r.quotaBytes,
    expectedIntervalSeconds: r.expectedIntervalSeconds,
    initialized: node === null ? isInitialized(paths, r) : null,
    keyHeld: holdsKey(paths, r),
    grantCount: summary.grantCount,
    lastSessionAt: summary.lastSessionAt,
    createdAt: r.createdAt,
  };
}

export function grantJson(view: GrantView) {
  const g = view.grant;
  return {
    keyId: g.keyId,
    keyName: view.keyName,
    keyFingerprint: view.keyFingerprint,
    keyRevoked: view.keyRevokedAt !== null,
    repositoryName: view.repositoryName,
    role: g.role,
    writesPerDay: g.writesPerDay,
    fromCidrs: g.fromCidrs,
    expiresAt: g.expiresAt,
    createdAt: g.createdAt,
    minAgeSeconds: g.minAgeSeconds,
    keepLast: g.keepLast,
    prefix: g.prefix,
    maxRemovalsPerDay: g.maxRemovalsPerDay,
    verifyObjects: g.verifyObjects,
  };
}

async function confirm(ctx: CliContext, name: string): Promise<void> {
  if (!ctx.stdin.isTTY) {
    throw invalidInput(`refusing to delete repository '${name}' without confirmation; pass --yes`);
  }
  const rl = createInterface({ input: ctx.stdin, output: ctx.prompt });
  try {
    const answer = await rl.question(
      `Delete repository '${name}'? Its grants go; its files move to the trash. Type its name to confirm: `,
    );
    if (answer.trim() !== name) throw invalidInput(`repository '${name}' was not deleted: the name typed did not match`);
  } finally {
    rl.close();
  }
}

/** In the largest unit that divides it, as parseInterval reads it: 93600 -> "26h", 604800 -> "7d". */
function formatInterval(seconds: number): string {
  const [unit, size] = Object.entries(DURATION_UNITS).find(([, size]) => seconds % size === 0)!;
  return `${seconds / size}${unit}`;
}

function describeSettings(r: Repository): string {
  const quota = r.quotaBytes === null ? 'no quota' : `quota ${formatSize(r.quotaBytes)}`;
  return `${quota}, a backup expected every ${formatInterval(r.expectedIntervalSeconds)}`;
}
