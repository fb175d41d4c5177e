// The keyless re-encrypting proxy of a pull job (issue 16): the client's stock `borg create`
// talks borg's RPC protocol to this proxy as if it were `borg serve` on a repository of its own
// (the job path) encrypted with the job's key (job-key.ts). The proxy talks to the real
// repository through the server's own guarded session (runGuardSession, internal kind 'pull',
// role append), so the ledger, the archive rules and the compaction gate apply as to any client.
//
//   client ──▶ frames ──▶ decide ──┬─▶ answered here (negotiate, load_key, the synthetic manifest,
//                                  │   the job key's nonces, refusals)
//                                  └─▶ re-encrypted / merged ──▶ guard ──▶ borg serve ──▶ repository
//
// What the client may do: read the synthetic manifest (an empty archive list, TAM'd with the job
// key) and nothing else of the repository; put objects, each decrypted with the job key, its id
// checked against its plaintext, its compressed payload sealed again with the repository's key
// under AES-CTR counters reserved from the repository's nonce file (through the guard, before
// use, as borg's NonceManager does; no counter is used twice); delete only objects it put in this
// job (borg's checkpoints); write a manifest naming exactly one archive (the job's name or one of
// its checkpoints) whose metadata it put in this job, which the proxy merges into the real
// manifest; commit. Anything else is refused with one sentence the client prints, the job's
// outcome keeps the first refusal, and after a refusal nothing more of the session is written.
//
// Rules this file must keep:
//  - never forward a client frame: every request to the guard is the proxy's own, with its own
//    msgids, so the client's msgids never collide with them;
//  - every client request gets exactly one reply with its msgid, or the client hangs;
//  - no reply names the real repository, its path, or anything of its key; no secret in any
//    message, log or the ledger (the job passphrase goes only to the runner).

import { createHmac } from 'node:crypto';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';

import { microseconds } from '../archive/manifest-change.js';
import { runGuardSession, type GuardDeps, type GuardOutcome } from '../guard/guard.js';
import {
  KeyError,
  cipherBlocks,
  decompressPayload,
  decryptPayload,
  decryptPayloadInto,
  isEncrypted,
  objectId,
  objectIv,
  objectMode,
  sealObject,
  sealObjectInto,
  sealedLength,
  typeByteOf,
  type BorgKey,
  type KeyMode,
} from '../repository/borg-key.js';
import { latestIndexTransaction, openCommittedIndex, type CommittedIndex } from '../repository/hash-index.js';
import { MANIFEST_ID, archiveEntries, metadataTamKey, parseManifest, type Manifest } from '../repository/manifest.js';
import { createFrameSplitter } from '../rpc/frame-splitter.js';
import { readFrames } from '../rpc/frame-input.js';
import { createFramePool } from '../rpc/frame-pool.js';
import { CLIENT_LIMITS, FrameError, MsgMap, SERVER_LIMITS, decode, encode, scanFrame, type MsgValue } from '../rpc/msgpack.js';
import { encodeExceptionReply, encodeRequest, encodeRequestWithData, encodeResultReply, parseReply, parseRequest, type RpcReply, type RpcRequest } from '../rpc/messages.js';
import type { GuardStore, Repository } from '../store/types.js';
import type { DenyReason } from '../guard/grant-policy.js';
import { ClientCacheError, clientCacheFiles, everyChunkHeld, repositoryChunks } from './client-cache.js';
import { createJobKey, manifestTamKey, tamSalt, type JobKey } from './job-key.js';
import { CHECK, idHashOf, objcheck, type NativeVerifier } from '../native/objcheck.js';
import type { ClientCacheFiles, PullJobSession, PullJobTerms, PullSessionOutcome } from './types.js';

export interface PullProxyDeps {
  /** The installation's guard (src/gateway/guard-runtime.ts createGuardDeps). */
  readonly guard: GuardDeps;
  /**
   * The repository's unlocked key, null when borgkeep holds none; a throw (one sentence) when it
   * is held but cannot be used. Defaults to the guard's own source (the vault).
   */
  readonly repositoryKey?: (repository: Repository, repositoryPath: string) => BorgKey | null;
  readonly now?: () => Date;
}

/** The exception class of the proxy's refusals, which the borg client prints as one sentence. */
export const REFUSED_CLASS = 'PermissionDenied';
/** borg's NONCE_SPACE_RESERVATION: AES blocks reserved beyond what is needed now. */
const NONCE_SPACE_RESERVATION = 2n ** 28n;
/** How long the proxy's open waits for the repository's lock (another backup may hold it). */
const LOCK_WAIT_SECONDS = 600;
/** The plaintext scratch of a put: borg's largest chunk at its default chunker parameters (larger ones get a buffer of their own). */
const PLAIN_SCRATCH = 8 * 1024 * 1024;
/** Puts of this size and more are sealed into pooled buffers (sealPool in serveOne). */
const POOLED_FRAME = 64 * 1024;
/** The client_version the proxy tells the guard: borg 1.2's dict protocol. */
const PROXY_CLIENT_VERSION = [1, 2, 4, -1];

/** The reasons the ledger gives the refusal of a method no pull job may call. */
const OTHER_REASONS: Readonly<Record<string, DenyReason>> = {
  list: 'BK_DENY_ROLE',
  scan: 'BK_DENY_ROLE',
  check: 'BK_DENY_ROLE',
  save_key: 'BK_DENY_SAVE_KEY',
  break_lock: 'BK_DENY_BREAK_LOCK',
  destroy: 'BK_DENY_DESTROY',
  inject_exception: 'BK_DENY_INJECT',
};

class SessionOver extends Error {}

function isoMicro(us: bigint): string {
  const ms = Number(us / 1000n);
  const micro = String(us % 1_000_000n).padStart(6, '0');
  return `${new Date(ms).toISOString().slice(0, 19)}.${micro}`;
}

/** A map with raw keys sorted bytewise, as borg's StableDict packs. */
function stableMap(entries: Array<[string | Buffer, MsgValue]>): MsgMap {
  const keyed = entries.map(([k, v]) => [Buffer.isBuffer(k) ? k : Buffer.from(k, 'utf8'), v] as [Buffer, MsgValue]);
  keyed.sort((a, b) => Buffer.compare(a[0], b[0]));
  return new MsgMap(keyed);
}

/**
 * borg's pack_and_authenticate_metadata (crypto/key.py): the map packed with a `tam` of 64 zero
 * bytes of hmac and a fresh salt, the HMAC-SHA512 of that under the TAM key, packed again.
 */
