// The borg cache a pull job's client is given (issue 17, point 1): before `borg create` runs, the
// server builds a borg 1.2 cache directory for the job's repository (its id as the client sees it)
// in borg's own format, and the runner writes it into the job's BORG_BASE_DIR on the client
// (…/base/.cache/borg/<job repository id hex>/, borg's get_cache_dir when BORG_BASE_DIR is set and
// BORG_CACHE_DIR is not). The stock client then takes it as its own, in sync with the synthetic
// manifest the proxy serves, and skips every chunk it lists: only new data crosses the network.
//
// What borg 1.2's LocalCache checks on opening it (cache.py), and how this cache passes:
//  - `config` [cache] version 1, repository = the id `open` answers (the job's), manifest = the id
//    of the synthetic manifest the proxy will serve (borg's manifest.id: the id hash of its
//    decrypted plaintext), so `manifest.id != cache_config.manifest_id` is false and borg does not
//    resynchronise; timestamp = that manifest's (the replay check wants the cache not newer);
//    key_type = the job key's TYPE byte; no previous_location (the location check then has
//    nothing to compare); empty ignored/mandatory features (the compatibility check passes).
//  - [integrity] has only `manifest` (equal to [cache] manifest, else borg warns that an old borg
//    modified the cache): borg checks a file's XXH64 only when [integrity] names the file, so the
//    chunks and files carry none.
//  - `chunks`: a ChunkIndex (chunk-index-writer.ts), `files`: empty (every file is read again, its
//    chunks found in the index), `chunks.archive.d/`, `README`, `pre12-meta`: what borg's own
//    LocalCache.create() leaves.
//
// Which chunks, with which sizes: exactly the index borg's own resynchronisation would build
// (cache.py sync / fetch_and_build_idx): every archive's metadata object and item-stream chunks
// (refcount 1 each, their plaintext and stored lengths), and every chunk in the items' chunk lists
// with the (size, csize) recorded there, refcounts summed (the client gets 1 for each: below). Only chunks the repository index holds
// go in: a listed chunk the client does not upload must exist. Sizes matter beyond statistics:
// borg's seen_chunk raises "chunk has same id, but different size" when a chunk it reads has
// another size than the index says (the backup fails), and chunk_incref copies the index's
// (size, csize) into the new archive's item chunk lists and its size/csize figures; so only the
// sizes borg itself recorded are used (a csize of 0, from an archive written with
// --no-cache-sync, is taken from the stored object's length, as borg's fetch_missing_csize does).
//
// Never: put anything of the repository's key, path or name into these files (only chunk ids and
// sizes, which every client learns by design — docs/security.md), or write anything on the server.

import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';

import { crc32 } from '../native/objcheck.js';
import { MODE_TYPE_BYTE, objectId, objectMode, openObject, type BorgKey, type KeyMode } from '../repository/borg-key.js';
import { writeChunkIndex, type ChunkIndexEntry } from '../repository/chunk-index-writer.js';
import { latestIndexTransaction, openCommittedIndex, type CommittedIndex } from '../repository/hash-index.js';
import { MANIFEST_ID, archiveEntries, archiveFromEntry, parseManifest, type Manifest } from '../repository/manifest.js';
import { parseRepoConfig } from '../repository/repo-config.js';
import { MsgMap, decode, scanFrame, type MsgValue, type UnpackLimits } from '../rpc/msgpack.js';
import { shellQuote } from './client-command.js';
import type { ClientCacheFiles } from './types.js';

/** borg's CACHE_README. */
const CACHE_README = 'This is a Borg Backup cache.\nSee https://borgbackup.readthedocs.io/\n';
/** One item of an archive's item stream: a map, nested a few levels (xattrs, acls, chunk lists). */
const ITEM_LIMITS: UnpackLimits = { maxArrayLen: 10_000_000, maxMapLen: 10_000, maxStrLen: 20 * 1024 * 1024, maxFrameSize: 60 * 1024 * 1024, maxDepth: 16 };
const METADATA_LIMITS: UnpackLimits = { maxArrayLen: 10_000_000, maxMapLen: 100, maxStrLen: 20 * 1024 * 1024, maxFrameSize: 60 * 1024 * 1024, maxDepth: 8 };
const ENTRY_HEADER = 41;
const TAG_PUT = 0;

export class ClientCacheError extends Error {}

