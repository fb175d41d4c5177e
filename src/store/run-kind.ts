// What kind of run a ledger session was, in the admin's words (backup, prune, compact,
// list/extract, check, key change, init, the server's retention run), judged from what it did:
// its transactions, its refusals and the borg methods borg serve carried out for it. One pure
// function, so the store (which keeps the answer in sessions.run_kind for filtering), the API,
// the CLI and the console can never disagree. It must never read I/O or the clock.

import type { Denial, SessionKind, Transaction } from './types.js';

export const RUN_KINDS = ['backup', 'prune', 'compact', 'list-extract', 'check', 'key-change', 'init', 'rollback', 'retention', 'pull', 'other'] as const;
export type RunKind = (typeof RUN_KINDS)[number];

/** The words for each kind, for the CLI and the console. */
export const RUN_KIND_WORDS: Readonly<Record<RunKind, string>> = {
  backup: 'backup',
  prune: 'prune',
  compact: 'compact',
  'list-extract': 'list/extract',
  check: 'check',
  'key-change': 'key change',
  init: 'init',
  rollback: 'rollback',
  retention: "server's retention run",
  pull: 'pull backup',
  other: 'other',
};

/**
 * What the guard notes besides borg's own method names (guard.ts, sessions.methods): an open that
 * creates the repository, and a commit that asked for compaction (borg compact; also when the
 * gate deferred it, since the kind is what the client ran).
 */
export const METHOD_OPEN_CREATE = 'open:create';
export const METHOD_COMMIT_COMPACT = 'commit:compact';
/** `borgkeep rollback` writing back a kept manifest (cli/history-commands.ts). */
export const METHOD_ROLLBACK = 'rollback:manifest';

export interface RunFacts {
  readonly sessionKind: SessionKind;
  /** Methods borg serve answered for the session; null when not recorded (before migration 0017, or a process that died). */
  readonly methods: readonly string[] | null;
  readonly transactions: ReadonlyArray<Pick<Transaction, 'objectsPut' | 'objectsDeleted' | 'objectsOverwritten' | 'manifestWritten'>>;
  readonly denials: ReadonlyArray<Pick<Denial, 'method' | 'reason'>>;
}

/**
 * The kind of run. Refused calls count as what the client tried (an append key's prune that was
 * refused is a prune). Order matters: init writes a key and a manifest; check --repair commits;
 * a borg 1.1 backup's commit compacts; prune's commit writes the manifest without new objects.
 */
export function classifyRun(f: RunFacts): RunKind {
  if (f.sessionKind === 'retention') return 'retention';
  // The server's own session behind a pull job's proxy (src/pull/pull-proxy.ts).
  if (f.sessionKind === 'pull') return 'pull';
  const done = new Set(f.methods ?? []);
  if (done.has(METHOD_ROLLBACK)) return 'rollback';
  const refused = (method: string, reason?: string) => f.denials.some((d) => d.method === method && (reason === undefined || d.reason === reason));
  const tried = (method: string) => done.has(method) || refused(method);

  if (done.has(METHOD_OPEN_CREATE) || refused('open', 'BK_DENY_CREATE')) return 'init';
  if (tried('check')) return 'check';
  if (tried('save_key')) return 'key-change';

  const sum = (pick: (t: RunFacts['transactions'][number]) => number) => f.transactions.reduce((n, t) => n + pick(t), 0);
  // A refused put is a backup attempt, except a manifest put refused by the archive rules: that is
  // an archive removal (a prune) the role or rule did not allow.
  const archiveRuleRefusal = f.denials.some((d) => d.reason === 'BK_DENY_ARCHIVE_RULE');
  if (sum((t) => t.objectsPut) > 0 || (refused('put') && !archiveRuleRefusal) || refused('put', 'BK_DENY_WRITE_LIMIT')) return 'backup';
  if (sum((t) => t.objectsDeleted) > 0 || refused('delete') || archiveRuleRefusal) return 'prune';
  // borg 1.2's compact writes the manifest again (nothing else) before its compacting commit.
  if (done.has(METHOD_COMMIT_COMPACT) || refused('commit', 'BK_DENY_COMPACT') || refused('commit', 'BK_DENY_GATE')) return 'compact';
  if (f.transactions.some((t) => t.manifestWritten)) return 'prune';
  if (done.has('destroy') || refused('destroy')) return 'other';
  // Reads: borg list, extract, info, diff, mount (get, get_many, list, scan, load_key...).
  if (['get', 'get_many', 'list', 'scan', 'load_key', 'get_free_nonce'].some((m) => done.has(m))) return 'list-extract';
  return 'other';
}
