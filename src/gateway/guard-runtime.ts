// What every guarded session of one installation shares, whichever front-end it came through
// (sshd's forced command or the embedded gateway): the repositories directory, how the child
// `borg serve` is started, and the installed borg's version.

import { mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

import { createBorgSpawner } from '../guard/borg-child.js';
import { createBorgVersionCache } from '../guard/borg-version.js';
import type { GuardDeps } from '../guard/guard.js';
import { dataDirPaths } from '../store/data-dir.js';
import { keepCurrentKey, keyHistoryDir } from '../audit/key-history.js';
import type { HistoryStore } from '../store/history-store.js';
import type { GuardStore } from '../store/types.js';
import { createRepositoryKeySource } from '../vault/repository-key.js';
import { openVault, type Vault } from '../vault/vault.js';

/** The borg on PATH, unless BORGKEEP_BORG names another (tests and odd installs). */
export function borgCommand(env: NodeJS.ProcessEnv): string {
  return env.BORGKEEP_BORG || 'borg';
}

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
  // borg serve's home and working directory: nothing of the client's, nothing of ours.
  const serveHome = join(paths.root, 'serve-home');
  mkdirSync(serveHome, { recursive: true, mode: 0o700 });
  return {
    store,
    reposDir: paths.repos,
    spawnBorg: createBorgSpawner(borg, env, serveHome),
    borgVersion: () => versions.get(),
    onChildVersion: (v) => versions.correct(v),
    host: hostname(),
    pid: process.pid,
    // The keys borgkeep holds: a repository with one gets its archive rules judged at the
    // manifest put (guard/archive-rules.ts); one without works as before.
    repositoryKey: createRepositoryKeySource(opts.vault ?? openVault(paths.root)),
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