/** The repository read from its files on the server (no lock: a reader that meets a change fails, and the job goes without a cache). */
export interface RepositoryObjects {
  readonly transactionId: number;
  readonly index: CommittedIndex;
  /** The stored object (its envelope), or null when the repository does not hold it. */
  read(id: Buffer): Buffer | null;
  /** The stored object's length (what borg calls csize), or null when not held. */
  storedLength(id: Buffer): number | null;
  close(): void;
}

/** Opens the repository's committed index and reads objects at the places it gives. */
export function openRepositoryObjects(repoPath: string): RepositoryObjects {
  const config = parseRepoConfig(readFileSync(join(repoPath, 'config'), 'utf8'));
  const n = latestIndexTransaction(repoPath);
  if (n === null) throw new ClientCacheError('the repository has no committed index');
  const index = openCommittedIndex(repoPath, n);
  const header = Buffer.alloc(ENTRY_HEADER);
  const at = (id: Buffer): { fd: number; size: number; offset: number } | null => {
    const e = index.lookup(id);
    if (!e) return null;
    const fd = openSync(join(repoPath, 'data', String(Math.floor(e.segment / config.segmentsPerDir)), String(e.segment)), 'r');
    try {
      if (readSync(fd, header, 0, ENTRY_HEADER, e.offset) !== ENTRY_HEADER) throw new ClientCacheError('a segment file ended early');
      const size = header.readUInt32LE(4);
      if (header[8] !== TAG_PUT || !header.subarray(9, 41).equals(id) || size < ENTRY_HEADER) throw new ClientCacheError('the repository index points at another entry (it changed while being read)');
      return { fd, size, offset: e.offset };
    } catch (error) {
      closeSync(fd);
      throw error;
    }
  };
  return {
    transactionId: n,
    index,
    read(id) {
      const p = at(id);
      if (!p) return null;
      try {
        const whole = Buffer.alloc(p.size);
        if (readSync(p.fd, whole, 0, p.size, p.offset) !== p.size) throw new ClientCacheError('a segment file ended early');
        if (crc32(whole.subarray(4)) !== whole.readUInt32LE(0)) throw new ClientCacheError('an object of the repository fails its CRC');
        return whole.subarray(ENTRY_HEADER);
      } finally {
        closeSync(p.fd);
      }
    },
    storedLength(id) {
      const p = at(id);
      if (!p) return null;
      closeSync(p.fd);
      return p.size - ENTRY_HEADER;
    },
    close: () => index.close(),
  };
}

/** A decrypted, id-checked object of the repository (borg's key.decrypt(id, data)). */
async function openChecked(objects: RepositoryObjects, id: Buffer, mode: KeyMode, key: BorgKey): Promise<{ plain: Buffer; csize: number } | null> {
  const envelope = objects.read(id);
  if (!envelope) return null;
  if (objectMode(envelope) !== mode) throw new ClientCacheError('an object of the repository has another encryption than its manifest');
  const plain = await openObject(envelope, mode, key);
  if (!(await objectId(mode, key, plain)).equals(id)) throw new ClientCacheError('an object of the repository does not match its id');
  return { plain, csize: envelope.length };
}

export interface RepositoryChunks {
  /** The repository's current manifest, opened with its key. */
  readonly manifest: Manifest;
  readonly mode: KeyMode;
  /** id hex -> what borg's own resynchronisation would put into its chunk index. */
  readonly entries: Map<string, ChunkIndexEntry>;
  /** The index transaction it was read from. */
  readonly transactionId: number;
}

/**
 * The chunk index borg would build by resynchronising with the repository (see the header), read
 * from the repository's files with its key. Throws ClientCacheError (one sentence) when the
 * repository cannot be read so (it changed meanwhile, an object is damaged).
 */
