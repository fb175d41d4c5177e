// Rolling a repository back to a committed transaction T (fact sheet B.12), without destroying
// anything: the segments after T and the index/hints/integrity files move into a quarantine
// folder of the data directory, with a rollback.json that lets `undo` put them back. borg
// rebuilds index.T on the next open. While it works it holds borg's own exclusive lock, so no
// session can open the repository half-way; a failure moves back what was already moved.

import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';

import { BorgkeepError } from '../errors.js';
import { listSegments } from '../repository/segments.js';
import { readHistory } from './history.js';
import { keyInEffectAt, restoreKeptKey, type KeptKey } from './key-history.js';

const AUX = /^(index|hints|integrity)\.\d+$/;
const LOCK_DIR = 'lock.exclusive';

export interface RollbackResult {
  readonly toTxn: number;
  readonly fromTxn: number | null;
  readonly quarantine: string;
  /** Paths moved, relative to the repository. */
  readonly moved: string[];
  /** The kept key written back into config (the one in effect at the transaction), and the one it replaced. */
  readonly key: { restored: KeptKey; replaced: KeptKey | null } | null;
}

interface RollbackRecord {
  readonly repository: string;
  readonly toTxn: number;
  readonly at: string;
  readonly moved: string[];
  /** The kept key that was the repository's key before the rollback restored an older one. */
  readonly keyBefore?: number | null;
  undone?: string;
}

const refuse = (message: string) => new BorgkeepError('BK_ERR_INVALID_INPUT', message);

