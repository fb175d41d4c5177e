// `borgkeep repo key-history NAME [--json] [--restore N]`: the repository keys borgkeep kept
// before a client's save_key, a rollback or a restore replaced them (src/audit/key-history.ts).
// It shows fingerprints, times and transactions, never a key blob; --restore writes one back
// into the repository's config under borg's lock and records a 'key-restore' event.

import { existsSync } from 'node:fs';
import type { Command } from 'commander';

import { BorgkeepError } from '../errors.js';
import { withStore, type CliContext } from './cli-context.js';
import { actorName } from './history-commands.js';
import { formatTable } from './output.js';

export function registerKeyHistoryCommand(repo: Command, ctx: CliContext): void {
  repo
    .command('key-history')
    .description('list the repository keys borgkeep kept before they were replaced (fingerprints, never the keys), or put one back')
    .argument('<name>', 'repository name')
    .option('--json', 'print JSON')
    .option('--restore <n>', 'write kept key N back into the repository; the current key is kept first')
    .action(async (name: string, opts: { json?: boolean; restore?: string }) => {
      const restore = opts.restore === undefined ? null : Number(opts.restore);
      if (restore !== null && (!/^\d+$/.test(opts.restore ?? '') || !Number.isSafeInteger(restore) || restore < 1)) {
        throw new BorgkeepError('BK_ERR_INVALID_INPUT', `--restore '${opts.restore}' is not the number of a kept key (borgkeep repo key-history ${name} lists them)`);
      }
      const kh = await import('../audit/key-history.js');
      await withStore(ctx, async (store) => {
        const repository = await store.getRepository(name);
        const dir = kh.keyHistoryDir(store.paths.root, repository.dirName);
        const path = store.paths.repository(repository.dirName);
        const kept = kh.listKeptKeys(dir);
        if (restore === null) {
          if (opts.json) {
            ctx.out.json({ repository: repository.name, keys: kept });
            return;
          }
          if (kept.length === 0) {
            ctx.out.line(`no key of repository '${repository.name}' has been replaced through borgkeep, so none is kept.`);
            return;
          }
          const current = existsSync(path) ? kh.currentRepositoryKey(path) : null;
          ctx.out.line(
            formatTable(
              ['n', 'kept at', 'in effect through transaction', 'fingerprint', 'replaced by'],
              kept.map((k) => [String(k.n), k.at, k.txn === null ? '-' : String(k.txn), k.fingerprint, k.keptFor === 'save_key' ? "a client's save_key" : k.keptFor]),
            ),
          );
          ctx.out.line(`current key: ${current === null ? 'none in the repository (keyfile or unencrypted)' : `fingerprint ${kh.keyFingerprint(current)}`}`);
          return;
        }
        if (!kept.some((k) => k.n === restore)) {
          throw new BorgkeepError('BK_ERR_INVALID_INPUT', `repository '${repository.name}' has no kept key ${restore} (borgkeep repo key-history ${repository.name} lists them)`);
        }
        if (!existsSync(path)) throw new BorgkeepError('BK_ERR_INVALID_INPUT', `repository '${repository.name}' is not initialised: there is no config to put a key into`);
        const { withBorgLock } = await import('../audit/rollback.js');
        const result = await withBorgLock(path, async () => kh.restoreKeptKey(path, dir, restore, ctx.now(), 'restore'));
        if (!result) {
          ctx.out.line(`kept key ${restore} already is the key of repository '${repository.name}'; nothing was changed.`);
          return;
        }
        await store.recordEvent({
          repositoryId: repository.id,
          kind: 'key-restore',
          throughTxn: result.restored.txn,
          verdict: null,
          actor: actorName(),
          detail: `put back kept key ${result.restored.n} (fingerprint ${result.restored.fingerprint})${result.replaced ? `; the key it replaced is kept as number ${result.replaced.n}` : ''}`,
        });
        if (opts.json) {
          ctx.out.json({ repository: repository.name, restored: result.restored, replaced: result.replaced });
          return;
        }
        ctx.out.line(`put kept key ${restore} (fingerprint ${result.restored.fingerprint}) back into repository '${repository.name}'.`);
        if (result.replaced) ctx.out.line(`the key it replaced is kept as number ${result.replaced.n} (borgkeep repo key-history ${repository.name} --restore ${result.replaced.n} undoes this).`);
        ctx.out.line('Clients use the passphrase that went with the restored key from now on.');
      });
    });
}
