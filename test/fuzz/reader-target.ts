// Fuzz target 2: borgkeep's readers of borg's disk formats (src/repository) and the audit
// (readHistory, runAudit), over small real repositories made by borg (corpus/repos/<mode>) with
// one file damaged per input: a segment, index.N, hints.N, the config (its text, or the key blob
// inside it), the transactions file, or the audit's own cache files.
//
// Checked for every input: each reader either returns or throws its own format error (one
// sentence: RepoFormatError, IndexFormatError, KeyError, ObjectError, Lz4Error, ManifestError,
// FrameError), and runAudit (which walks the history with readHistory, whose damage must come back
// in its result, not as an exception) returns a report or throws a BorgkeepError with one sentence
// (what the CLI prints with exit code 2). Nothing may take longer than the time limit.
//
// The seed repositories' key blobs are re-wrapped with one PBKDF2 iteration when loaded (same
// key, same format): borg's 100,000 would make each input cost 50 ms of key derivation.

import { createCipheriv, createHmac, pbkdf2Sync } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { crc32, inflateSync } from 'node:zlib';

import { BorgkeepError } from '../../src/errors.js';
import { runAudit } from '../../src/audit/run-audit.js';
import { KeyError, ObjectError, openObject, objectMode, unlockKey, type BorgKey } from '../../src/repository/borg-key.js';
import { IndexFormatError, latestIndexTransaction, openCommittedIndex } from '../../src/repository/hash-index.js';
import { readHints } from '../../src/repository/hints.js';
import { Lz4Error, lz4BlockDecompress } from '../../src/repository/lz4.js';
import { ManifestError, archiveEntries, archiveFromEntry, parseManifest } from '../../src/repository/manifest.js';
import { RepoFormatError, parseRepoConfig } from '../../src/repository/repo-config.js';
import { listSegments, readSegment } from '../../src/repository/segments.js';
import { FrameError, MsgMap, decode, encode, type MsgValue } from '../../src/rpc/msgpack.js';
import { createPrng, type Prng } from '../support/prng.js';
import { mutate } from './mutate.js';
import type { Violation } from './guard-target.js';

export const READER_PASSPHRASE = 'fuzz';

export interface ReaderInput {
  /** The seed repository: a directory name under corpus/repos. */
  readonly repo: string;
  /** The file replaced, relative to the repository (or `cache.history`/`cache.audit`). */
  readonly file: string;
  /** Its new contents; null removes it. */
  readonly data: Buffer | null;
  readonly passphrase: boolean;
  /** Whether the audit uses its cache (built from the undamaged repository first). */
  readonly cache: boolean;
}

interface SeedRepo {
  readonly name: string;
  /** Relative path -> contents, for every file of the repository. */
  readonly files: Map<string, Buffer>;
  /** The manifest PUTs of an unencrypted repository, with their plaintext (msgpack). */
  readonly manifests: ReadonlyArray<{ readonly file: string; readonly offset: number; readonly size: number; readonly type: number; readonly plain: Buffer }>;
}

/** Manifest PUTs (id all zeros) of unencrypted modes (none 0x02, authenticated 0x06/0x07), decompressed. */
function unencryptedManifests(files: Map<string, Buffer>): SeedRepo['manifests'] {
  const found: Array<SeedRepo['manifests'][number]> = [];
  for (const [file, seg] of files) {
    if (!file.startsWith('data/')) continue;
    for (let at = 8; at + 41 <= seg.length; ) {
      const size = seg.readUInt32LE(at + 4);
      if (size < 9 || at + size > seg.length) break;
      const type = seg[at + 41];
      if (seg[at + 8] === 0 && size > 44 && seg.subarray(at + 9, at + 41).every((b) => b === 0) && [0x02, 0x06, 0x07].includes(type)) {
        const payload = seg.subarray(at + 42, at + size);
        const plain =
          payload[0] === 0x01 && payload[1] === 0x00
            ? lz4BlockDecompress(payload.subarray(2), 1 << 24)
            : payload[0] === 0x00 && payload[1] === 0x00
              ? payload.subarray(2)
              : (payload[0] & 0x0f) === 8
                ? inflateSync(payload)
                : null;
        if (plain) found.push({ file, offset: at, size, type, plain: Buffer.from(plain) });
      }
      at += size;
    }
  }
  return found;
}

