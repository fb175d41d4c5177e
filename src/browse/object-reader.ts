// Reads a borg 1.2 repository's objects straight from its files, as of its last COMMITTED
// transaction: the one `index.N` open for the reader's whole life (borg replaces the file at its
// next commit, and an open descriptor keeps the old one readable), each object's segment entry by
// pread, CRC-checked, then opened with the repository's key (TYPE byte, MAC, decryption,
// decompression) and its id checked against the plaintext, as borg's own client does.
//
// This is the STABLE interface browsing, restoring, diffing and `borgkeep verify` share
// (src/browse/archive-reader.ts builds on it). It must never write into the repository, never
// take borg's lock (so it works while a backup to the same repository runs), and never put a
// server path, a passphrase or key material into an error message: errors are BrowseError with
// one sentence that names objects by their id only.

import { constants as fsConstants, readFileSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

import { crc32 } from '../native/objcheck.js';
import { decompressPayload, decryptPayload, objectId, objectMode, type BorgKey, type KeyMode } from '../repository/borg-key.js';
import { IndexFormatError, latestIndexTransaction, openCommittedIndex, type CommittedIndex, type IndexEntry } from '../repository/hash-index.js';
import { MANIFEST_ID, parseManifest, type Manifest } from '../repository/manifest.js';
import { parseRepoConfig, type RepoConfig } from '../repository/repo-config.js';
import { MAX_ENTRY_SIZE, TAG_PUT } from '../repository/segments.js';

/** Anything the reader cannot read, as one sentence without a server path (safe to show to a user). */
export class BrowseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BrowseError';
  }
}

/** An id the committed index does not list (a missing chunk). */
export class ObjectMissingError extends BrowseError {}

/** The repository is encrypted or authenticated and no key was given. */
export class KeyNeededError extends BrowseError {}

export interface ObjectReaderOptions {
  /**
   * Recompute each object's id from its plaintext and refuse a mismatch (default true; borg's
   * client does the same). Off only for callers that check ids themselves.
   */
  readonly verifyIds?: boolean;
  /** Segment files kept open at once (default 16). */
  readonly maxOpenSegments?: number;
}

export interface ObjectReader {
  /** The repository's key mode, from the committed manifest's TYPE byte. */
  readonly mode: KeyMode;
  /** borg's transaction id of the committed index this reader reads (fixed for its life). */
  readonly transactionId: number;
  /** The committed manifest, its TAM checked (see openObjectReader). */
  readonly manifest: Manifest;
  /** Whether the committed index lists `id` (32 bytes). */
  has(id: Buffer): boolean;
  /** The stored envelope of `id` (CRC-checked, not opened); ObjectMissingError when not listed. */
  getEnvelope(id: Buffer): Promise<Buffer>;
  /** The plaintext of object `id`: CRC, TYPE, MAC, decryption, decompression, id check. */
  get(id: Buffer): Promise<Buffer>;
  /**
   * The stored (encrypted) length of `id`, borg's csize: its segment entry's size less the entry
   * header, from the header alone (the data is not read, so not CRC-checked).
   */
  storedSize(id: Buffer): Promise<number>;
  /** Bytes of segment entries read so far (headers and data). */
  readonly bytesRead: number;
  /** Closes the index and the segment files; the reader is unusable after. */
  close(): Promise<void>;
}

const ENTRY_HEADER = 41;

const short = (id: Buffer): string => id.subarray(0, 8).toString('hex');

function readConfig(repositoryPath: string): RepoConfig {
  let text: string;
  try {
    text = readFileSync(join(repositoryPath, 'config'), 'utf8');
  } catch {
    throw new BrowseError('the repository has no readable config: it is not initialised yet');
  }
  try {
    return parseRepoConfig(text);
  } catch (error) {
    throw new BrowseError(`the repository's config cannot be read: ${(error as Error).message}`);
  }
}

/**
 * Opens a repository for reading at its last committed transaction. `key` is the unlocked key
 * (src/vault/repository-key.ts), or null for an unencrypted (`none`) repository. The manifest's
 * TAM must verify when present, and must be present when the key requires it, as borg 1.2 checks.
 */
