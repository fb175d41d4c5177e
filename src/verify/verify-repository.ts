// Verification of a repository's objects on disk (issue 18 point 4): every object the committed
// index still points at, in the segments written after the last verified transaction (or all of
// them), is read once, its CRC checked, decrypted, its MAC checked, decompressed and its id
// recomputed (archive/verify-object.ts, the same check the guard makes of every put). An index
// entry with no such object where it points is a missing object.
//
// It reads the committed state only, without borg's lock: the committed index `index.N` is opened
// once and kept open (a commit that replaces it meanwhile unlinks a file this run still reads),
// and segments above N, which an unfinished backup may be writing, are never read. Superseded and
// deleted puts are not damage: only the entry the index names counts.
//
// Segments are read sequentially through one buffer, never whole (a segment can be 500 MB), so
// memory stays at a few MiB plus the largest object. It must never write into the repository, and
// never puts the key or a server path into a finding or an error.

import { readFileSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

import { createObjectVerifier } from '../archive/verify-object.js';
import { crc32 } from '../native/objcheck.js';
import { objectMode, type BorgKey, type KeyMode } from '../repository/borg-key.js';
import { EMPTY, HEADER_SIZE, IndexFormatError, KEY_SIZE, latestIndexTransaction, openCommittedIndex, type CommittedIndex } from '../repository/hash-index.js';
import { MANIFEST_ID } from '../repository/manifest.js';
import { RepoFormatError, parseRepoConfig } from '../repository/repo-config.js';
import { MAX_ENTRY_SIZE, SEGMENT_MAGIC, TAG_COMMIT, TAG_DELETE, TAG_PUT, listSegments, type SegmentFile } from '../repository/segments.js';

/** Why a repository could not be verified (exit 2): one sentence, no path, no key. */
export class VerifyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VerifyError';
  }
}

export type FindingKind = 'crc' | 'mac' | 'id-mismatch' | 'unreadable' | 'missing';

export interface VerifyFinding {
  readonly kind: FindingKind;
  /** The object's id (64 hex digits); null for damage that is not one object's (a segment's tail). */
  readonly id: string | null;
  readonly segment: number;
  readonly offset: number | null;
  /** One sentence for people. */
  readonly sentence: string;
}

/** How far verification got: the last committed transaction whose segments were read. */
export interface VerifyProgress {
  readonly throughTxn: number;
  /** The identity of that transaction's segment file (inode, size, mtime): a number borg reused is another file. */
  readonly stamp: string | null;
}

export interface VerifyInput {
  readonly repoPath: string;
  /** The unlocked key; null when borgkeep holds none (fine for an unencrypted repository). */
  readonly key: BorgKey | null;
  /** Where the last run stopped; null or `all` reads every segment. */
  readonly since: VerifyProgress | null;
  readonly all: boolean;
}

export interface VerifyOutcome {
  readonly mode: KeyMode;
  readonly scope: 'changed' | 'all';
  /** Transactions after this one were read (null: from the start). */
  readonly fromTxn: number | null;
  readonly through: VerifyProgress;
  /** Why an incremental run read everything (the repository was rolled back or compacted), else null. */
  readonly restartedBecause: string | null;
  readonly segmentsRead: number;
  /** Objects the index points at that were verified. */
  readonly objectsRead: number;
  /** Bytes of segment files read. */
  readonly bytesRead: number;
  readonly findings: VerifyFinding[];
  /**
   * Ids (hex) whose DELETE is in a segment read and that the index no longer holds: what this
   * stretch of history removed. Not damage by itself (prune deletes chunks no archive needs);
   * the caller asks whether any archive still uses one.
   */
  readonly deletedIds: Set<string>;
  /** Ids (hex) of the objects verified, for an incremental run (null for a full one: every object). */
  readonly verifiedIds: Set<string> | null;
}

const ENTRY_HEADER = 9;
const ID_HEADER = 41;
/** Read size: large sequential reads; one object up to MAX_ENTRY_SIZE still fits when the buffer grows. */
const READ_SIZE = 8 * 1024 * 1024;
const DELETED = 0xfffffffe;
const BUCKET = KEY_SIZE + 8;

const short = (id: Buffer | string): string => (typeof id === 'string' ? id : id.toString('hex')).slice(0, 16);

function stampOf(file: Pick<SegmentFile, 'ino' | 'size' | 'mtimeMs'>): string {
  return `${file.ino}:${file.size}:${Math.round(file.mtimeMs)}`;
}