/** The segment with one manifest PUT replaced by `plain`, stored uncompressed; CRCs made right. */
function withManifest(segment: Buffer, m: SeedRepo['manifests'][number], plain: Buffer): Buffer {
  const envelope = Buffer.concat([Buffer.from([m.type, 0x00, 0x00]), plain]);
  const header = Buffer.alloc(41);
  header.writeUInt32LE(41 + envelope.length, 4);
  header[8] = 0; // PUT, id all zeros
  return withFixedCrcs(Buffer.concat([segment.subarray(0, m.offset), header, envelope, segment.subarray(m.offset + m.size)]));
}

export interface ReaderCorpus {
  readonly repos: readonly SeedRepo[];
}

function walk(dir: string, root = dir, out = new Map<string, Buffer>()): Map<string, Buffer> {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, root, out);
    else out.set(relative(root, p), readFileSync(p));
  }
  return out;
}

/** The config with its key blob wrapped again with one PBKDF2 iteration. */
function fastKeyConfig(config: Buffer): Buffer {
  const text = config.toString('utf8');
  const parsed = parseRepoConfig(text);
  if (!parsed.key) return config;
  const outer = decode(Buffer.from(parsed.key, 'base64')) as MsgMap;
  const salt = outer.get('salt') as Buffer;
  const iterations = outer.get('iterations') as number;
  const kek = pbkdf2Sync(Buffer.from(READER_PASSPHRASE), salt, iterations, 32, 'sha256');
  const d = createCipheriv('aes-256-ctr', kek, Buffer.alloc(16));
  const plain = Buffer.concat([d.update(outer.get('data') as Buffer), d.final()]);
  const fastKek = pbkdf2Sync(Buffer.from(READER_PASSPHRASE), salt, 1, 32, 'sha256');
  const e = createCipheriv('aes-256-ctr', fastKek, Buffer.alloc(16));
  const data = Buffer.concat([e.update(plain), e.final()]);
  const hash = createHmac('sha256', fastKek).update(plain).digest();
  const rewrapped = new MsgMap(
    outer.entries.map(([k, v]): [MsgValue, MsgValue] => {
      const name = Buffer.isBuffer(k) ? k.toString('latin1') : '';
      return [k, name === 'iterations' ? 1 : name === 'data' ? data : name === 'hash' ? hash : v];
    }),
  );
  const blob = encode(rewrapped).toString('base64');
  const lines = text.split('\n').filter((l) => !/^\s/.test(l) && !/^key\s*=/.test(l));
  const at = lines.findIndex((l) => l.startsWith('[repository]'));
  lines.splice(at + 1, 0, `key = ${blob.slice(0, 72)}`, ...(blob.slice(72).match(/.{1,72}/g) ?? []).map((l) => `\t${l}`));
  return Buffer.from(lines.join('\n'));
}

export function loadReaderCorpus(corpusDir: string): ReaderCorpus {
  const dir = join(corpusDir, 'repos');
  if (!existsSync(dir)) throw new Error(`no seed repositories in ${dir}: run npm run fuzz -- --record`);
  const repos = readdirSync(dir)
    .sort()
    .map((name) => {
      const files = walk(join(dir, name));
      const config = files.get('config');
      if (config) files.set('config', fastKeyConfig(config));
      return { name, files, manifests: unencryptedManifests(files) };
    });
  return { repos };
}

// --- inputs --------------------------------------------------------------------------------------

function mutateKeyInConfig(prng: Prng, config: Buffer): Buffer {
  const text = config.toString('utf8');
  const m = /^key = (.*(?:\n\t.*)*)/m.exec(text);
  if (!m) return mutate(prng, config);
  const blob = Buffer.from(m[1].replace(/\s+/g, ''), 'base64');
  const damaged = mutate(prng, blob, undefined, 4).toString('base64');
  return Buffer.from(text.replace(m[1], damaged));
}

/** The segment with the CRC of every entry whose header still fits recomputed. */
function withFixedCrcs(segment: Buffer): Buffer {
  const out = Buffer.from(segment);
  for (let at = 8; at + 9 <= out.length; ) {
    const size = out.readUInt32LE(at + 4);
    if (size < 9 || at + size > out.length) break;
    out.writeUInt32LE(crc32(out.subarray(at + 4, at + size)), at);
    at += size;
  }
  return out;
}

