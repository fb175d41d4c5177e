// `borgkeep repo browsing NAME [--viewers on|off] [--json]`: whether console viewers may browse the
// repository's archives (names and metadata of folders and files, and the search; never downloads
// or restores, which stay with operators and admins). Off until an admin turns it on. Without
// --viewers it shows the switch.

import type { Command } from 'commander';

import { invalidInput } from '../errors.js';
import { withStore, type CliContext } from './cli-context.js';
import { formatTime } from './output.js';

export function registerBrowsingCommand(repo: Command, ctx: CliContext): void {
  repo
    .command('browsing')
    .description("show or set whether console viewers may browse the repository's archives (names and metadata, never downloads)")
    .argument('<name>', 'repository name')
    .option('--viewers <on|off>', 'on: viewers may list the folders of its archives and search them; off: operators and admins only')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: { viewers?: string; json?: boolean }) => {
      const wanted = opts.viewers === undefined ? undefined : opts.viewers.trim().toLowerCase();
      if (wanted !== undefined && wanted !== 'on' && wanted !== 'off') throw invalidInput(`--viewers must be on or off, not '${opts.viewers}'`);
      await withStore(ctx, async (store) => {
        const repository = await store.getRepository(name);
        const a = wanted === undefined ? await store.getBrowseAccess(repository.id) : await store.setBrowseAccess(repository.id, wanted === 'on', 'cli');
        if (opts.json) {
          ctx.out.json({ repository: repository.name, viewersMayBrowse: a.viewersMayBrowse, updatedAt: a.updatedAt?.toISOString() ?? null, updatedBy: a.updatedBy });
          return;
        }
        ctx.out.line(
          a.viewersMayBrowse
            ? `console viewers may browse the archives of '${repository.name}' (names and metadata; downloads stay with operators and admins).`
            : `only operators and admins may browse the archives of '${repository.name}'.`,
        );
        if (a.updatedBy) ctx.out.line(`  set by ${a.updatedBy} at ${formatTime(a.updatedAt)}`);
      });
    });
}
