// borg's `hints.N` (fact sheet B.7): per segment, its live objects and the bytes compaction would
// free, and `storage_quota_use`, borg's own count of the bytes its live objects take. Read for the
// daily statistics; never written.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { MsgMap, decode, scanFrame, type MsgValue } from '../rpc/msgpack.js';

export interface HintsSummary {
  /** Live objects over all segments. */
  readonly objects: number;
  /** What `borg compact` would free. */
  readonly reclaimableBytes: number;
  /** borg's storage_quota_use: bytes of the live PUT entries. */
  readonly storageUsedBytes: number | null;
}

/** Generous: a hints file lists every segment, and its shadow index can be long. */
const HINTS_LIMITS = { maxArrayLen: 1_000_000, maxMapLen: 100_000_000, maxStrLen: 64, maxFrameSize: 2 ** 31 - 1, maxDepth: 8 };

const sumValues = (v: MsgValue | undefined): number =>
  v instanceof MsgMap ? v.entries.reduce((n, [, x]) => n + (typeof x === 'number' ? x : typeof x === 'bigint' ? Number(x) : 0), 0) : 0;

/** The summary of `hints.N`; throws with one sentence when the file is missing or not borg's. */
export function readHints(repoPath: string, transactionId: number): HintsSummary {
  const name = `hints.${transactionId}`;
  const buf = readFileSync(join(repoPath, name));
  const scan = scanFrame(buf, 0, HINTS_LIMITS);
  if (scan.kind !== 'complete') throw new Error(`${name} is not a borg hints file`);
  const m = decode(buf, 0, scan.end);
  if (!(m instanceof MsgMap) || m.get('version') !== 2) throw new Error(`${name} is not a borg 1.2 hints file (version 2)`);
  const used = m.get('storage_quota_use');
  return {
    objects: sumValues(m.get('segments')),
    reclaimableBytes: sumValues(m.get('compact')),
    storageUsedBytes: typeof used === 'number' ? used : typeof used === 'bigint' ? Number(used) : null,
  };
}