export function packAuthenticated(entries: Array<[string | Buffer, MsgValue]>, tamKeyOf: (salt: Buffer) => Buffer): Buffer {
  const salt = tamSalt();
  const rest = entries.filter(([k]) => (Buffer.isBuffer(k) ? k.toString('latin1') : k) !== 'tam');
  const withTam = (hmac: Buffer): Buffer =>
    encode(stableMap([...rest, ['tam', stableMap([['type', Buffer.from('HKDF_HMAC_SHA512')], ['hmac', hmac], ['salt', salt]])]]));
  const hmac = createHmacSha512(tamKeyOf(salt), withTam(Buffer.alloc(64)));
  return withTam(hmac);
}

const createHmacSha512 = (key: Buffer, data: Buffer): Buffer => createHmac('sha512', key).update(data).digest();

/** The plaintext decoded when it is borg's archive metadata (a map with name, items, cmdline, time); else null. */
/** borg 1.2's own figures in an archive's metadata (`nfiles`, `size`: original bytes), when it wrote them. */
function figuresOf(meta: MsgMap | undefined): { files: number; bytes: number } | null {
  const files = meta?.get('nfiles');
  const bytes = meta?.get('size');
  return typeof files === 'number' && typeof bytes === 'number' ? { files, bytes } : null;
}

function archiveMetadata(plain: Buffer): MsgMap | null {
  const b = plain[0];
  if (b === undefined || !((b >= 0x80 && b <= 0x8f) || b === 0xde)) return null;
  const r = scanFrame(plain, 0, { maxArrayLen: 10_000_000, maxMapLen: 100, maxStrLen: 20 * 1024 * 1024, maxFrameSize: 60 * 1024 * 1024, maxDepth: 8 });
  if (r.kind !== 'complete' || r.end !== plain.length) return null;
  const v = decode(plain);
  if (!(v instanceof MsgMap)) return null;
  return Array.isArray(v.get('items')) && Buffer.isBuffer(v.get('name')) && v.has('cmdline') && Buffer.isBuffer(v.get('time')) ? v : null;
}

const short = (id: Buffer): string => `${id.subarray(0, 8).toString('hex')}…`;

/** Names a job may give its archive: the job's, and borg's checkpoints of it. */
export function archiveNameAllowed(name: Buffer, archiveName: string): boolean {
  const text = name.toString('utf8');
  if (!Buffer.from(text, 'utf8').equals(name)) return false;
  if (text === archiveName) return true;
  if (!text.startsWith(`${archiveName}.checkpoint`)) return false;
  return /^(|\.\d+)$/.test(text.slice(archiveName.length + '.checkpoint'.length));
}

/**
 * One job's keyless session factory. Throws KeyError (one sentence) when borgkeep holds no usable
 * key for the repository, or its encryption cannot have a job key.
 */