export function generateReaderInput(seed: number, corpus: ReaderCorpus): ReaderInput {
  const prng = createPrng(seed);
  const repo = prng.pick(corpus.repos);
  const names = [...repo.files.keys()];
  const segments = names.filter((n) => n.startsWith('data/'));
  const pickFrom = prng.int(24);
  if (pickFrom >= 20 && repo.manifests.length > 0) {
    // The manifest itself damaged behind valid CRCs: the audit decodes it and diffs archive lists.
    const m = prng.pick(repo.manifests);
    const other = prng.pick(repo.manifests).plain;
    const data = withManifest(repo.files.get(m.file) as Buffer, m, mutate(prng, m.plain, other));
    return { repo: repo.name, file: m.file, data, passphrase: prng.int(5) !== 0, cache: prng.int(8) === 0 };
  }
  const file =
    pickFrom < 9 || pickFrom >= 20
      ? prng.pick(segments)
      : pickFrom < 12
        ? (names.find((n) => n.startsWith('index.')) ?? 'config')
        : pickFrom < 16
          ? 'config'
          : pickFrom < 17
            ? (names.find((n) => n.startsWith('hints.')) ?? 'config')
            : pickFrom < 18
              ? 'transactions'
              : prng.pick(['cache.history', 'cache.audit']);
  const cache = file.startsWith('cache.') || prng.int(8) === 0;
  const original = repo.files.get(file) ?? Buffer.alloc(0);
  let data: Buffer | null;
  const how = prng.int(40);
  if (how === 0) data = null;
  else if (file === 'config' && how < 20) data = mutateKeyInConfig(prng, original);
  else if (file.startsWith('cache.')) data = prng.int(3) === 0 ? prng.bytes(prng.int(200)) : null; // mutated from the built cache at run time
  else {
    const other = repo.files.get(prng.pick(segments));
    data = mutate(prng, original, other);
    // Half the damaged segments get their CRCs made right again, so the damage reaches what lies
    // behind the CRC check: decryption, decompression, the manifest and the archive list.
    if (file.startsWith('data/') && prng.int(2) === 0) data = withFixedCrcs(data);
  }
  return { repo: repo.name, file, data, passphrase: prng.int(5) !== 0, cache };
}

export function readerInputToJson(input: ReaderInput, seed: number): object {
  return { ...input, data: input.data === null ? null : input.data.toString('base64'), cacheSeed: seed };
}

export function readerInputFromJson(j: Record<string, unknown>): ReaderInput {
  return { ...(j as unknown as ReaderInput), data: j.data === null ? null : Buffer.from(j.data as string, 'base64') };
}

// --- one input -----------------------------------------------------------------------------------

const FORMAT_ERRORS = [RepoFormatError, IndexFormatError, KeyError, ObjectError, Lz4Error, ManifestError, FrameError];
/** One line for a terminal: no newlines, no escape sequences or other control characters. */
const oneSentence = (m: unknown): boolean => typeof m === 'string' && m.length > 0 && m.length < 1000 && !/[\x00-\x1f\x7f]/.test(m);

export interface ReaderHarness {
  readonly workDir: string;
  readonly corpus: ReaderCorpus;
}

/** Copies the seed repositories into `workDir`, where inputs damage and restore them. */
export function createReaderHarness(workDir: string, corpus: ReaderCorpus): ReaderHarness {
  rmSync(workDir, { recursive: true, force: true });
  for (const r of corpus.repos) {
    for (const [name, data] of r.files) {
      mkdirSync(join(workDir, r.name, name, '..'), { recursive: true });
      writeFileSync(join(workDir, r.name, name), data);
    }
  }
  return { workDir, corpus };
}

/** Runs `f`; a thrown error that is not one of `allowed` (or not one sentence) is a violation. */
async function expectClean(violations: Violation[], what: string, allowed: ReadonlyArray<abstract new (...a: never[]) => Error>, f: () => unknown): Promise<boolean> {
  try {
    await f();
    return true;
  } catch (e) {
    if (!allowed.some((c) => e instanceof c) || !oneSentence((e as Error).message)) {
      violations.push({ property: 'crash', message: `${what} threw ${(e as Error)?.constructor?.name ?? typeof e}: ${(e as Error)?.stack ?? String(e)}` });
    }
    return false;
  }
}