export async function repositoryChunks(repoPath: string, key: BorgKey): Promise<RepositoryChunks> {
  const objects = openRepositoryObjects(repoPath);
  try {
    const envelope = objects.read(MANIFEST_ID);
    if (!envelope) throw new ClientCacheError('the repository has no manifest');
    const mode = objectMode(envelope);
    if (!mode) throw new ClientCacheError('the repository manifest has an unknown encryption');
    const manifest = parseManifest(await openObject(envelope, mode, key), key, true);
    if (manifest.tam === 'invalid' || (manifest.tam === 'missing' && key.tamRequired)) throw new ClientCacheError('the repository manifest fails its authentication');
    const entries = new Map<string, ChunkIndexEntry>();
    const add = (hex: string, size: number, csize: number): void => {
      const e = entries.get(hex);
      entries.set(hex, e ? { refcount: e.refcount + 1, size: e.size, csize: e.csize || csize } : { refcount: 1, size, csize });
    };
    for (const [rawName, rawEntry] of archiveEntries(manifest.archivesBody)) {
      const archiveId = Buffer.from(archiveFromEntry(rawName, rawEntry).id, 'hex');
      const meta = await openChecked(objects, archiveId, mode, key);
      // An archive whose metadata is gone: borg check's business; its chunks are simply not listed.
      if (!meta) continue;
      if (scanFrame(meta.plain, 0, METADATA_LIMITS).kind !== 'complete') throw new ClientCacheError("an archive's metadata is not one borg writes");
      const archive = decode(meta.plain);
      const items = archive instanceof MsgMap ? archive.get('items') : undefined;
      if (!(archive instanceof MsgMap) || archive.get('version') !== 1 || !Array.isArray(items)) throw new ClientCacheError("an archive's metadata is not one borg 1.2 reads");
      add(archiveId.toString('hex'), meta.plain.length, meta.csize);
      // The item stream: msgpack maps cut into chunks at arbitrary places, read in order.
      let pending: Buffer = Buffer.alloc(0);
      for (const itemId of items) {
        if (!Buffer.isBuffer(itemId) || itemId.length !== 32) throw new ClientCacheError("an archive's item list is not one borg writes");
        const chunk = await openChecked(objects, itemId, mode, key);
        if (!chunk) throw new ClientCacheError("an archive's item metadata is missing from the repository");
        add(itemId.toString('hex'), chunk.plain.length, chunk.csize);
        pending = pending.length === 0 ? chunk.plain : Buffer.concat([pending, chunk.plain]);
        let pos = 0;
        for (;;) {
          const r = scanFrame(pending, pos, ITEM_LIMITS);
          if (r.kind === 'incomplete') break;
          if (r.kind !== 'complete') throw new ClientCacheError("an archive's item stream is not one borg writes");
          const item = decode(pending, pos, r.end);
          pos = r.end;
          const chunks = item instanceof MsgMap ? item.get('chunks') : undefined;
          if (!Array.isArray(chunks)) continue;
          for (const c of chunks as MsgValue[]) {
            if (!Array.isArray(c) || c.length < 3 || !Buffer.isBuffer(c[0]) || c[0].length !== 32 || typeof c[1] !== 'number' || typeof c[2] !== 'number') {
              throw new ClientCacheError("an item's chunk list is not one borg writes");
            }
            add(c[0].toString('hex'), c[1], c[2]);
          }
        }
        pending = pos === pending.length ? Buffer.alloc(0) : pending.subarray(pos);
      }
    }
    // Only what the repository holds: a chunk an archive lists but the repository lost must be
    // uploaded again, not counted on. A csize of 0 (--no-cache-sync archives) from the object itself.
    for (const [hex, e] of entries) {
      const stored = objects.storedLength(Buffer.from(hex, 'hex'));
      if (stored === null) entries.delete(hex);
      else if (e.csize === 0) entries.set(hex, { ...e, csize: stored });
    }
    return { manifest, mode, entries, transactionId: objects.transactionId };
  } finally {
    objects.close();
  }
}

export interface CacheConfigInput {
  /** The repository id the client sees (the job's), 32 bytes. */
  readonly repositoryId: Buffer;
  /** The id of the synthetic manifest the proxy serves this job. */
  readonly manifestId: Buffer;
  /** That manifest's timestamp, as written in it. */
  readonly timestamp: string;
  /** The job key's mode (the client's key TYPE). */
  readonly keyMode: KeyMode;
}

/** The cache `config`, as borg's CacheConfig.save writes it (ConfigParser). */
export function cacheConfigText(c: CacheConfigInput): string {
  const manifest = c.manifestId.toString('hex');
  return [
    '[cache]',
    'version = 1',
    `repository = ${c.repositoryId.toString('hex')}`,
    `manifest = ${manifest}`,
    `timestamp = ${c.timestamp}`,
    `key_type = ${MODE_TYPE_BYTE[c.keyMode]}`,
    'ignored_features = ',
    'mandatory_features = ',
    '',
    '[integrity]',
    `manifest = ${manifest}`,
    '',
    '',
  ].join('\n');
}

/**
 * The files of the cache directory, paths relative to it; a null content is a directory. Every
 * chunk goes in with a reference count of 1, not the repository's: how many archives refer to a
 * chunk is none of the client's business, and borg create needs only "known" (seen_chunk > 0;
 * it adds its own references and only ever removes those again, so no count it was given drops
 * to 0 and makes it delete a chunk).
 */