/**
 * Opens the newest committed index twice: for lookups, and as a file handle for the one
 * sequential read of all its entries at the end. Both are opened now, so a commit that replaces
 * the file during the run (a backup writing meanwhile) takes neither away.
 */
async function openNewestIndex(repoPath: string): Promise<{ index: CommittedIndex; file: FileHandle }> {
  for (let attempt = 0; ; attempt++) {
    const txn = latestIndexTransaction(repoPath);
    if (txn === null) throw new VerifyError('the repository has no committed transaction yet (no index), so there is nothing to verify');
    let index: CommittedIndex;
    try {
      index = openCommittedIndex(repoPath, txn);
    } catch (error) {
      if (error instanceof IndexFormatError) throw new VerifyError(`its index cannot be read (${error.message}); run borg check`);
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' && attempt < 5) continue;
      throw error;
    }
    try {
      return { index, file: await open(join(repoPath, `index.${txn}`), 'r') };
    } catch (error) {
      index.close();
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' && attempt < 5) continue;
      throw error;
    }
  }
}

/**
 * Every (id, segment, offset) of the committed index whose segment is above `afterTxn`, from one
 * sequential read of the file opened with the index (the same snapshot).
 */
async function* indexEntries(fh: FileHandle, afterTxn: number): AsyncGenerator<{ id: Buffer; segment: number; offset: number }> {
  const size = (await fh.stat()).size;
  const chunk = Buffer.alloc(BUCKET * 16384);
  for (let at = HEADER_SIZE; at < size; ) {
    const { bytesRead } = await fh.read(chunk, 0, Math.min(chunk.length, size - at), at);
    if (bytesRead <= 0) break;
    const whole = bytesRead - (bytesRead % BUCKET);
    for (let b = 0; b < whole; b += BUCKET) {
      const segment = chunk.readUInt32LE(b + KEY_SIZE);
      if (segment === EMPTY || segment === DELETED || segment <= afterTxn) continue;
      yield { id: Buffer.from(chunk.subarray(b, b + KEY_SIZE)), segment, offset: chunk.readUInt32LE(b + KEY_SIZE + 4) };
    }
    at += whole;
  }
}