async function readers(repoPath: string, violations: Violation[], prng: Prng): Promise<void> {
  let config: ReturnType<typeof parseRepoConfig> | null = null;
  const configPath = join(repoPath, 'config');
  if (existsSync(configPath)) {
    await expectClean(violations, 'parseRepoConfig', FORMAT_ERRORS, () => {
      config = parseRepoConfig(readFileSync(configPath, 'utf8'));
    });
  }
  let key: BorgKey | null = null;
  const c = config as ReturnType<typeof parseRepoConfig> | null;
  if (c?.key) {
    await expectClean(violations, 'unlockKey', FORMAT_ERRORS, () => {
      key = unlockKey(c.key as string, READER_PASSPHRASE, c.id);
    });
  }
  const n = latestIndexTransaction(repoPath);
  if (n !== null) {
    await expectClean(violations, 'openCommittedIndex', FORMAT_ERRORS, () => {
      const index = openCommittedIndex(repoPath, n);
      try {
        for (let i = 0; i < 8; i++) index.lookup(prng.bytes(32));
      } finally {
        index.close();
      }
    });
    if (existsSync(join(repoPath, `hints.${n}`))) {
      // readHints states its own failures in one sentence naming the file.
      try {
        readHints(repoPath, n);
      } catch (e) {
        if (!(e instanceof Error) || !/^hints\.\d+ /.test(e.message) || !oneSentence(e.message)) {
          violations.push({ property: 'crash', message: `readHints threw ${(e as Error)?.constructor?.name}: ${(e as Error)?.stack ?? String(e)}` });
        }
      }
    }
  }
  for (const file of listSegments(repoPath)) {
    const seg = await readSegment(file, (id) => id.every((b) => b === 0));
    for (const e of seg.entries) {
      if (e.tag !== 'put' || !e.data) continue;
      const envelope = e.data;
      const mode = objectMode(envelope);
      if (!mode) continue;
      await expectClean(violations, 'openObject/parseManifest', FORMAT_ERRORS, async () => {
        const plain = await openObject(envelope, mode, key);
        const manifest = parseManifest(plain, key, key !== null || mode === 'none');
        for (const [rawName, rawEntry] of archiveEntries(manifest.archivesBody)) archiveFromEntry(rawName, rawEntry);
      });
    }
  }
}

/** Runs one input; says what went wrong, and how the audit ended ('report', or the error's first words). */
export async function runReaderInput(input: ReaderInput, h: ReaderHarness, seed: number, timeLimitMs: number): Promise<{ violations: Violation[]; outcome: string }> {
  const repo = h.corpus.repos.find((r) => r.name === input.repo);
  if (!repo) throw new Error(`no seed repository ${input.repo}`);
  const repoPath = join(h.workDir, repo.name);
  const cacheBase = join(h.workDir, 'cache', repo.name);
  const violations: Violation[] = [];
  let outcome = 'none';
  const prng = createPrng(seed);
  const isCache = input.file.startsWith('cache.');
  rmSync(join(h.workDir, 'cache'), { recursive: true, force: true });
  if (input.cache) {
    // The cache as an audit of the undamaged repository leaves it.
    try {
      await runAudit({ repoPath, passphrase: READER_PASSPHRASE, keyFile: null, attributions: [], cachePath: cacheBase });
    } catch (e) {
      throw new Error(`the undamaged seed repository ${repo.name} does not audit: ${(e as Error).message}`);
    }
  }
  const target = isCache ? `${cacheBase}${input.file.slice(5) === 'history' ? '.history' : '.audit'}` : join(repoPath, input.file);
  let data = input.data;
  if (isCache && data === null && existsSync(target)) data = mutate(prng, readFileSync(target));
  if (data === null) rmSync(target, { force: true });
  else writeFileSync(target, data);
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<'hang'>((resolve) => {
    timer = setTimeout(() => resolve('hang'), timeLimitMs);
  });
  try {
    const work = (async () => {
      if (!isCache) await readers(repoPath, violations, prng);
      await expectClean(violations, 'runAudit', [BorgkeepError], async () => {
        try {
          const report = await runAudit({ repoPath, passphrase: input.passphrase ? READER_PASSPHRASE : null, keyFile: null, attributions: [], cachePath: input.cache ? cacheBase : null });
          outcome = `report ${report.verdict}`;
        } catch (e) {
          outcome = `could not audit (${(e as Error).message.split(/[:;(]/)[0].trim()})`;
          throw e;
        }
      });
    })();
    if ((await Promise.race([work, hang])) === 'hang') violations.push({ property: 'hang', message: `the readers did not finish within ${timeLimitMs} ms` });
  } finally {
    clearTimeout(timer);
    // Put the seed back for the next input.
    if (!isCache) {
      const original = repo.files.get(input.file);
      if (original) writeFileSync(join(repoPath, input.file), original);
      else rmSync(join(repoPath, input.file), { force: true });
    }
  }
  return { violations, outcome };
}