export function clientCacheFiles(config: CacheConfigInput, repositoryChunks: ReadonlyMap<string, ChunkIndexEntry>): ClientCacheFiles {
  const chunks = new Map<string, ChunkIndexEntry>();
  for (const [hex, e] of repositoryChunks) chunks.set(hex, { refcount: 1, size: e.size, csize: e.csize });
  return {
    dirName: config.repositoryId.toString('hex'),
    chunkCount: chunks.size,
    files: [
      { path: 'README', content: Buffer.from(CACHE_README) },
      { path: 'chunks.archive.d', content: null },
      { path: 'chunks', content: writeChunkIndex(chunks) },
      { path: 'files', content: Buffer.alloc(0) },
      { path: 'pre12-meta', content: Buffer.from('{}') },
      // Last: a cache without its config is no cache to borg (it would make its own).
      { path: 'config', content: Buffer.from(cacheConfigText(config)) },
    ],
  };
}

/** Whether every chunk a chunks file lists is still in the repository (`held`). */
export function everyChunkHeld(chunksFile: Buffer, held: (id: Buffer) => boolean): boolean {
  const buckets = chunksFile.readInt32LE(12);
  for (let i = 0; i < buckets; i++) {
    const at = 18 + i * 44;
    const refcount = chunksFile.readUInt32LE(at + 32);
    if (refcount >= 0xfffffffe) continue;
    if (!held(chunksFile.subarray(at, at + 32))) return false;
  }
  return true;
}

/**
 * The command that writes one file of the cache (the channel's stdin) under the job's base
 * directory, or makes a directory of it: 0600/0700, as borg makes them.
 */
export function writeCacheFileCommand(baseDir: string, cacheDirName: string, path: string, directory: boolean): string {
  if (!/^[0-9a-f]{64}$/.test(cacheDirName) || !/^[A-Za-z0-9._-]+$/.test(path) || path.startsWith('.')) throw new Error('not a cache file name');
  const dir = `${baseDir}/.cache/borg/${cacheDirName}`;
  const script = directory
    ? `umask 077 && mkdir -p -- ${shellQuote(`${dir}/${path}`)}`
    : `umask 077 && mkdir -p -- ${shellQuote(dir)} && cat > ${shellQuote(`${dir}/${path}`)}`;
  return `sh -c ${shellQuote(script)}`;
}

/** Runs one command on the client with `input` on its stdin: its status and error output. */
export type ClientRun = (command: string, input: Buffer | undefined, timeoutMs: number) => Promise<{ code: number | null; stderr: string }>;

/**
 * Builds the job's client cache and writes it under the job's base directory on the client (the
 * same SSH connection as the job's other files). Never fails the job: a cache that cannot be built
 * or written means a job that uploads every chunk, as without one (what was written is removed
 * again). Returns the cache's folder name (the repository id in hex) when the client has it, else null.
 */
export async function sendClientCache(
  build: () => Promise<ClientCacheFiles>,
  baseDir: string,
  run: ClientRun,
  log: (line: string) => void,
  timeoutMs: number,
): Promise<string | null> {
  let cache: ClientCacheFiles;
  const started = Date.now();
  try {
    cache = await build();
  } catch (error) {
    log(`no chunk index for the client: ${(error as Error).message}; it uploads every chunk`);
    return null;
  }
  const built = Date.now();
  try {
    for (const f of cache.files) {
      // The chunks file of a large repository takes a while; the small ones do not.
      const r = await run(writeCacheFileCommand(baseDir, cache.dirName, f.path, f.content === null), f.content ?? undefined, f.content && f.content.length > 1e6 ? timeoutMs * 10 : timeoutMs);
      if (r.code !== 0) throw new Error(r.stderr.trim().slice(0, 300) || `status ${r.code}`);
    }
  } catch (error) {
    log(`could not write the chunk index on the client (${(error as Error).message}); it uploads every chunk`);
    await run(`sh -c ${shellQuote(`rm -rf -- ${shellQuote(`${baseDir}/.cache`)}`)}`, undefined, timeoutMs).catch(() => undefined);
    return null;
  }
  const size = cache.files.reduce((n, f) => n + (f.content?.length ?? 0), 0);
  log(`gave the client a chunk index of ${cache.chunkCount} chunks (${size} bytes; built in ${built - started} ms, written in ${Date.now() - built} ms)`);
  return cache.dirName;
}
