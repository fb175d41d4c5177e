// The manifest versions that compaction would remove, kept by borgkeep in the data directory
// before a compaction it lets through: each committed transaction on disk at that moment, with
// what it did to the objects (the audit's structural facts) and its manifest's envelope, as borg
// wrote it. The audit reads them as the history before the oldest segment on disk, so an archive
// list that a client rewrote can still be shown after borg compacted; `rollback --to` puts one
// back (manifest-restore.ts).
//
// Layout under <data-dir>/kept/<repository dir>/: `transactions.jsonl`, one line per kept
// transaction (the last line of an id wins), and `manifest-<id>-<sha256/16>.bin` per manifest.
// Written only while the writer holds borg's lock on the repository (the guard during the
// compacting commit, a rollback), so one writer at a time; a manifest file is complete before its
// line is written. Never inside the repository: a client cannot reach or change it.

import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import type { RepositoryHistory, TxnHistory } from './history.js';

export interface KeptTransaction extends Omit<TxnHistory, 'manifest'> {
  /** The file of its manifest envelope (in the same directory), or null when it wrote none. */
  readonly manifestFile: string | null;
  /** Whether it was the first transaction of the repository (nothing compacted before it). */
  readonly first: boolean;
  /** When borgkeep kept it, and the transaction of the compaction that would remove it. */
  readonly keptAt: string;
  readonly beforeCompactionOf: number | null;
}

export interface KeptHistory {
  /** Kept transactions, oldest first, one per id. */
  readonly transactions: KeptTransaction[];
  readManifest(t: KeptTransaction): Buffer;
}

const LIST = 'transactions.jsonl';

/** Where the kept history of a repository lives: <data-dir>/kept/<repository dir>. */
export const keptDir = (dataDir: string, repository: { readonly dirName: string }) => join(dataDir, 'kept', repository.dirName);

/** The kept history of a repository (empty when nothing was kept). */
export function readKeptHistory(dir: string): KeptHistory {
  const byId = new Map<number, KeptTransaction>();
  let text = '';
  try {
    text = readFileSync(join(dir, LIST), 'utf8');
  } catch {
    // nothing kept yet
  }
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const t = JSON.parse(line) as KeptTransaction;
      if (Number.isSafeInteger(t.id)) byId.set(t.id, t);
    } catch {
      // a line cut short by a crash: the transaction is kept again at the next compaction
    }
  }
  return {
    transactions: [...byId.values()].sort((a, b) => a.id - b.id),
    readManifest(t) {
      if (!t.manifestFile || !/^manifest-\d+-[0-9a-f]{16}\.bin$/.test(t.manifestFile)) throw new Error(`transaction ${t.id} kept no manifest`);
      return readFileSync(join(dir, t.manifestFile));
    },
  };
}

/**
 * Keeps every committed transaction of `history` that is not kept yet with the same manifest;
 * returns how many it kept. Called before a compaction goes on; throws when it cannot write, and
 * then the compaction must not happen.
 */
export async function keepHistory(dir: string, history: RepositoryHistory, compactionTxn: number | null, now: Date): Promise<number> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const kept = readKeptHistory(dir);
  const known = new Map(kept.transactions.map((t) => [t.id, t]));
  const lines: string[] = [];
  for (const [i, t] of history.transactions.entries()) {
    let manifestFile: string | null = null;
    if (t.manifest) {
      const data = await history.readManifest(t);
      manifestFile = `manifest-${t.id}-${createHash('sha256').update(data).digest('hex').slice(0, 16)}.bin`;
      const path = join(dir, manifestFile);
      if (!existsSync(path)) {
        writeFileSync(`${path}.tmp`, data, { mode: 0o600 });
        renameSync(`${path}.tmp`, path);
      }
    }
    const seen = known.get(t.id);
    if (seen && seen.manifestFile === manifestFile) continue;
    // Before the last gap a transaction is what an earlier compaction left of it (its COMMIT
    // segment, not its manifest): what was kept of it then is the whole of it.
    if (seen && history.compactedBefore !== null && t.id < history.compactedBefore) continue;
    const { manifest: _entry, ...facts } = t;
    const entry: KeptTransaction = {
      ...facts,
      manifestFile,
      first: i === 0 && history.compactedBefore === null,
      keptAt: now.toISOString(),
      beforeCompactionOf: compactionTxn,
    };
    lines.push(JSON.stringify(entry));
  }
  if (lines.length > 0) appendFileSync(join(dir, LIST), `${lines.join('\n')}\n`, { mode: 0o600 });
  return lines.length;
}