/** Takes borg's exclusive lock the way borg does (an atomic mkdir), or refuses. */
export async function withBorgLock<T>(repoPath: string, work: () => Promise<T>): Promise<T> {
  const lock = join(repoPath, LOCK_DIR);
  if (existsSync(join(repoPath, 'lock.roster'))) throw refuse('the repository is in use: a session holds its lock; try again when it has finished');
  try {
    mkdirSync(lock);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw refuse('the repository is locked by a running session (or a lock it left behind); try again when it has finished');
    throw error;
  }
  // A host id that is not this host's, so borg never takes the lock for a stale one of its own.
  writeFileSync(join(lock, `borgkeep-rollback@0.${process.pid}-0`), '');
  try {
    return await work();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** Moves `rel` from one root to the other, creating directories; returns rel. */
function move(fromRoot: string, toRoot: string, rel: string): string {
  mkdirSync(dirname(join(toRoot, rel)), { recursive: true });
  renameSync(join(fromRoot, rel), join(toRoot, rel));
  return rel;
}

function moveAll(fromRoot: string, toRoot: string, rels: readonly string[]): void {
  const done: string[] = [];
  try {
    for (const rel of rels) done.push(move(fromRoot, toRoot, rel));
  } catch (error) {
    for (const rel of done.reverse()) move(toRoot, fromRoot, rel);
    throw error;
  }
}

/**
 * The plan: what moves for a rollback to `toTxn`; refuses when T is not a committed transaction.
 * `compacted`: compaction removed T's segments (T lies before the last gap), and moved older
 * objects into later segments, so nothing may be moved: its kept manifest is written back instead
 * (manifest-restore.ts).
 */
export async function planRollback(repoPath: string, toTxn: number): Promise<{ fromTxn: number | null; moved: string[]; compacted: boolean }> {
  const history = await readHistory(repoPath);
  const ids = history.transactions.map((t) => t.id);
  if (history.compactedBefore !== null && toTxn < history.compactedBefore) return { fromTxn: ids.at(-1) ?? null, moved: [], compacted: true };
  if (!ids.includes(toTxn)) {
    const shown = ids.length > 12 ? `${ids.slice(0, 5).join(', ')}, ..., ${ids.slice(-5).join(', ')}` : ids.join(', ');
    throw refuse(`transaction ${toTxn} is not a committed transaction of this repository (committed since the last compaction: ${shown || 'none'})`);
  }
  const segments = listSegments(repoPath).filter((s) => s.segment > toTxn).map((s) => relative(repoPath, s.path));
  if (segments.length === 0) throw refuse(`transaction ${toTxn} is already the repository's last transaction: there is nothing to roll back`);
  const aux = readdirSync(repoPath).filter((n) => AUX.test(n));
  return { fromTxn: ids.at(-1) ?? null, moved: [...segments, ...aux], compacted: false };
}

/**
 * `keyHistory`: the repository's kept keys (key-history.ts); the key that was in effect at `toTxn`
 * is written back into config, the current one kept first, so that transaction's archives open
 * with the passphrase they were made with.
 */
export function rollbackRepository(repoPath: string, quarantineRoot: string, toTxn: number, now: Date, keyHistory?: string): Promise<RollbackResult> {
  return withBorgLock(repoPath, async () => {
    const plan = await planRollback(repoPath, toTxn);
    if (plan.compacted) throw refuse(`transaction ${toTxn} was compacted away: moving later segments would lose the objects compaction moved into them`);
    const stamp = now.toISOString().replace(/[:.]/g, '-');
    const quarantine = join(quarantineRoot, `${basename(repoPath)}-${stamp}-to-${toTxn}`);
    mkdirSync(quarantine, { recursive: true, mode: 0o700 });
    moveAll(repoPath, quarantine, plan.moved);
    let key: RollbackResult['key'] = null;
    try {
      const then = keyHistory ? keyInEffectAt(keyHistory, toTxn) : null;
      if (then && keyHistory) key = restoreKeptKey(repoPath, keyHistory, then.n, now, 'rollback', plan.fromTxn);
    } catch (error) {
      moveAll(quarantine, repoPath, plan.moved);
      throw error;
    }
    const record: RollbackRecord = { repository: basename(repoPath), toTxn, at: now.toISOString(), moved: plan.moved, keyBefore: key?.replaced?.n ?? null };
    writeFileSync(join(quarantine, 'rollback.json'), `${JSON.stringify(record, null, 2)}\n`);
    return { toTxn, fromTxn: plan.fromTxn, quarantine, moved: plan.moved, key };
  });
}

/** The newest rollback of this repository that was not undone, or null. */
export function lastRollback(repoPath: string, quarantineRoot: string): { dir: string; record: RollbackRecord } | null {
  if (!existsSync(quarantineRoot)) return null;
  const name = basename(repoPath);
  const found = readdirSync(quarantineRoot)
    .filter((d) => d.startsWith(`${name}-`) && existsSync(join(quarantineRoot, d, 'rollback.json')))
    .map((d) => ({ dir: join(quarantineRoot, d), record: JSON.parse(readFileSync(join(quarantineRoot, d, 'rollback.json'), 'utf8')) as RollbackRecord }))
    .filter((r) => r.record.repository === name && !r.record.undone)
    .sort((a, b) => a.record.at.localeCompare(b.record.at));
  return found.at(-1) ?? null;
}

/** Puts the last rollback's files (and the key it replaced) back; refuses when the repository was written to since. */
export function undoRollback(repoPath: string, quarantineRoot: string, now: Date, keyHistory?: string): Promise<RollbackResult> {
  return withBorgLock(repoPath, async () => {
    const last = lastRollback(repoPath, quarantineRoot);
    if (!last) throw refuse('there is no rollback of this repository to undo');
    const { dir, record } = last;
    const newer = listSegments(repoPath).filter((s) => s.segment > record.toTxn);
    if (newer.length > 0) {
      throw refuse(`the repository was written to after the rollback (segment ${newer[0].segment}); putting the old segments back would mix two histories`);
    }
    // The index files borg rebuilt since are regenerable; keep them beside the quarantine anyway.
    const rebuilt = readdirSync(repoPath).filter((n) => AUX.test(n));
    const aside = join(dir, 'after-rollback');
    moveAll(repoPath, aside, rebuilt);
    try {
      moveAll(dir, repoPath, record.moved);
    } catch (error) {
      moveAll(aside, repoPath, rebuilt);
      throw error;
    }
    if (rebuilt.length === 0 && existsSync(aside)) rmdirSync(aside);
    const key = keyHistory && record.keyBefore ? restoreKeptKey(repoPath, keyHistory, record.keyBefore, now, 'rollback') : null;
    writeFileSync(join(dir, 'rollback.json'), `${JSON.stringify({ ...record, undone: now.toISOString() }, null, 2)}\n`);
    return { toTxn: record.toTxn, fromTxn: null, quarantine: dir, moved: record.moved, key };
  });
}