export async function verifyRepository(input: VerifyInput): Promise<VerifyOutcome> {
  const { repoPath } = input;
  try {
    parseRepoConfig(readFileSync(join(repoPath, 'config'), 'utf8'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new VerifyError('the repository is not initialised yet (no borg init has run)');
    if (error instanceof RepoFormatError) throw new VerifyError(`its config cannot be read (${error.message})`);
    throw error;
  }
  const { index, file: indexFile } = await openNewestIndex(repoPath);
  try {
    const txn = index.transactionId;
    const segments = new Map(listSegments(repoPath).filter((s) => s.segment <= txn).map((s) => [s.segment, s]));

    // The mode from the current manifest, which must verify too: a key that does not open it is
    // the wrong key (or the manifest is damaged), and every object would then look damaged.
    const at = index.lookup(MANIFEST_ID);
    if (!at) throw new VerifyError('its index has no manifest; run borg check');
    const manifestFile = segments.get(at.segment);
    const manifestEntry = manifestFile ? await readEntryAt(manifestFile, at.offset) : null;
    if (!manifestEntry || !manifestEntry.crcOk) throw new VerifyError(`its manifest (segment ${at.segment}) cannot be read; run borg check`);
    const mode = objectMode(manifestEntry.data);
    if (mode === null) throw new VerifyError("its manifest has an encryption type borg 1.2 does not write");
    if (mode !== 'none' && input.key === null) {
      throw new VerifyError(`the repository is encrypted (${mode}) and borgkeep holds no key for it: hand it over with 'borgkeep repo key'`);
    }
    let verifier;
    try {
      verifier = await createObjectVerifier(mode, mode === 'none' ? null : input.key);
    } catch {
      throw new VerifyError(`the key borgkeep holds is not one of a ${mode} repository`);
    }
    if ((await verifier.verify(MANIFEST_ID, manifestEntry.data)) !== null) {
      throw new VerifyError("the key borgkeep holds does not open the repository's current manifest (a replaced key, or a damaged manifest: run borg check)");
    }

    // Where to start: after the last verified transaction, if that is still the repository's past.
    let fromTxn: number | null = null;
    let restartedBecause: string | null = null;
    if (!input.all && input.since) {
      const was = segments.get(input.since.throughTxn);
      if (input.since.throughTxn > txn) restartedBecause = `the repository was rolled back to transaction ${txn}, before the last verified ${input.since.throughTxn}`;
      else if (!was) restartedBecause = `the segment of the last verified transaction ${input.since.throughTxn} is gone (compacted or rolled back)`;
      else if (input.since.stamp !== null && stampOf(was) !== input.since.stamp) restartedBecause = `transaction ${input.since.throughTxn} was written again since it was verified`;
      else fromTxn = input.since.throughTxn;
    }

    const findings: VerifyFinding[] = [];
    // What the walk found where the index points, per segment: offsets of verified objects.
    const seen = new Map<number, Set<number>>();
    let objectsRead = 0;
    let bytesRead = 0;
    let segmentsRead = 0;
    const deletedIds = new Set<string>();
    const verifiedIds = fromTxn === null ? null : new Set<string>();
    const onDelete = (id: Buffer) => {
      if (!index.lookup(id) && !id.equals(MANIFEST_ID)) deletedIds.add(id.toString('hex'));
    };
    const wanted = (id: Buffer, segment: number, offset: number): boolean => {
      const hit = index.lookup(id);
      return hit !== undefined && hit.segment === segment && hit.offset === offset;
    };

    for (const file of segments.values()) {
      if (fromTxn !== null && file.segment <= fromTxn) continue;
      segmentsRead++;
      const offsets = new Set<number>();
      seen.set(file.segment, offsets);
      let walked;
      try {
        walked = await walkSegment(file, wanted, async (id, offset, data, crcOk) => {
          objectsRead++;
          offsets.add(offset);
          const refusal = await verifier.verify(id, data);
          const hex = id.toString('hex');
          verifiedIds?.add(hex);
          const crc = crcOk ? '' : 'its bytes on disk changed (CRC mismatch) and ';
          if (refusal === null) {
            if (!crcOk) findings.push({ kind: 'crc', id: hex, segment: file.segment, offset, sentence: `object ${short(id)}… in segment ${file.segment} at offset ${offset}: its entry fails its CRC check, though its content still verifies.` });
            return;
          }
          const kind: FindingKind = refusal.kind === 'id' ? 'id-mismatch' : /MAC/.test(refusal.why) ? 'mac' : 'unreadable';
          const what =
            kind === 'id-mismatch'
              ? 'its content does not match its id (another object stored under this id)'
              : kind === 'mac'
                ? 'its MAC does not verify with the repository key'
                : refusal.why.replace(/^object [0-9a-f]+…: /, '');
          findings.push({ kind, id: hex, segment: file.segment, offset, sentence: `object ${short(id)}… in segment ${file.segment} at offset ${offset}: ${crc}${what}.` });
        }, onDelete);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
          throw new VerifyError(`segment ${file.segment} went away while it was read (a compaction ran meanwhile); verify again`);
        }
        throw error;
      }
      bytesRead += walked.bytesRead;
      if (walked.problem) {
        findings.push({ kind: 'unreadable', id: null, segment: file.segment, offset: walked.problem.offset, sentence: `segment ${file.segment} at offset ${walked.problem.offset}: ${walked.problem.text}; what follows in it cannot be read.` });
      }
    }

    // Every object the index places in a segment read must have been found there.
    for await (const e of indexEntries(indexFile, fromTxn ?? -1)) {
      if (seen.get(e.segment)?.has(e.offset)) continue;
      const where = segments.has(e.segment) ? `segment ${e.segment} at offset ${e.offset}, where there is no such object` : `segment ${e.segment}, which is missing`;
      findings.push({ kind: 'missing', id: e.id.toString('hex'), segment: e.segment, offset: e.offset, sentence: `object ${short(e.id)}… is missing: the index places it in ${where}.` });
    }

    const last = segments.get(txn);
    return {
      mode,
      scope: fromTxn === null ? 'all' : 'changed',
      fromTxn,
      through: { throughTxn: txn, stamp: last ? stampOf(last) : null },
      restartedBecause,
      segmentsRead,
      objectsRead,
      bytesRead,
      findings,
      deletedIds,
      verifiedIds,
    };
  } finally {
    index.close();
    await indexFile.close();
  }
}

/** One PUT entry at a known offset (the manifest), with its CRC checked; null when there is none. */
async function readEntryAt(file: SegmentFile, offset: number): Promise<{ data: Buffer; crcOk: boolean } | null> {
  const fh = await open(file.path, 'r');
  try {
    const header = Buffer.alloc(ID_HEADER);
    if ((await fh.read(header, 0, ID_HEADER, offset)).bytesRead !== ID_HEADER || header[8] !== TAG_PUT) return null;
    const size = header.readUInt32LE(4);
    if (size < ID_HEADER || size > MAX_ENTRY_SIZE || offset + size > file.size) return null;
    const whole = Buffer.alloc(size);
    if ((await fh.read(whole, 0, size, offset)).bytesRead !== size) return null;
    return { data: whole.subarray(ID_HEADER), crcOk: crc32(whole.subarray(4)) === whole.readUInt32LE(0) };
  } finally {
    await fh.close();
  }
}

/**
 * Reads a segment from start to end through one buffer, and hands each PUT that `wanted` names
 * (with its CRC verdict) to `onPut`, one at a time. A damaged entry ends the walk, as it ends
 * borg's own reader; the bytes after it are not guessed at.
 */
async function walkSegment(
  file: SegmentFile,
  wanted: (id: Buffer, segment: number, offset: number) => boolean,
  onPut: (id: Buffer, offset: number, data: Buffer, crcOk: boolean) => Promise<void>,
  onDelete: (id: Buffer) => void,
): Promise<{ bytesRead: number; problem: { offset: number; text: string } | null }> {
  const fh: FileHandle = await open(file.path, 'r');
  let bytesRead = 0;
  try {
    // The size now, not the listing's: a committed segment does not change, but be exact.
    const size = (await fh.stat()).size;
    let buf = Buffer.allocUnsafe(Math.min(READ_SIZE, Math.max(size, ENTRY_HEADER)));
    let bufStart = 0; // file offset of buf[0]
    let bufEnd = 0; // bytes valid in buf
    const ensure = async (offset: number, length: number): Promise<boolean> => {
      if (offset >= bufStart && offset + length <= bufStart + bufEnd) return true;
      if (offset + length > size) return false;
      // Keep what is left from `offset`, then fill the rest with one large read.
      const keepFrom = offset - bufStart;
      const kept = keepFrom >= 0 && keepFrom < bufEnd ? bufEnd - keepFrom : 0;
      if (length > buf.length) {
        const bigger = Buffer.allocUnsafe(Math.max(length, buf.length));
        if (kept > 0) buf.copy(bigger, 0, keepFrom, bufEnd);
        buf = bigger;
      } else if (kept > 0) buf.copy(buf, 0, keepFrom, bufEnd);
      bufStart = offset;
      bufEnd = kept;
      while (bufEnd < length) {
        const want = Math.min(buf.length - bufEnd, size - (bufStart + bufEnd));
        if (want <= 0) return false;
        const { bytesRead: n } = await fh.read(buf, bufEnd, want, bufStart + bufEnd);
        if (n <= 0) return false;
        bufEnd += n;
        bytesRead += n;
      }
      return true;
    };
    if (!(await ensure(0, 8)) || !buf.subarray(0, 8).equals(SEGMENT_MAGIC)) return { bytesRead, problem: { offset: 0, text: 'it is not a segment file (bad magic)' } };
    let offset = 8;
    while (offset < size) {
      if (!(await ensure(offset, ENTRY_HEADER))) return { bytesRead, problem: { offset, text: 'it ends inside an entry header' } };
      const h = offset - bufStart;
      const crc = buf.readUInt32LE(h);
      const entrySize = buf.readUInt32LE(h + 4);
      const tag = buf[h + 8];
      if (entrySize < ENTRY_HEADER || entrySize > MAX_ENTRY_SIZE || offset + entrySize > size) return { bytesRead, problem: { offset, text: `an entry of impossible size ${entrySize}` } };
      if (tag === TAG_COMMIT) {
        offset += entrySize;
        continue;
      }
      if ((tag !== TAG_PUT && tag !== TAG_DELETE) || entrySize < ID_HEADER) return { bytesRead, problem: { offset, text: `an entry with tag ${tag} and size ${entrySize}` } };
      if (!(await ensure(offset, entrySize))) return { bytesRead, problem: { offset, text: 'an entry cut short' } };
      const e = offset - bufStart;
      if (tag === TAG_PUT) {
        const id = buf.subarray(e + ENTRY_HEADER, e + ID_HEADER);
        if (wanted(id, file.segment, offset)) {
          const crcOk = crc32(buf.subarray(e + 4, e + entrySize)) === crc;
          // The data is a view of the buffer: onPut finishes with it before the next read.
          await onPut(Buffer.from(id), offset, buf.subarray(e + ID_HEADER, e + entrySize), crcOk);
        }
      } else if (crc32(buf.subarray(e + 4, e + entrySize)) === crc) {
        onDelete(Buffer.from(buf.subarray(e + ENTRY_HEADER, e + ID_HEADER)));
      }
      offset += entrySize;
    }
    return { bytesRead, problem: null };
  } finally {
    await fh.close();
  }
}

