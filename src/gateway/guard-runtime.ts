// What every guarded session of one installation shares, whichever front-end it came through
// (sshd's forced command or the embedded gateway): the repositories directory, how the child
// `borg serve` is started, and the installed borg's version.

import { hostname } from 'node:os';

import { borgCommand, createBorgSpawner, serveHome as serveHomeOf } from '../guard/borg-child.js';
import { createBorgVersionCache } from '../guard/borg-version.js';
import type { GuardDeps } from '../guard/guard.js';
import { dataDirPaths } from '../store/data-dir.js';
import { keepCurrentKey, keyHistoryDir } from '../audit/key-history.js';
import type { HistoryStore } from '../store/history-store.js';
import type { GuardStore } from '../store/types.js';
import { createRepositoryKeySource } from '../vault/repository-key.js';
import { openVault, type Vault } from '../vault/vault.js';

export { borgCommand };

export function createGuardDeps(
  dataDir: string,
  store: GuardStore & Pick<HistoryStore, 'recordEvent'>,
  env: NodeJS.ProcessEnv,
  /** The vault, when the caller opened it (with a master passphrase); else the data directory's, opened here. */
  opts: { vault?: Vault } = {},
): GuardDeps {
  const paths = dataDirPaths(dataDir);
  const borg = borgCommand(env);
  const versions = createBorgVersionCache(paths.root, borg, env.PATH ?? '');
  const serveHome = serveHomeOf(paths.root);
  // Opened at the first session that needs a key (--verify-objects). Without the master passphrase
  // (only `serve` has it) a vault sealed with one throws, and the guard refuses what needs it.
  let keySource: ReturnType<typeof createRepositoryKeySource> | null = null;
  return {
    store,
    reposDir: paths.repos,
    spawnBorg: createBorgSpawner(borg, env, serveHome),
    borgVersion: () => versions.get(),
    onChildVersion: (v) => versions.correct(v),
    host: hostname(),
    pid: process.pid,
    // The keys borgkeep holds: a repository with one gets its archive rules judged at the
    // manifest put (guard/archive-rules.ts) and its compactions decided by the full audit
    // (compaction-check.ts); one without works as before.
    // Opened at the first session that asks: a session of a repository without archive rules never does.
    repositoryKey: (repository, repositoryPath) => (keySource ??= createRepositoryKeySource(opts.vault ?? openVault(paths.root)))(repository, repositoryPath),
    // borg erases the config save_key replaces: the key it held is kept in the data directory first.
    async beforeSaveKey({ repositoryPath, repository, sessionId, keyName }) {
      const kept = keepCurrentKey(repositoryPath, keyHistoryDir(paths.root, repository.dirName), new Date(), 'save_key');
      if (!kept) return null; // borg init's first key, or a keyfile repository: nothing is replaced
      return () =>
        store.recordEvent({
          repositoryId: repository.id,
          kind: 'key-change',
          throughTxn: kept.txn,
          verdict: null,
          actor: `session #${sessionId}, key ${keyName ?? '?'}`,
          detail: `the repository key was replaced by a client's save_key; the previous key (fingerprint ${kept.fingerprint}) is kept as number ${kept.n} (borgkeep repo key-history ${repository.name})`,
        });
    },
  };
}