export function createPullJobSession(deps: PullProxyDeps, terms: PullJobTerms): PullJobSession {
  const repository = terms.repository;
  const repositoryPath = join(deps.guard.reposDir, repository.dirName);
  const keySource = deps.repositoryKey ?? deps.guard.repositoryKey;
  let repoKey: BorgKey | null = null;
  try {
    repoKey = keySource?.(repository, repositoryPath) ?? null;
  } catch (error) {
    throw new KeyError(`the key of repository '${repository.name}' cannot be used: ${(error as Error).message}`);
  }
  if (!repoKey) throw new KeyError(`borgkeep does not hold the key of repository '${repository.name}'; hand it over with 'borgkeep repo key ${repository.name} --passphrase-file FILE'`);
  // The job key's MAC and id hash are the repository's: HMAC-SHA256 for 32-byte id keys, borg's
  // BLAKE2b construction for 128-byte ones. Whether the repository's objects really are
  // encrypted that way is checked against its committed manifest when a session opens it.
  let job: JobKey | null = createJobKey(repoKey, repoKey.idKey.length === 128 ? 'repokey-blake2' : 'repokey');
  /** The job key's nonce file: the job's own AES-CTR counter space (its keys are fresh, nothing else uses them). */
  let jobNonce: bigint | null = null;
  let running = false;

  /**
   * The synthetic manifest the client reads: an empty archive list, the real manifest's config
   * (its feature flags) and item keys, TAM'd and sealed with the job key at the job's next counter
   * (which then moves past it). Its plaintext's id hash is what borg calls the manifest's id.
   */
  const makeSynthetic = async (m: Manifest, jk: JobKey): Promise<{ envelope: Buffer; plain: Buffer; timestamp: string }> => {
    const now = deps.now ?? (() => new Date());
    const config = m.config ? decode(m.config) : null;
    const configEntries: Array<[Buffer, MsgValue]> = config instanceof MsgMap ? (config.entries.filter(([k]) => Buffer.isBuffer(k)) as Array<[Buffer, MsgValue]>) : [];
    // Now, not the repository's: when it was last written is none of the client's business.
    const timestamp = isoMicro(BigInt(now().getTime()) * 1000n);
    const plain = packAuthenticated(
      [
        ['version', 1],
        ['archives', new MsgMap()],
        ['timestamp', Buffer.from(timestamp)],
        ['config', stableMap([...configEntries.filter(([k]) => k.toString('latin1') !== 'tam_required'), ['tam_required', true]])],
        ['item_keys', (m.itemKeys ?? []).map((k) => Buffer.from(k, 'latin1'))],
      ],
      (salt) => manifestTamKey(jk.key, salt),
    );
    const payload = Buffer.concat([Buffer.from([0, 0]), plain]);
    const iv = jobNonce ?? 0n;
    jobNonce = iv + cipherBlocks(payload.length + 41);
    return { envelope: await sealObject(payload, jk.mode, jk.key, iv), plain, timestamp };
  };

  /**
   * The synthetic manifest fixed before the job for the client's cache (clientCache), with the
   * chunks file that cache lists and the index transaction it was read from.
   */
  let fixed: { envelope: Buffer; chunks: Buffer; transactionId: number } | null = null;

  const clientCache = async (): Promise<ClientCacheFiles> => {
    const jk = job;
    const rk = repoKey;
    if (!jk || !rk) throw new Error('the pull job is over: its key was forgotten');
    let read: Awaited<ReturnType<typeof repositoryChunks>>;
    try {
      read = await repositoryChunks(repositoryPath, rk);
    } catch (error) {
      throw new ClientCacheError(`the repository could not be read for the client's cache (${(error as Error).message})`);
    }
    if ((read.mode.endsWith('blake2') ? 'repokey-blake2' : 'repokey') !== jk.mode) throw new ClientCacheError("borgkeep's key does not fit the repository's encryption");
    const synthetic = await makeSynthetic(read.manifest, jk);
    // borg's Manifest.load: manifest.id = key.id_hash(decrypted plaintext); the job key's id key is the repository's.
    const manifestId = await objectId(jk.mode, jk.key, synthetic.plain);
    const files = clientCacheFiles({ repositoryId: jk.key.repositoryId, manifestId, timestamp: synthetic.timestamp, keyMode: jk.mode }, read.entries);
    fixed = { envelope: synthetic.envelope, chunks: files.files.find((f) => f.path === 'chunks')!.content!, transactionId: read.transactionId };
    return files;
  };

  const serve: PullJobSession['serve'] = async (io) => {
    if (!job || !repoKey) throw new Error('the pull job is over: its key was forgotten');
    if (running) {
      io.output.end();
      return { committed: false, refusal: 'a second connection came while the job had one open; it was refused', sessionId: null };
    }
    running = true;
    try {
      return await serveOne(io, job, repoKey);
    } finally {
      running = false;
    }
  };

  const serveOne = async (io: Parameters<PullJobSession['serve']>[0], jk: JobKey, rk: BorgKey): Promise<PullSessionOutcome> => {
    const now = deps.now ?? (() => new Date());
    let refusal: string | null = null;
    let received = 0;
    const denialsNoted = new Set<string>();
    const ledgerWrites: Array<Promise<unknown>> = [];
    // The ledger session the guard starts for this connection: the proxy's refusals are recorded in it.
    let sessionIdIs: (id: number) => void = () => undefined;
    const sessionIdKnown = new Promise<number>((resolve) => (sessionIdIs = resolve));
    const store = new Proxy(deps.guard.store, {
      get(target, prop) {
        if (prop === 'startSession') {
          return async (...args: Parameters<GuardStore['startSession']>) => {
            const id = await target.startSession(...args);
            sessionIdIs(id);
            return id;
          };
        }
        const v = Reflect.get(target, prop, target) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    let committedFinal = false;
    /** The figures borg wrote into the archive's metadata (its own count of files and bytes read), of the transaction and of the committed final archive. */
    let txnFigures: { files: number; bytes: number } | null = null;
    let committedFigures: { files: number; bytes: number } | null = null;
    /** After a refusal (or a failure the session cannot recover from) nothing more is written. */
    let doomed = false;
    /**
     * The refusal or failure that doomed the session, as the client was told it: every later write
     * is answered with it. borg holds the errors of its asynchronous puts and reports the last one
     * it holds, so an answer "an earlier call failed" would hide the cause (the job's reason said
     * that instead of "no space left" when two puts failed before borg looked).
     */
    let doomedBy: { exceptionClass: string; message: string } | null = null;

    // --- the guarded session behind the proxy ---------------------------------------------------
    const guardIn = new PassThrough();
    // The buffers puts are sealed into, shared with the guard's reading of guardIn: one goes back
    // once the guard forwarded the put (its release) and the proxy has the reply (handlePut), so
    // the next put is sealed into memory already mapped instead of ~2 MiB of fresh pages.
    const sealPool = createFramePool();
    /** A small put gets memory of its own (the pool's least is 256 KiB); see sealPool. */
    const sealInto = (size: number): Buffer => (size >= POOLED_FRAME ? sealPool.take(size) : Buffer.allocUnsafe(size));
    const guardStop = new AbortController();
    // borg serve's messages (and the guard's) stay on the server: they may name the repository.
    // What went wrong reaches the client as the reply to its call, and the guard's refusals are
    // in the ledger.
    const errSink = new Writable({ write: (_chunk, _enc, done) => done() });
    const guardReplies = new Map<number, (r: RpcReply | null) => void>();
    const splitter = createFrameSplitter(CLIENT_LIMITS);
    const guardOut = new Writable({
      write(chunk: Buffer, _enc, done) {
        try {
          for (const frame of splitter.push(chunk)) {
            const reply = parseReply(Buffer.from(frame));
            if (!reply) continue;
            const waiter = guardReplies.get(reply.msgid);
            guardReplies.delete(reply.msgid);
            waiter?.(reply);
          }
        } catch {
          // A reply the proxy cannot read: the guard never sends one; the session fails below.
        }
        done();
      },
    });
    let guardOver = false;
    const guardSession: Promise<GuardOutcome | null> = runGuardSession({ ...deps.guard, store }, {
      keyRef: 'pull',
      clientAddress: null,
      logLevel: null,
      input: guardIn,
      output: guardOut,
      errOutput: errSink,
      framePool: sealPool,
      // Not the job's stop directly: a stopped job still removes its checkpoints (below) first.
      stop: guardStop.signal,
      internal: { kind: 'pull', repository, role: 'append' },
    })
      .then(async (o) => {
        if (o.ledgerWritten) await o.ledgerWritten;
        return o;
      })
      .catch(() => null)
      .finally(() => {
        guardOver = true;
        for (const [, w] of guardReplies) w(null);
        guardReplies.clear();
      });

    let guardMsgid = 0;
    let guardDrained: Promise<unknown> | null = null;
    /** One request of the proxy's own to the guard; null when the guarded session is over. */
    const guardCall = async (method: string, args: ReadonlyArray<[string, MsgValue]>, format: 'tuple' | 'dict' = 'dict'): Promise<RpcReply | null> => {
      const msgid = ++guardMsgid;
      return guardSend(msgid, encodeRequest(format, msgid, method, new Map(args)));
    };
    /** A request already encoded under `msgid` (from ++guardMsgid) to the guard: its reply, or null. */
    /** Sends a frame to the guard; settles once the guard took it in, and `onReply` gets the guard's answer (null: none will come). */
    const guardPut = async (msgid: number, frame: Buffer, onReply: (r: RpcReply | null) => void): Promise<void> => {
      if (guardOver) return onReply(null);
      guardReplies.set(msgid, onReply);
      if (!guardIn.write(frame)) {
        // One wait for the drain shared by every put behind it (a listener each tripped Node's
        // MaxListenersExceededWarning with a dozen puts waiting).
        guardDrained ??= Promise.race([new Promise((r) => guardIn.once('drain', r)), guardSession]).finally(() => (guardDrained = null));
        await guardDrained;
      }
    };
    const guardSend = (msgid: number, frame: Buffer): Promise<RpcReply | null> => new Promise((resolve) => void guardPut(msgid, frame, resolve));
    /** The guard's answer as what it says went wrong, or null when it is a result. */
    const failed = (r: RpcReply | null): string | null => (r === null ? 'the repository session ended' : r.exceptionClass === null ? null : r.exceptionClass);
    const guardText = (r: RpcReply | null): string => {
      const v = r?.value instanceof MsgMap ? r.value.get('exception_short') : undefined;
      return Array.isArray(v) ? v.map((x) => (Buffer.isBuffer(x) ? x.toString('utf8') : '')).join(' ').trim() : '';
    };

    // --- writing to the client ------------------------------------------------------------------
    let outputChain: Promise<void> = Promise.resolve();
    io.output.on('error', () => undefined);
    const sendClient = (buf: Buffer): void => {
      outputChain = outputChain.then(async () => {
        const out = io.output as NodeJS.WritableStream & { destroyed?: boolean; writableEnded?: boolean };
        if (out.destroyed || out.writableEnded) return;
        if (!out.write(buf)) await new Promise<void>((r) => { out.once('drain', () => r()); out.once('close', () => r()); });
      });
    };
    const answer = (req: RpcRequest, result: MsgValue): void => sendClient(encodeResultReply(req.format, req.msgid, result));
    /** Refuses a call of the client: its reply, the job's refusal, a denial in the ledger (once per method and reason). */
    const refuse = (req: RpcRequest, why: string, reason: DenyReason): void => {
      const message = `borgkeep refused ${req.method}: ${why}.`;
      refusal ??= message;
      doomed = true;
      doomedBy ??= { exceptionClass: REFUSED_CLASS, message };
      sendClient(encodeExceptionReply(req.format, req.msgid, { exceptionClass: REFUSED_CLASS, message }));
      const k = `${req.method} ${reason}`;
      if (denialsNoted.has(k)) return;
      denialsNoted.add(k);
      const at = now();
      // The guard's session's ledger row: the history and the alerts (a denial) show it as any refusal.
      ledgerWrites.push(
        sessionIdKnown
          .then((sessionId) => deps.guard.store.recordDenial({ sessionId, keyId: null, repositoryId: repository.id, method: req.method, reason, message, at }))
          .catch(() => undefined),
      );
    };
    /** A write after the session was doomed: answered with what doomed it, not a new refusal of the job. */
    const refuseAfter = (req: RpcRequest): void => {
      const said = doomedBy ?? {
        exceptionClass: REFUSED_CLASS,
        message: `borgkeep refused ${req.method}: an earlier call of this job ${refusal ? 'was refused' : 'failed'}, so nothing more is written.`,
      };
      sendClient(encodeExceptionReply(req.format, req.msgid, said));
    };
    /** An error the client prints that is no refusal of what it did (the repository was busy, it failed). */
    const fail = (req: RpcRequest, exceptionClass: string, message: string): void => {
      if (doomed) doomedBy ??= { exceptionClass, message };
      sendClient(encodeExceptionReply(req.format, req.msgid, { exceptionClass, message }));
    };
    /**
     * The guard's answer to a request made for the client, relayed under the client's msgid. An
     * exception is shown as its class only (its text may name the real repository); a refusal by
     * the guard is a refusal of the job.
     */
    const relay = (req: RpcRequest, r: RpcReply | null, onOk?: () => void): void => {
      const why = failed(r);
      if (why === null) {
        onOk?.();
        answer(req, r!.result);
        return;
      }
      doomed = true;
      if (why === 'PermissionDenied') {
        refusal ??= guardText(r) || `the repository refused ${req.method}`;
        fail(req, REFUSED_CLASS, `borgkeep refused ${req.method}: the repository's rules do not allow it.`);
      } else if (r === null) {
        fail(req, 'ConnectionClosed', `the server's repository session ended before ${req.method} was answered; nothing more of this job is committed.`);
      } else if (/No space left on device|\[Errno 28\]/.test(r.frame.toString('latin1'))) {
        // A full disk said as such (found by test/pull/pull-restart.test.ts: the job's reason was
        // "refused put (OSError)"); only the cause is told, never borg's text with its path.
        fail(req, why, `the server's repository has no space left on its disk (${req.method}); nothing more of this job is committed.`);
      } else {
        fail(req, why, `the server's repository refused ${req.method} (${why}); nothing more of this job is committed.`);
      }
    };

    // --- the repository as opened through the guard --------------------------------------------
    let repoMode: KeyMode | null = null;
    let realManifest: Manifest | null = null;
    let index: CommittedIndex | null = null;
    const refreshIndex = (): void => {
      index?.close();
      index = null;
      const n = latestIndexTransaction(repositoryPath);
      if (n !== null) index = openCommittedIndex(repositoryPath, n);
    };
    /** Objects put in this job (this session), by id hex. */
    let jobPuts = new Set<string>();
    /** jobPuts as of the last commit: what a job that ends without its archive removes again. */
    let committedPuts = new Set<string>();
    /** Archive metadata the client put, by id hex: its plaintext, re-authenticated at the manifest put. */
    const metadataPuts = new Map<string, MsgMap>();
    /** Client archive metadata id hex -> the id of the same metadata as stored (re-authenticated with the repository key). */
    const storedAs = new Map<string, Buffer>();
    /** The archive names this job has in the real manifest as committed, and those of the open transaction. */
    let committedNames = new Set<string>();
    let txnNames: Set<string> | null = null;
    let txnWrites = 0;

    // The repository key's counters: reserved from the real nonce file through the guard before
    // any is used (borg's NonceManager.ensure_reservation), then used in order.
    let nextIv: bigint | null = null;
    let reservedEnd: bigint | null = null;
    let manifestNonce = 0n;
    const reserveIv = async (blocks: bigint): Promise<bigint | string> => {
      if (nextIv !== null && reservedEnd !== null && nextIv + blocks <= reservedEnd) {
        const iv = nextIv;
        nextIv += blocks;
        return iv;
      }
      const free = await guardCall('get_free_nonce', []);
      if (failed(free)) return `the repository's nonce could not be read (${failed(free)})`;
      const repoFree = free!.result === null ? null : BigInt(free!.result as number | bigint);
      let start = manifestNonce;
      for (const x of [repoFree, reservedEnd]) if (x !== null && x > start) start = x;
      const end = start + blocks + NONCE_SPACE_RESERVATION;
      const done = await guardCall('commit_nonce_reservation', [
        ['next_unreserved', end],
        ['start_nonce', repoFree],
      ]);
      if (failed(done)) return `the repository's nonce could not be reserved (${failed(done)})`;
      reservedEnd = end;
      nextIv = start + blocks;
      return start;
    };
    const seal = async (payload: Buffer): Promise<Buffer | string> => {
      const iv = await reserveIv(cipherBlocks(payload.length));
      if (typeof iv === 'string') return iv;
      return sealObject(payload, repoMode!, rk, iv);
    };

    /** The repository's current manifest, read through the guard and opened with its key. */
    const readRealManifest = async (): Promise<Manifest | string> => {
      const r = await guardCall('get', [['id', MANIFEST_ID]]);
      if (failed(r)) return `its manifest could not be read (${failed(r)})`;
      const envelope = r!.result;
      if (!Buffer.isBuffer(envelope)) return 'its manifest could not be read';
      const mode = objectMode(envelope);
      if (!mode || !isEncrypted(mode)) return `a pull job needs an encrypted repository, and this one is ${mode ?? 'of an unknown kind'}`;
      if ((mode.endsWith('blake2') ? 'repokey-blake2' : 'repokey') !== jk.mode) return "borgkeep's key does not fit the repository's encryption";
      let m: Manifest;
      try {
        m = parseManifest(await decompressPayload(await decryptPayload(envelope, mode, rk)), rk, true);
      } catch (error) {
        return `its manifest does not open with the key borgkeep holds (${(error as Error).message})`;
      }
      if (m.tam === 'invalid' || (m.tam === 'missing' && rk.tamRequired)) return "its manifest fails its authentication (TAM) check with the key borgkeep holds";
      repoMode = mode;
      // borg's init_ciphers: the next counter is at least past the manifest's own.
      const after = objectIv(envelope) + cipherBlocks(envelope.length);
      if (after > manifestNonce) manifestNonce = after;
      return m;
    };

    // --- the synthetic manifest ----------------------------------------------------------------
    // The one fixed for the client's cache when it still holds (set at open), else one of its own.
    let synthetic: Buffer | null = null;
    const syntheticManifest = async (): Promise<Buffer> => {
      synthetic ??= (await makeSynthetic(realManifest!, jk)).envelope;
      return synthetic;
    };

    // --- the client's calls ---------------------------------------------------------------------
    let negotiated = false;
    let opened = false;
    let openTried = false;

    const handleOpen = async (req: RpcRequest): Promise<void> => {
      if (openTried) return refuse(req, 'a session may open one repository only, once', 'BK_DENY_SECOND_OPEN');
      openTried = true;
      if (req.args.get('create') === true) return refuse(req, 'a pull job cannot create a repository', 'BK_DENY_CREATE');
      if (req.args.get('lock') === false) return refuse(req, 'a pull job opens its repository with a lock', 'BK_DENY_UNLOCKED_WRITE');
      const r = await guardCall('open', [
        ['path', Buffer.from(`/./${repository.name}`)],
        ['create', false],
        ['lock_wait', LOCK_WAIT_SECONDS],
        ['lock', true],
        ['exclusive', true],
        ['append_only', false],
        ['make_parent_dirs', false],
      ]);
      const why = failed(r);
      if (why !== null) {
        doomed = true;
        return fail(req, why === 'LockTimeout' ? 'LockTimeout' : 'ConnectionClosed', `borgkeep could not open the repository of this job (${why}); the job fails and may be tried again.`);
      }
      // borg serve replays the index if it is behind (as the guard does before its first write).
      const len = await guardCall('__len__', []);
      if (failed(len)) {
        doomed = true;
        return fail(req, 'ConnectionClosed', `borgkeep could not read the repository of this job (${failed(len)}); the job fails.`);
      }
      const m = await readRealManifest();
      if (typeof m === 'string') {
        doomed = true;
        refusal ??= `the repository cannot take a pull backup: ${m}`;
        return fail(req, REFUSED_CLASS, 'borgkeep cannot take a pull backup into this repository now; the job fails (an admin sees why).');
      }
      realManifest = m;
      try {
        refreshIndex();
      } catch {
        doomed = true;
        return fail(req, 'ConnectionClosed', 'borgkeep could not read the repository index of this job; the job fails.');
      }
      // The client's cache lists chunks as of when it was built: it is served its manifest only if
      // the repository still holds every one of them (the lock is held from here to the end of the
      // job, so nothing goes meanwhile). Otherwise the client gets another manifest, resynchronises
      // to an empty index and uploads every chunk, as without a cache: never an archive that
      // counts on a chunk the repository lost.
      if (fixed) {
        const ix = index as CommittedIndex | null;
        const f = fixed;
        if (ix && (ix.transactionId === f.transactionId || everyChunkHeld(f.chunks, (id) => ix.lookup(id) !== undefined))) synthetic = f.envelope;
      }
      opened = true;
      // The job's own repository id: the client's security directory and cache are the job's.
      answer(req, jk.key.repositoryId);
    };

    // Where a put's payload is opened and, when lz4 has something to decompress, its plaintext
    // goes: reused from one put to the next (the session takes one request at a time), so an
    // object costs no buffer of its size but the frame it is sent on.
    let payloadScratch = Buffer.alloc(0);
    let plainScratch: Buffer | null = null;
    // The native checker (native/objcheck.c), where it was built, opens a put with the job's keys
    // (MAC, decryption, lz4, the id under the repository's id key) in one call and seals it with
    // the repository's; what it does not take on (another compressor, any failure, for the
    // sentence) goes the JavaScript way below.
    const native = objcheck();
    let opener: NativeVerifier | null = null;
    let sealer: NativeVerifier | null = null;
    const nativeId = Buffer.alloc(32);
    const nativeInfo = new Int32Array(2);
    const iv8 = Buffer.alloc(8);
    /** The put opened natively: its payload and plaintext (views of the scratches) and computed id, or null. */
    const openNatively = (data: Buffer): { payload: Buffer; plain: Buffer; computed: Buffer } | null => {
      if (!native || data[0] !== typeByteOf(jk.mode)) return null;
      // Its MAC is not checked: the client seals with the job key, so a MAC that verifies proves
      // only what the job's connection already proved (who sent it). What counts is checked: the
      // plaintext's id under the repository's id key, which the client cannot forge.
      opener ??= native.createVerifier(idHashOf(jk.mode), true, rk.idKey, jk.key.encHmacKey, jk.key.encKey, false);
      plainScratch ??= Buffer.allocUnsafe(PLAIN_SCRATCH);
      if (native.check(opener, data, payloadScratch, plainScratch, nativeId, nativeInfo) !== CHECK.ok) return null;
      const payload = payloadScratch.subarray(0, nativeInfo[0]);
      const plain = payload[0] === 0 && payload[1] === 0 ? payload.subarray(2) : plainScratch.subarray(0, nativeInfo[1]);
      return { payload, plain, computed: nativeId };
    };
    const handlePut = async (req: RpcRequest): Promise<void> => {
      const id = req.args.get('id');
      const data = req.args.get('data');
      if (!Buffer.isBuffer(id) || id.length !== 32 || !Buffer.isBuffer(data)) return refuse(req, 'its arguments are not an object id and its data', 'BK_DENY_BAD_ARGS');
      if (doomed) return refuseAfter(req);
      if (id.equals(MANIFEST_ID)) return handleManifestPut(req, data);
      if (payloadScratch.length < data.length) payloadScratch = Buffer.allocUnsafe(Math.max(data.length, 2 * payloadScratch.length));
      let opened = openNatively(data);
      if (!opened) {
        try {
          const payload = payloadScratch.subarray(0, await decryptPayloadInto(data, jk.mode, jk.key, payloadScratch));
          plainScratch ??= Buffer.allocUnsafe(PLAIN_SCRATCH);
          const plain = await decompressPayload(payload, 0, plainScratch);
          opened = { payload, plain, computed: await objectId(repoMode!, rk, plain) };
        } catch (error) {
          return refuse(req, `object ${short(id)} does not open with the job's key (${(error as Error).message})`, 'BK_DENY_OBJECT_ENVELOPE');
        }
      }
      const { payload, plain, computed } = opened;
      if (!computed.equals(id)) return refuse(req, `object ${short(id)}: its content does not match its id`, 'BK_DENY_OBJECT_ID');
      const hex = id.toString('hex');
      // Kept past this put: parsed again from a copy of its own (plain is a view of the scratch).
      if (archiveMetadata(plain)) metadataPuts.set(hex, archiveMetadata(Buffer.from(plain))!);
      // Already in the repository (the same id is the same content under the same id key), or
      // already put in this job: nothing to write. The append role may not overwrite anyway.
      if (jobPuts.has(hex) || index?.lookup(id) !== undefined) return answer(req, null);
      const iv = await reserveIv(cipherBlocks(payload.length));
      if (typeof iv === 'string') {
        doomed = true;
        return fail(req, 'ConnectionClosed', `borgkeep could not store object ${short(id)}: ${iv}.`);
      }
      jobPuts.add(hex);
      txnWrites++;
      // Asynchronous calls carry no `wait` (borg's stub keeps an explicit wait local): kept as sent.
      const args = new Map<string, MsgValue>([['id', id]]);
      if (req.args.has('wait')) args.set('wait', req.args.get('wait') as MsgValue);
      // Sealed straight into the frame that goes to the guard.
      const msgid = ++guardMsgid;
      const { frame, dataAt } = encodeRequestWithData(msgid, 'put', args, 'data', sealedLength(payload.length), sealInto);
      if (native && iv + cipherBlocks(payload.length) < 2n ** 64n) {
        sealer ??= native.createVerifier(idHashOf(repoMode!), true, rk.idKey, rk.encHmacKey, rk.encKey, true);
        iv8.writeBigUInt64BE(iv);
        native.seal(sealer, typeByteOf(repoMode!), iv8, payload, frame, dataAt);
      } else await sealObjectInto(payload, repoMode!, rk, iv, frame, dataAt); // which refuses a counter past 2^64
      // Out of the proxy's hands, and written into no more: see sealPool.
      sealPool.handOut(frame);
      sealPool.retire(frame);
      // The next request is read once the guard took this one (backpressure: borg serve's pace
      // reaches the client, and a few puts are in memory at a time, not the whole backup).
      await guardPut(msgid, frame, (r) => {
        sealPool.release(frame);
        relay(req, r);
      });
    };

    const handleDelete = (req: RpcRequest): void => {
      const id = req.args.get('id');
      if (!Buffer.isBuffer(id) || id.length !== 32) return refuse(req, 'its argument is not an object id', 'BK_DENY_BAD_ARGS');
      if (doomed) return refuseAfter(req);
      const hex = id.toString('hex');
      // borg deletes the previous checkpoint's archive metadata: stored re-authenticated under another id.
      const target = storedAs.get(hex) ?? id;
      if (!jobPuts.has(target.toString('hex'))) return refuse(req, `object ${short(id)} was not written by this job, and a job deletes only its own objects`, 'BK_DENY_DELETE_OLD');
      jobPuts.delete(target.toString('hex'));
      txnWrites++;
      const args: Array<[string, MsgValue]> = [['id', target]];
      if (req.args.has('wait')) args.push(['wait', req.args.get('wait') as MsgValue]);
      void guardCall('delete', args).then((r) => relay(req, r));
    };

    /**
     * The archive's metadata as the repository keeps it: borg 1.2.4 authenticates it (its `tam`)
     * with the writer's key, here the job's. borg 1.2.5 and later check that TAM against the
     * repository's key (CVE-2023-36811) and would take the archive for a forged one, so it is
     * authenticated again with the repository's key; that changes its bytes and so its id, and
     * the manifest names the new id. Returns the stored id, or why not.
     */
    const storeMetadata = async (clientId: Buffer, name: Buffer): Promise<Buffer | string> => {
      const hex = clientId.toString('hex');
      const done = storedAs.get(hex);
      if (done) return done;
      const meta = metadataPuts.get(hex);
      if (!meta) return `the archive's metadata ${short(clientId)} was not written by this job`;
      if (!(meta.get('name') as Buffer).equals(name)) return "the archive's metadata names another archive than the manifest does";
      const plain = packAuthenticated(meta.entries as Array<[Buffer, MsgValue]>, (salt) => metadataTamKey(rk, salt, 'archive'));
      const id = await objectId(repoMode!, rk, plain);
      const sealed = await seal(Buffer.concat([Buffer.from([0, 0]), plain]));
      if (typeof sealed === 'string') return sealed;
      const put = await guardCall('put', [['id', id], ['data', sealed], ['wait', true]]);
      if (failed(put)) return `the archive's metadata could not be stored (${failed(put)})`;
      jobPuts.add(id.toString('hex'));
      txnWrites++;
      // The client's form (TAM'd with the job key) is of no use to anyone: gone in the same transaction.
      if (jobPuts.has(hex)) {
        const del = await guardCall('delete', [['id', clientId], ['wait', true]]);
        if (failed(del)) return `the archive's first form could not be removed (${failed(del)})`;
        jobPuts.delete(hex);
      }
      storedAs.set(hex, id);
      return id;
    };

    const handleManifestPut = async (req: RpcRequest, data: Buffer): Promise<void> => {
      let client: Manifest;
      try {
        client = parseManifest(await decompressPayload(await decryptPayload(data, jk.mode, jk.key)), jk.key, true);
      } catch (error) {
        return refuse(req, `the manifest does not open with the job's key (${(error as Error).message})`, 'BK_DENY_OBJECT_ENVELOPE');
      }
      if (client.tam !== 'ok') return refuse(req, "the manifest's authentication (TAM) does not verify with the job's key", 'BK_DENY_ARCHIVE_RULE');
      const entries = [...archiveEntries(client.archivesBody)];
      if (entries.length !== 1) return refuse(req, `the job adds exactly one archive, '${terms.archiveName}', and this manifest names ${entries.length}`, 'BK_DENY_ARCHIVE_RULE');
      const [rawName, rawEntry] = entries[0]!;
      const name = Buffer.from(rawName, 'latin1');
      if (!archiveNameAllowed(name, terms.archiveName)) {
        return refuse(req, `the job's archive is named '${terms.archiveName}', not '${name.toString('utf8').slice(0, 255)}'`, 'BK_DENY_ARCHIVE_RULE');
      }
      const entry = decode(Buffer.from(rawEntry, 'latin1'));
      const clientId = entry instanceof MsgMap ? entry.get('id') : undefined;
      const time = entry instanceof MsgMap ? entry.get('time') : undefined;
      if (!Buffer.isBuffer(clientId) || clientId.length !== 32 || !Buffer.isBuffer(time)) return refuse(req, "the manifest's archive entry is not one borg writes", 'BK_DENY_ARCHIVE_RULE');
      const storedId = await storeMetadata(clientId, name);
      if (typeof storedId === 'string') {
        if (storedId.startsWith("the archive's metadata") && !storedId.includes('could not')) return refuse(req, storedId, 'BK_DENY_ARCHIVE_RULE');
        doomed = true;
        return fail(req, 'ConnectionClosed', `borgkeep could not write the job's archive: ${storedId}.`);
      }

      // Merged into the real manifest as it is now (the session holds the repository's lock, so
      // only this job changed it since it was read): this job's earlier archive names go (borg
      // drops the previous checkpoint the same way), every other archive stays as it is written.
      const real = await readRealManifest();
      if (typeof real === 'string') {
        doomed = true;
        return fail(req, 'ConnectionClosed', `borgkeep could not read the repository's manifest: ${real}.`);
      }
      const mine = new Set([...committedNames, ...(txnNames ?? [])]);
      const kept: Array<[Buffer, MsgValue]> = [];
      for (const [n, e] of archiveEntries(real.archivesBody)) {
        const nameBytes = Buffer.from(n, 'latin1');
        if (mine.has(n)) continue;
        if (nameBytes.equals(name)) return refuse(req, `the repository already has an archive named '${name.toString('utf8')}'`, 'BK_DENY_ARCHIVE_RULE');
        kept.push([nameBytes, decode(Buffer.from(e, 'latin1'))]);
      }
      kept.push([name, stableMap([['id', storedId], ['time', time]])]);
      const sealed = await sealManifest(real, kept, client.itemKeys ?? []);
      if (typeof sealed === 'string') {
        doomed = true;
        return fail(req, 'ConnectionClosed', `borgkeep could not write the manifest: ${sealed}.`);
      }
      const r = await guardCall('put', [['id', MANIFEST_ID], ['data', sealed], ['wait', true]]);
      txnWrites++;
      relay(req, r, () => {
        txnNames = new Set([rawName]);
        txnFigures = figuresOf(metadataPuts.get(Buffer.isBuffer(clientId) ? clientId.toString('hex') : ''));
      });
    };

    /**
     * The real manifest with `archives` as its archive list, as borg's Manifest.write writes it
     * (its config kept as written, the timestamp strictly after the last one), TAM'd with the
     * repository's key and sealed with it; or why not.
     */
    const sealManifest = async (real: Manifest, archives: Array<[Buffer, MsgValue]>, clientItemKeys: readonly string[]): Promise<Buffer | string> => {
      const nowUs = BigInt(now().getTime()) * 1000n;
      // The same reading of borg's timestamps as the archive rules' judgement of this manifest.
      const prevUs = microseconds(real.timestamp);
      const ts = isoMicro(prevUs !== null && prevUs >= nowUs ? prevUs + 1n : nowUs);
      const itemKeys = [...new Set([...(real.itemKeys ?? []), ...clientItemKeys])].sort().map((k) => Buffer.from(k, 'latin1'));
      const config = real.config ? decode(real.config) : stableMap([['tam_required', true]]);
      const plain = packAuthenticated(
        [
          ['version', 1],
          ['archives', stableMap(archives)],
          ['timestamp', Buffer.from(ts)],
          ['config', config],
          ['item_keys', itemKeys],
        ],
        (salt) => manifestTamKey(rk, salt),
      );
      return seal(Buffer.concat([Buffer.from([0, 0]), plain]));
    };

    /**
     * A job that ends without its archive (the client died, the job was stopped, a refusal) may
     * have committed checkpoints: a partial archive. They go again, with every object this job
     * committed (only its own archives can refer to objects that were new in its session): the
     * repository is left with no archive of the job. Best effort: what fails stays for the
     * audit and `borg check` to see.
     */
    const removeCheckpoints = async (): Promise<void> => {
      if (committedFinal || committedNames.size === 0 || guardOver) return;
      const rb = await guardCall('rollback', []);
      if (failed(rb)) return;
      jobPuts = new Set(committedPuts);
      const real = await readRealManifest();
      if (typeof real === 'string') return;
      const kept: Array<[Buffer, MsgValue]> = [];
      for (const [n, e] of archiveEntries(real.archivesBody)) if (!committedNames.has(n)) kept.push([Buffer.from(n, 'latin1'), decode(Buffer.from(e, 'latin1'))]);
      const deletes = [...jobPuts].map((hex) => guardCall('delete', [['id', Buffer.from(hex, 'hex')]]));
      if ((await Promise.all(deletes)).some((r) => failed(r) !== null)) return;
      const sealed = await sealManifest(real, kept, []);
      if (typeof sealed === 'string') return;
      if (failed(await guardCall('put', [['id', MANIFEST_ID], ['data', sealed], ['wait', true]]))) return;
      if (failed(await guardCall('commit', [['compact', false]]))) return;
      committedNames = new Set();
      committedPuts = new Set();
      jobPuts = new Set();
    };

    const handleCommit = async (req: RpcRequest): Promise<void> => {
      if (doomed) return refuseAfter(req);
      if (txnWrites > 0 && !txnNames) return refuse(req, 'a pull job commits only together with its archive in the manifest', 'BK_DENY_ARCHIVE_RULE');
      const args: Array<[string, MsgValue]> = [];
      for (const name of ['save_space', 'threshold', 'cleanup_commits']) if (req.args.has(name)) args.push([name, req.args.get(name) as MsgValue]);
      // Never a compaction: that is the server's to decide (borg 1.2 clients send compact=False).
      args.push(['compact', false]);
      const r = await guardCall('commit', args);
      relay(req, r, () => {
        if (txnNames) {
          committedNames = txnNames;
          committedFinal = committedNames.has(Buffer.from(terms.archiveName, 'utf8').toString('latin1'));
          if (committedFinal) committedFigures = txnFigures;
        }
        txnNames = null;
        txnWrites = 0;
        committedPuts = new Set(jobPuts);
        try {
          refreshIndex();
        } catch {
          index = null;
        }
      });
    };

    const handleRequest = async (req: RpcRequest): Promise<void> => {
      if (!negotiated) {
        if (req.method !== 'negotiate') throw new SessionOver();
        negotiated = true;
        const cd = req.args.get('client_data');
        if (!(cd instanceof MsgMap)) {
          doomed = true;
          return fail(req, REFUSED_CLASS, 'borgkeep pull backups need borg 1.1 or later on the client.');
        }
        const r = await guardCall('negotiate', [['client_data', MsgMap.of([['client_version', PROXY_CLIENT_VERSION]])]], 'tuple');
        if (failed(r)) throw new SessionOver();
        return answer(req, r!.result);
      }
      switch (req.method) {
        case 'open':
          return handleOpen(req);
        case 'negotiate':
          return refuse(req, 'negotiate may only be the first call of a session', 'BK_DENY_PROTOCOL');
        default:
          break;
      }
      if (!opened) return refuse(req, 'no repository is open in this session', 'BK_DENY_NOT_OPEN');
      switch (req.method) {
        case 'load_key':
          return answer(req, Buffer.from(jk.blob, 'latin1'));
        case 'get': {
          const id = req.args.get('id');
          if (Buffer.isBuffer(id) && id.equals(MANIFEST_ID)) return answer(req, await syntheticManifest());
          return refuse(req, 'a pull job may read no object of the repository', 'BK_DENY_ROLE');
        }
        case '__len__':
          // borg sizes a fresh chunk cache with it; the client learns nothing of the repository.
          return answer(req, 0);
        case 'get_free_nonce':
          return answer(req, jobNonce);
        case 'commit_nonce_reservation': {
          const next = req.args.get('next_unreserved');
          const start = req.args.get('start_nonce');
          if (typeof next !== 'number' && typeof next !== 'bigint') return refuse(req, 'its arguments are not nonces', 'BK_DENY_BAD_ARGS');
          const startN = start === null || start === undefined ? null : typeof start === 'number' || typeof start === 'bigint' ? BigInt(start) : undefined;
          if (startN === undefined || startN !== jobNonce || BigInt(next) < (jobNonce ?? 0n)) {
            return fail(req, 'Exception', 'nonce space reservation with mismatched previous state');
          }
          jobNonce = BigInt(next);
          return answer(req, null);
        }
        case 'put':
          return handlePut(req);
        case 'delete':
          return handleDelete(req);
        case 'commit':
          return handleCommit(req);
        case 'rollback': {
          // What borg serve does with it: the open transaction is dropped.
          const r = await guardCall('rollback', []);
          txnNames = null;
          txnWrites = 0;
          if (!failed(r)) jobPuts = new Set(committedPuts);
          return relay(req, r);
        }
        default:
          return refuse(req, `a pull job may not call ${req.method.slice(0, 40)}`, OTHER_REASONS[req.method] ?? 'BK_DENY_UNKNOWN_METHOD');
      }
    };

    // --- the client stream ----------------------------------------------------------------------
    const input = readFrames(io.input as NodeJS.ReadableStream as import('node:stream').Readable, SERVER_LIMITS, { destroyOnStop: false });
    const onStop = (): void => input.stop();
    io.stop?.addEventListener('abort', onStop, { once: true });
    void guardSession.then(() => input.stop());
    try {
      for (;;) {
        const frame = await input.next();
        if (frame === null) break;
        received += frame.length;
        let req: RpcRequest;
        // A put is read where it arrived and its frame given back once handled (handlePut keeps
        // no view of it); any other request is parsed from a copy of its own first.
        let held = false;
        try {
          req = parseRequest(frame);
          if (req.method === 'put') held = true;
          else req = parseRequest(Buffer.from(frame));
        } finally {
          if (!held) input.release(frame);
        }
        try {
          await handleRequest(req);
        } finally {
          if (held) input.release(frame);
        }
      }
    } catch (error) {
      // A client that does not speak borg's protocol (or one a proxy bug could not answer): the
      // session ends; borg serve rolls back what is not committed.
      if (!(error instanceof SessionOver) && !(error instanceof FrameError)) doomed = true;
    } finally {
      io.stop?.removeEventListener('abort', onStop);
      input.stop();
    }
    await removeCheckpoints();
    if (io.stop?.aborted) guardStop.abort();
    // The refusals are in the ledger before the session ends there.
    await Promise.all(ledgerWrites);
    // EOF to the guard: borg serve rolls back whatever is not committed.
    guardIn.end();
    const outcome = await guardSession;
    (index as CommittedIndex | null)?.close();
    await outputChain;
    io.output.end();
    return { committed: committedFinal, refusal, sessionId: outcome?.sessionId ?? null, figures: committedFigures, received };
  };

  return {
    get passphrase() {
      if (!job) throw new Error('the pull job is over: its key was forgotten');
      return job.passphrase;
    },
    serve,
    clientCache,
    dispose() {
      job = null;
      repoKey = null;
    },
  };
}