export async function openObjectReader(repositoryPath: string, key: BorgKey | null, options: ObjectReaderOptions = {}): Promise<ObjectReader> {
  const config = readConfig(repositoryPath);
  const verifyIds = options.verifyIds ?? true;
  const maxOpen = Math.max(1, options.maxOpenSegments ?? 16);
  const txn = latestIndexTransaction(repositoryPath);
  if (txn === null) throw new BrowseError('the repository has no committed transaction yet');
  let index: CommittedIndex;
  try {
    index = openCommittedIndex(repositoryPath, txn);
  } catch (error) {
    if (error instanceof IndexFormatError) throw new BrowseError(`the repository's index cannot be read: ${error.message}`);
    // borg replaced index.N between the listing and the open: one more try with the new one.
    const again = latestIndexTransaction(repositoryPath);
    if (again === null || again === txn) throw new BrowseError("the repository's index cannot be opened");
    return openObjectReader(repositoryPath, key, options);
  }

  const handles = new Map<number, FileHandle>();
  let bytesRead = 0;
  let closed = false;

  const segmentHandle = async (segment: number): Promise<FileHandle> => {
    const hit = handles.get(segment);
    if (hit) {
      // Most recently used last, so the first is the one to close.
      handles.delete(segment);
      handles.set(segment, hit);
      return hit;
    }
    const path = join(repositoryPath, 'data', String(Math.floor(segment / config.segmentsPerDir)), String(segment));
    let fh: FileHandle;
    try {
      fh = await open(path, fsConstants.O_RDONLY);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new BrowseError(`segment ${segment} of the committed index is missing (was the repository compacted meanwhile?)`);
      }
      throw new BrowseError(`segment ${segment} cannot be opened (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    handles.set(segment, fh);
    if (handles.size > maxOpen) {
      const [oldest, h] = handles.entries().next().value as [number, FileHandle];
      handles.delete(oldest);
      await h.close().catch(() => {});
    }
    return fh;
  };

  const readHeader = async (id: Buffer, at: IndexEntry): Promise<{ fh: FileHandle; header: Buffer; size: number }> => {
    const fh = await segmentHandle(at.segment);
    const header = Buffer.alloc(ENTRY_HEADER);
    const h = await fh.read(header, 0, ENTRY_HEADER, at.offset);
    if (h.bytesRead !== ENTRY_HEADER) throw new BrowseError(`object ${short(id)} is cut short in segment ${at.segment}`);
    const size = header.readUInt32LE(4);
    if (header[8] !== TAG_PUT || size < ENTRY_HEADER || size > MAX_ENTRY_SIZE || !header.subarray(9, ENTRY_HEADER).equals(id)) {
      throw new BrowseError(`the index points object ${short(id)} at an entry of segment ${at.segment} that is not it`);
    }
    bytesRead += ENTRY_HEADER;
    return { fh, header, size };
  };

  const readEntry = async (id: Buffer, at: IndexEntry): Promise<Buffer> => {
    const { fh, header, size } = await readHeader(id, at);
    const data = Buffer.allocUnsafe(size - ENTRY_HEADER);
    const d = await fh.read(data, 0, data.length, at.offset + ENTRY_HEADER);
    bytesRead += d.bytesRead;
    if (d.bytesRead !== data.length) throw new BrowseError(`object ${short(id)} is cut short in segment ${at.segment}`);
    if (crc32(data, crc32(header.subarray(4, ENTRY_HEADER))) !== header.readUInt32LE(0)) {
      throw new BrowseError(`object ${short(id)} fails its CRC check in segment ${at.segment} (damaged on disk)`);
    }
    return data;
  };

  const lookup = (id: Buffer): IndexEntry => {
    if (closed) throw new BrowseError('the repository reader is closed');
    if (id.length !== 32) throw new BrowseError('an object id is not 32 bytes');
    const at = index.lookup(id);
    if (!at) throw new ObjectMissingError(`object ${short(id)} is not in the repository (a missing chunk)`);
    return at;
  };

  const opened = async (id: Buffer, envelope: Buffer, mode: KeyMode): Promise<Buffer> => {
    let plain: Buffer;
    try {
      plain = await decompressPayload(await decryptPayload(envelope, mode, key));
    } catch (error) {
      throw new BrowseError(`object ${short(id)} does not open: ${(error as Error).message}`);
    }
    if (verifyIds && !id.equals(MANIFEST_ID) && !(await objectId(mode, key, plain)).equals(id)) {
      throw new BrowseError(`object ${short(id)} does not match its id (its content was replaced)`);
    }
    return plain;
  };

  try {
    const manifestEnvelope = await readEntry(MANIFEST_ID, lookup(MANIFEST_ID));
    const mode = objectMode(manifestEnvelope);
    if (mode === null) throw new BrowseError("the repository's manifest has an unknown encryption type");
    if (mode !== 'none' && !key) throw new KeyNeededError(`the repository is ${mode}: its key is needed to read it`);
    const effectiveKey = mode === 'none' ? null : key;
    let manifest: Manifest;
    try {
      manifest = parseManifest(await opened(MANIFEST_ID, manifestEnvelope, mode), effectiveKey, mode !== 'none');
    } catch (error) {
      if (error instanceof BrowseError) throw error;
      throw new BrowseError(`the repository's manifest cannot be read: ${(error as Error).message}`);
    }
    if (manifest.tam === 'invalid') throw new BrowseError("the repository's manifest fails its authentication (TAM) check");
    if (manifest.tam === 'missing' && effectiveKey?.tamRequired) throw new BrowseError("the repository's manifest has no authentication (TAM) though its key requires one");
    if (manifest.mandatoryFeatures.length > 0) throw new BrowseError(`the repository needs borg features borgkeep does not read (${manifest.mandatoryFeatures.join(', ')})`);

    return {
      mode,
      transactionId: txn,
      manifest,
      has: (id) => {
        if (closed) throw new BrowseError('the repository reader is closed');
        return id.length === 32 && index.lookup(id) !== undefined;
      },
      getEnvelope: async (id) => readEntry(id, lookup(id)),
      get: async (id) => opened(id, await readEntry(id, lookup(id)), mode),
      storedSize: async (id) => (await readHeader(id, lookup(id))).size - ENTRY_HEADER,
      get bytesRead() {
        return bytesRead;
      },
      async close() {
        if (closed) return;
        closed = true;
        index.close();
        const all = [...handles.values()];
        handles.clear();
        await Promise.all(all.map((h) => h.close().catch(() => {})));
      },
    };
  } catch (error) {
    closed = true;
    index.close();
    await Promise.all([...handles.values()].map((h) => h.close().catch(() => {})));
    throw error;
  }
}
