// One guarded `borg serve` session: client bytes in, decisions, child `borg serve`, replies out.
//
//   client stdin ─▶ frame splitter ─▶ decide ─┬─▶ child stdin            (allowed, byte-for-byte)
//                                             └─▶ exception reply ─▶ client stdout   (denied)
//   child stdout ─▶ frame splitter ─▶ track + scrub exceptions ─▶ client stdout
//   child stderr ─▶ line scrubber ─▶ client stderr
//
// Rules this file must keep:
//  - never write a client frame to the child before it has been decided; the only frames not
//    forwarded byte-for-byte are `open` (rewritten with the real path the guard chose) and the
//    guard's own `__len__`, whose replies the client never sees;
//  - every client request gets exactly one reply with its msgid, or the client hangs;
//  - no reply tells the client a server path, PID or argv;
//  - the session always ends in the ledger with a result, whatever happens.

import { once } from 'node:events';
import { existsSync, realpathSync } from 'node:fs';
import { BlockList, isIP } from 'node:net';
import { dirname, join } from 'node:path';
import type { Writable } from 'node:stream';

import { readFrames, type FrameSource } from '../rpc/frame-input.js';
import type { FramePool } from '../rpc/frame-pool.js';
import { createFrameSplitter } from '../rpc/frame-splitter.js';
import { CLIENT_LIMITS, FrameError, MsgMap, SERVER_LIMITS, type MsgValue } from '../rpc/msgpack.js';
import {
  encodeExceptionReply,
  encodeRequest,
  encodeResultReply,
  parseReply,
  parseRequest,
  scrubExceptionReply,
  type MessageFormat,
  type RpcReply,
  type RpcRequest,
} from '../rpc/messages.js';
import { latestIndexTransaction, openCommittedIndex, type CommittedIndex } from '../repository/hash-index.js';
import { readRepositoryNonce } from '../repository/nonce-file.js';
import { plural } from '../shared/plural.js';
import type { Grant, GuardStore, Repository, Role, SessionResult, SshKey } from '../store/types.js';
import type { BorgChild, LogLevel, SpawnBorg } from './borg-child.js';
import type { VersionTuple } from './borg-version.js';
import { createArchiveRules, type Refusal, type RepositoryKeySource, type SessionArchiveRules } from './archive-rules.js';
import { checkCompaction, KEY_GATE_ACTOR } from './compaction-check.js';
import { MANIFEST_ID, decideCall, destroysHistory, isKnownMethod, type DenyReason } from './grant-policy.js';
import { METHOD_COMMIT_COMPACT, METHOD_OPEN_CREATE } from '../store/run-kind.js';
import { watchGrant, whyGrantEnded, type GrantWatch } from './grant-watch.js';
import { onGrantsChanged } from '../shared/grant-changes.js';
import { createIdSet } from './id-set.js';
import { createPutCheck, type PutCheck } from './put-verification.js';
import { repositoryNameFromPath } from './repository-path.js';
import { createStderrScrubber, createTextScrubber } from './stderr-scrubber.js';

/** Exception class of the guard's refusals; the borg client prints exception_short for it. */
export const DENIED_CLASS = 'PermissionDenied';
const INTERNAL_MSGID_BASE = -1;
const DAY_MS = 24 * 60 * 60 * 1000;
/** How often a running session writes its byte counts to the ledger. */
export const PROGRESS_INTERVAL_MS = 2000;
/**
 * When borg serve dies under a client that is still sending (a backup's pipelined puts), the
 * client's further calls are answered with an error, while it keeps sending but for this long at
 * most, before the session ends: the borg client then prints why, instead of dying of a broken
 * pipe on its next write (a rate-limited upload took 3 s to read the error). A client that is
 * quiet for CHILD_GONE_QUIET_MS is not waited for.
 */
export const CHILD_GONE_DRAIN_MS = 15_000;
export const CHILD_GONE_QUIET_MS = 2000;
/** How long a session ended by its key or grant still answers the client's calls with why. */
export const GRANT_ENDED_GRACE_MS = 1000;
/** Default of GuardDeps.ledgerRetryMs, and the pauses between the attempts. */
export const LEDGER_RETRY_MS = 30_000;
const LEDGER_RETRY_PAUSES_MS = [500, 1000, 2000, 5000, 10_000];

export interface GuardDeps {
  readonly store: GuardStore;
  /** Directory holding the repositories (<data-dir>/repos). */
  readonly reposDir: string;
  readonly spawnBorg: SpawnBorg;
  /** The installed borg's version, reported in the guard's own negotiate reply. */
  readonly borgVersion: () => VersionTuple | null;
  readonly onChildVersion?: (v: VersionTuple) => void;
  readonly now?: () => Date;
  readonly host?: string;
  readonly pid?: number;
  /** Told the method of every call (metrics). */
  readonly onFrame?: (method: string) => void;
  /**
   * How long the session's ledger writes that the database refused (locked by another process,
   * its disk full) are retried after the session ended, before giving up; default
   * LEDGER_RETRY_MS. The client does not wait for them (see GuardOutcome.ledgerWritten).
   */
  readonly ledgerRetryMs?: number;
  /** The compaction gate's look at the repository (compaction-check.ts); a seam for the fuzzer. */
  readonly checkCompaction?: typeof checkCompaction;
  /**
   * Runs before an allowed save_key goes to borg serve, which erases the config it replaces: keeps
   * the current key (the data directory's key history). A throw refuses the call. What it returns
   * is written to the ledger once borg has replaced the key.
   */
  readonly beforeSaveKey?: (c: { repositoryPath: string; repository: Repository; sessionId: number; keyName: string | null }) => Promise<(() => Promise<unknown>) | null>;
  /**
   * The repository's unlocked key when borgkeep holds it (the vault), else null: the repository
   * then works exactly as without it. With it, manifest puts are judged (archive-rules.ts) and a
   * compaction is decided by the full audit (compaction-check.ts). A throw means a key is held
   * but cannot be used: append and prune fail closed; the gate decides by the key-less rule.
   */
  readonly repositoryKey?: RepositoryKeySource;
}

export interface GuardSession {
  readonly keyRef: string;
  readonly clientAddress: string | null;
  readonly logLevel: LogLevel | null;
  /** The client's bytes: a stream, or a pipe or socket descriptor read directly (frame-input.ts). */
  readonly input: FrameSource;
  readonly output: Writable;
  readonly errOutput: Writable;
  /** Aborting ends the session: borg serve gets EOF and rolls back what is not committed. */
  readonly stop?: AbortSignal;
  /**
   * Aborted by the front-end when the client's connection is gone. An SSH channel whose client
   * stopped reading and then hung up never says so itself (ssh2 emits 'close' only after the
   * unread input was consumed), and replies waiting for it to drain would wait for ever.
   */
  readonly gone?: AbortSignal;
  /**
   * Set when the front-end will not run this session (too many sessions, shutting down): the
   * guard still speaks borg's protocol, so the client prints why its `open` was refused.
   */
  readonly refusal?: { readonly reason: DenyReason; readonly why: string };
  /**
   * The key's sessions at once over every process on the database (every gateway, sshd's forced
   * command): counted with this session's start, in one transaction (store.startSessionCounted),
   * so gateways racing each other cannot both let the last one in. Over it, the open is refused.
   */
  readonly maxSessionsPerKey?: number;
  /**
   * The client already has its negotiate reply: the front-end answered it to learn which
   * repository the session opens (a gateway forwarding sessions to storage nodes, node-router.ts).
   * The input still starts with the negotiate, which the guard then answers to no one.
   */
  readonly negotiated?: boolean;
  /**
   * The server's own session (a retention run, src/retention/; a pull job's proxy, src/pull/): no SSH key, the repository and
   * role given by the server, and everything else (decisions, ledger, gate) as for a client. Set
   * only by borgkeep's own code in its own process: no front-end sets it, so no client can claim
   * it, and `keyRef` is then never looked up.
   */
  readonly internal?: { readonly kind: 'retention' | 'pull'; readonly repository: Repository; readonly role: Role };
  /**
   * The pool of the writer of `input`, when it is the server's own (a pull job's proxy seals puts
   * into its buffers): a buffer goes back to it once both the writer and the guard released it.
   */
  readonly framePool?: FramePool;
}

export interface GuardOutcome {
  readonly sessionId: number;
  readonly result: Exclude<SessionResult, 'open'>;
  readonly detail: string | null;
  /**
   * Null when the session is wholly in the ledger. When the database refused a write, the guard
   * retries it: this settles once it is written (true) or retrying gave up (false). A front-end
   * ends the client's connection before that, and waits for it before its process exits.
   */
  readonly ledgerWritten: Promise<boolean> | null;
}

/** The result of borg serve's negotiate: 2 for a 1.0 client (tuples), else the server's version. */
export function negotiateResult(clientData: MsgValue | undefined, version: VersionTuple): MsgValue {
  return clientData === 2 ? 2 : MsgMap.of([['server_version', version]]);
}

/** What the guard must do with the child's reply to a forwarded request. */
type Pending =
  | {
      kind: 'client';
      msgid: number;
      method: string;
      id?: Buffer;
      overwrite?: boolean;
      /** A delete of an object this session did not write. */
      older?: boolean;
      /** A compacting commit the gate let through: the transaction it starts after. */
      compactingFrom?: number | null;
      /** A commit that asked for compaction (let through or deferred): the ledger's kind of run. */
      compactAsked?: boolean;
    }
  | { kind: 'internal'; msgid: number; resolve: (r: RpcReply | null) => void };

interface Txn {
  startedAt: Date;
  puts: number;
  overwrites: number;
  deletes: number;
  /** Deletes of objects the session did not write itself (the gate's concern). */
  deletesOlder: number;
  /** Deletes of older objects and overwrites forwarded, answered or not: what the gate weighs at a commit. */
  sentOlder: number;
  sentOverwrites: number;
  manifest: boolean;
  writes: number;
  /** Every manifest put judged with the repository's key and allowed (archive-rules.ts). */
  archiveChecked?: boolean;
}

class SessionEnd extends Error {
  constructor(
    readonly result: Exclude<SessionResult, 'open'>,
    readonly detail: string,
  ) {
    super(detail);
  }
}

/** "Class: message" of an exception reply, scrubbed, for the ledger. */
function exceptionText(reply: RpcReply, scrub: (t: string) => string): string {
  const short = reply.value instanceof MsgMap ? reply.value.get('exception_short') : undefined;
  const text = Array.isArray(short) ? short.map((x) => (Buffer.isBuffer(x) ? x.toString('utf8') : '')).join(' ').trim() : '';
  const cls = reply.exceptionClass ?? 'Exception';
  // borg's short text of an OSError already starts with its class ("OSError: [Errno 28] ...").
  return scrub(text.startsWith(`${cls}: `) ? text : `${cls}${text ? `: ${text}` : ''}`).slice(0, 500);
}

function parseVersion(v: MsgValue | undefined): VersionTuple | null {
  if (!Array.isArray(v) || v.length < 3 || !v.slice(0, 3).every((x) => typeof x === 'number')) return null;
  return [v[0] as number, v[1] as number, v[2] as number, typeof v[3] === 'number' ? v[3] : -1];
}

function versionText(v: MsgValue | undefined): string | null {
  if (v === 2) return '1.0.x';
  if (!(v instanceof MsgMap)) return null;
  const t = parseVersion(v.get('client_version'));
  return t ? t.slice(0, 3).join('.') + (t[3] !== -1 ? `(${t.slice(3).join(',')})` : '') : null;
}

/** Whether `address` is inside one of the CIDR ranges. */
export function addressAllowed(address: string | null, cidrs: readonly string[]): boolean {
  if (!address) return false;
  const family = isIP(address);
  if (family === 0) return false;
  const list = new BlockList();
  for (const c of cidrs) {
    const [net, bits] = c.split('/');
    const f = isIP(net);
    if (f === 0) continue;
    const type = f === 4 ? 'ipv4' : 'ipv6';
    list.addSubnet(net, bits === undefined ? (f === 4 ? 32 : 128) : Number(bits), type);
  }
  if (list.check(address, family === 4 ? 'ipv4' : 'ipv6')) return true;
  // An IPv4 client seen through an IPv6 socket (::ffff:a.b.c.d).
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped !== null && list.check(mapped[1], 'ipv4');
}

/** The canonical form of `p`, or `p` itself when it does not (yet) exist. */
function realPathOr(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

export async function runGuardSession(deps: GuardDeps, s: GuardSession): Promise<GuardOutcome> {
  const now = deps.now ?? (() => new Date());
  const store = deps.store;
  let bytesIn = 0;
  let bytesOut = 0;

  const key: SshKey | undefined = s.internal ? undefined : await store.findKey(s.keyRef);
  const newSession = {
    ...(s.internal && { kind: s.internal.kind }),
    keyId: key?.id ?? null,
    keyName: key?.name ?? null,
    clientAddress: s.clientAddress,
    startedAt: now(),
    pid: deps.pid ?? process.pid,
    host: deps.host ?? 'localhost',
  };
  let refusal = s.refusal;
  let sessionId: number;
  const perKey = s.maxSessionsPerKey;
  if (perKey !== undefined && key && store.startSessionCounted) {
    const started = await store.startSessionCounted(newSession);
    sessionId = started.id;
    if (started.openBefore >= perKey) refusal ??= { reason: 'BK_DENY_SESSION_LIMIT', why: `the key may run at most ${plural(perKey, 'session')} at once; try again later` };
  } else {
    sessionId = await store.startSession(newSession);
  }

  // Session state.
  let format: MessageFormat = 'tuple';
  let negotiateFrame: Buffer | null = null;
  let opened = false;
  let openAttempted = false;
  let notInitialised = false;
  let unlocked = false;
  let lastMethod = '';
  let lastCreate = false;
  let openForwarded = false; // the open being handled went to the child
  let grant: Grant | null = null;
  let repository: Repository | null = null;
  let role: Role | null = null;
  let clientPath = '';
  let child: BorgChild | null = null;
  let childExited = false;
  let inputEnded = false;
  let childDone: Promise<void> = Promise.resolve();
  let scrubText: (t: string) => string = (t) => t;
  const pending: Pending[] = [];
  let internalMsgid = INTERNAL_MSGID_BASE;
  let denials = 0;
  // One ledger row per (method, reason) and session: a refused `borg delete` pipelines dozens
  // of deletes, and a hostile client must not be able to flood the database with rows.
  const denialCounts = new Map<string, number>();
  let rolledBackWrites = 0;
  let writeError: string | null = null;
  let writeFailed = false; // a put, delete or commit failed since the last commit that worked
  /** Why borg serve refused the open (locked, not a repository...), for the ledger. */
  let openError: string | null = null;
  // The grant's backups per day: decided once, at the session's first put of a new object
  // besides the manifest (the start of a backup), by a claim in the store; null until then.
  // Once refused, the session's later writes are refused too, so it cannot commit a manifest
  // that names data it was not allowed to write.
  let backupAllowed: boolean | null = null;
  /** --verify-objects: set up at the session's first put. */
  let putCheck: PutCheck | null = null;
  let index: CommittedIndex | null = null;
  let indexReady = false;
  let sessionStartTxn = -1;
  const sessionPuts = createIdSet();
  let txn: Txn | null = null;
  /** The archive rules of a repository whose key borgkeep holds; null otherwise. */
  let archiveRules: SessionArchiveRules | null = null;
  let lastRuleLine = '';
  /** The ledger's record of a key change, once borg serve has answered the save_key. */
  let keyChanged: (() => Promise<unknown>) | null = null;
  /** The methods borg serve answered for the client, for the ledger's kind of run (store/run-kind.ts). */
  const methodsDone = new Set<string>();
  let clientGone = false;
  let endCause: SessionEnd | null = null;
  /** Ends the session when its key is revoked or its grant removed, changed or expired. */
  let grantWatch: GrantWatch | null = null;
  /** Why the grant watch ended the session: the client's further calls are answered with it. */
  let grantEnded: string | null = null;
  let graceTimer: NodeJS.Timeout | undefined;

  // Ending a session early stops reading the client. The embedded gateway's SSH channel is one
  // duplex for both directions: destroying it would also drop the replies still queued, the
  // message on stderr and the exit status, and the borg client would die of a broken pipe
  // instead of printing why. Such an input is only no longer read; the front-end closes it.
  const duplexInput = (s.input as unknown) === s.output;
  let draining = false; // borg serve died while the client still talks: its calls get an error
  let drainTimer: NodeJS.Timeout | undefined;
  let quietTimer: NodeJS.Timeout | undefined;
  const input = readFrames(s.input, SERVER_LIMITS, {
    destroyOnStop: !duplexInput,
    ...(s.framePool ? { pool: s.framePool } : {}),
    onBytes: (n) => {
      bytesIn += n;
      quietTimer?.refresh();
    },
  });
  const stopReading = (): void => input.stop();

  // A write the database refused is kept and retried when the session ends: a committed
  // transaction missing from the ledger would make the audit call it unattributed.
  const refusedWrites: Array<() => Promise<unknown>> = [];
  let ledgerTrouble: string | null = null;
  // One write at a time, in the order of the calls: a write started while an earlier one is still
  // waiting on a busy database could land first, and the ledger would tell the session out of order.
  let ledgerChain: Promise<unknown> = Promise.resolve();
  const ledger = (write: () => Promise<unknown>): void => {
    ledgerChain = ledgerChain.then(() => {
      if (ledgerTrouble) {
        refusedWrites.push(write); // in order, after those refused before
        return;
      }
      return write().catch((e: unknown) => {
        refusedWrites.push(write);
        ledgerTrouble ??= (e as Error).message;
      });
    });
  };

  // --- writing to the client -------------------------------------------------------------------
  let outputChain: Promise<void> = Promise.resolve();
  s.output.on('error', () => {
    clientGone = true;
  });
  // Its listener goes at the session's end: a connection that carries many sessions (a
  // gateway's to a storage node) must not keep every ended one alive.
  let onConnectionGone: (() => void) | undefined;
  const connectionGone = new Promise<void>((resolve) => {
    if (s.gone?.aborted) return resolve();
    onConnectionGone = resolve;
    s.gone?.addEventListener('abort', onConnectionGone, { once: true });
  });
  const writeClient = async (buf: Buffer): Promise<void> => {
    if (clientGone || s.output.destroyed || s.gone?.aborted) {
      clientGone = true;
      return;
    }
    bytesOut += buf.length;
    if (!s.output.write(buf)) {
      await Promise.race([once(s.output, 'drain'), once(s.output, 'close'), connectionGone]).catch(() => undefined);
    }
  };
  const sendClient = (buf: Buffer): Promise<void> => {
    outputChain = outputChain.then(() => writeClient(buf));
    return outputChain;
  };

  const describe = (): string =>
    `${s.internal ? `the server's ${s.internal.kind} run` : `key '${key?.name ?? s.keyRef}'`}, role ${role ?? 'none'}, repository '${repository?.name ?? clientPath}'`;

  const noteDenial = (method: string, reason: DenyReason, message: string, repositoryId: number | null): void => {
    denials++;
    const k = `${method} ${reason}`;
    const seen = denialCounts.get(k) ?? 0;
    denialCounts.set(k, seen + 1);
    if (seen > 0) return;
    const at = now();
    ledger(() => store.recordDenial({ sessionId, keyId: key?.id ?? null, repositoryId, method, reason, message, at }));
  };

  const refuse = async (req: RpcRequest, reason: DenyReason, why: string): Promise<void> => {
    const message = `borgkeep refused ${req.method}: ${why} (${describe()}).`;
    noteDenial(req.method, reason, message, repository?.id ?? null);
    await sendClient(encodeExceptionReply(req.format, req.msgid, { exceptionClass: DENIED_CLASS, message }));
  };

  /** The reply borg gives for a repository that does not exist; also for names not granted. */
  const answerMissing = async (req: RpcRequest, reason: DenyReason | null): Promise<void> => {
    const shown = clientPath || '(none)';
    if (reason) noteDenial('open', reason, `open of '${shown}': no such repository is granted to this key`, null);
    await sendClient(
      encodeExceptionReply(req.format, req.msgid, {
        exceptionClass: 'DoesNotExist',
        message: `Repository ${shown} does not exist.`,
        args: [shown],
      }),
    );
  };

  // --- the child -----------------------------------------------------------------------------
  /** `written`: called once the pipe has taken all of `buf` (or failed for good). */
  const writeChild = async (buf: Buffer, written?: () => void): Promise<void> => {
    if (!child || childExited) throw new SessionEnd('error', 'borg serve is not running');
    if (grantEnded) throw new SessionEnd('aborted', grantEnded); // borg serve already has its EOF
    // A child that dies while the pipe is full fails the wait with EPIPE (once() rejects on
    // 'error'): that is its exit, which the exit handler tells the client in words, not an
    // internal error (seen once under load in test/faults/child-killed.test.ts).
    if (!child.stdin.write(buf, written)) await Promise.race([once(child.stdin, 'drain'), child.exited]).catch(() => undefined);
  };

  const callInternal = async (method: string, args: Map<string, MsgValue>): Promise<RpcReply | null> => {
    const msgid = internalMsgid--;
    const reply = new Promise<RpcReply | null>((resolve) => pending.push({ kind: 'internal', msgid, resolve }));
    await writeChild(encodeRequest(format, msgid, method, args));
    return reply;
  };

  const finishTxn = (state: 'committed' | 'rolled_back', borgTransactionId: number | null): void => {
    if (!txn) return;
    const t = txn;
    txn = null;
    if (t.writes === 0 && state === 'rolled_back') return;
    if (state === 'rolled_back') rolledBackWrites++;
    const endedAt = now();
    ledger(() =>
      store.recordTransaction({
        sessionId,
        borgTransactionId,
        objectsPut: t.puts,
        objectsOverwritten: t.overwrites,
        objectsDeleted: t.deletes,
        objectsDeletedOlder: t.deletesOlder,
        manifestWritten: t.manifest,
        archiveChecked: t.archiveChecked === true,
        state,
        startedAt: t.startedAt,
        endedAt,
      }),
    );
  };

  const refreshIndex = (): void => {
    index?.close();
    index = null;
    if (!repository) return;
    const repoPath = join(deps.reposDir, repository.dirName);
    const n = latestIndexTransaction(repoPath);
    if (n !== null) index = openCommittedIndex(repoPath, n);
  };

  const onChildReply = (reply: RpcReply): Promise<void> | void => {
    // Only a matching head is taken: one left in place is answered when the child is gone, so a
    // call the guard itself waits on (__len__) or a client's request is not lost.
    const head = pending[0];
    if (!head || head.msgid !== reply.msgid) {
      throw new SessionEnd('error', 'borg serve answered out of order');
    }
    pending.shift();
    if (head.kind === 'internal') {
      head.resolve(reply);
      return;
    }
    const ok = reply.exceptionClass === null;
    if (ok) {
      methodsDone.add(head.compactAsked ? METHOD_COMMIT_COMPACT : head.method);
      switch (head.method) {
        case 'open':
          opened = true;
          break;
        case 'put':
          if (txn) {
            txn.writes++;
            if (head.id && head.id.equals(MANIFEST_ID)) txn.manifest = true;
            else if (head.overwrite) txn.overwrites++;
            else txn.puts++;
          }
          break;
        case 'delete':
          if (txn) {
            txn.writes++;
            txn.deletes++;
            if (head.older) txn.deletesOlder++;
          }
          break;
        case 'commit': {
          writeFailed = false;
          if (repository) {
            const n = latestIndexTransaction(join(deps.reposDir, repository.dirName));
            const checked = archiveRules?.commitAnswered(true, n);
            if (checked?.write) ledger(checked.write);
            if (txn && checked) txn.archiveChecked = checked.archiveChecked;
            finishTxn('committed', n);
            if (head.compactingFrom !== undefined) noteCompaction(head.compactingFrom, n);
          }
          sessionPuts.clear();
          if (indexReady) refreshIndex();
          break;
        }
        case 'rollback': {
          const release = archiveRules?.rolledBack();
          if (release) ledger(release);
          finishTxn('rolled_back', null);
          sessionPuts.clear();
          break;
        }
        case 'save_key':
          if (keyChanged) ledger(keyChanged);
          keyChanged = null;
          break;
      }
      return sendClient(reply.frame);
    }
    const scrubbed = scrubExceptionReply(reply, scrubText);
    if (head.method === 'open') openError ??= exceptionText(reply, scrubText);
    if (head.method === 'put' || head.method === 'delete' || head.method === 'commit') {
      writeError ??= exceptionText(reply, scrubText);
      writeFailed = true;
    }
    if (head.method === 'commit') {
      const release = archiveRules?.commitAnswered(false, null).write;
      if (release) ledger(release);
      finishTxn('rolled_back', null);
      sessionPuts.clear();
    }
    return sendClient(scrubbed);
  };

  /** Requests the child will never answer: answer them, so a client still waiting is not left hanging. */
  const CHILD_GONE = 'borg serve on the server ended before answering this call; nothing more of this session is committed.';
  const answerUnanswered = async (): Promise<void> => {
    for (const p of pending.splice(0)) {
      if (p.kind === 'internal') p.resolve(null);
      else await sendClient(encodeExceptionReply(format, p.msgid, { exceptionClass: 'ConnectionClosed', message: CHILD_GONE }));
    }
  };

  const pumpChild = async (c: BorgChild): Promise<void> => {
    const splitter = createFrameSplitter(CLIENT_LIMITS);
    const stderr = createStderrScrubber(scrubText);
    c.stderr.on('data', (chunk: Buffer) => {
      const text = stderr.push(chunk);
      if (text) s.errOutput.write(text);
    });
    c.stderr.on('end', () => {
      const text = stderr.end();
      if (text) s.errOutput.write(text);
    });
    try {
      for await (const chunk of c.stdout as AsyncIterable<Buffer>) {
        for (const frame of splitter.push(chunk)) {
          const reply = parseReply(frame);
          // Not a reply: borg's "Got connection close" text on stdout, which no client needs.
          if (reply === null) continue;
          await onChildReply(reply);
        }
      }
    } catch (e) {
      const cause = e instanceof SessionEnd ? e : new SessionEnd('error', `borg serve sent a reply borgkeep cannot read: ${(e as Error).message}`);
      endCause ??= cause;
      c.kill('SIGTERM');
    }
    const code = await c.exited;
    childExited = true;
    // borg serve only ends by itself when it crashed or was killed. Nothing can answer the
    // client's next call: answer it with an error for a moment, then end the session rather
    // than wait for the client to hang up.
    draining = !inputEnded;
    await answerUnanswered();
    const how = typeof code === 'number' ? `exit code ${code}` : code;
    // After a failed write (a full disk) borg serve may exit too: its reason says more than the code.
    const ended = writeFailed && writeError ? `borg rolled the transaction back: ${writeError}; borg serve then ended with ${how}` : `borg serve ended with ${how}`;
    if (code !== 0 && code !== 'SIGTERM' && !endCause) {
      endCause = new SessionEnd('error', ended);
    }
    if (!inputEnded) {
      endCause ??= new SessionEnd('error', ended);
      drainTimer = setTimeout(stopReading, CHILD_GONE_DRAIN_MS);
      quietTimer = setTimeout(stopReading, CHILD_GONE_QUIET_MS);
    }
  };

  // --- decisions -------------------------------------------------------------------------------
  const handleNegotiate = async (req: RpcRequest): Promise<void> => {
    const clientData = req.args.get('client_data');
    const version = deps.borgVersion();
    if (!version) {
      throw new SessionEnd('error', 'borg is not installed on the server');
    }
    negotiateFrame = req.frame;
    format = clientData === 2 ? 'tuple' : 'dict';
    const cv = versionText(clientData);
    if (cv) ledger(() => store.updateSession(sessionId, { clientVersion: cv }));
    if (!s.negotiated) await sendClient(encodeResultReply(req.format, req.msgid, negotiateResult(clientData, version)));
  };

  const handleOpen = async (req: RpcRequest): Promise<void> => {
    if (openAttempted) return refuse(req, 'BK_DENY_SECOND_OPEN', 'a session may open one repository only, once');
    openAttempted = true;
    const args = req.args;
    const allowed = new Set(['path', 'create', 'lock_wait', 'lock', 'exclusive', 'append_only', 'make_parent_dirs']);
    for (const name of args.keys()) if (!allowed.has(name)) return refuse(req, 'BK_DENY_BAD_ARGS', `it has an unknown argument '${name}'`);
    const path = args.get('path');
    const create = args.get('create') ?? false;
    const lockWait = args.get('lock_wait') ?? null;
    const lock = args.get('lock') ?? true;
    const exclusive = args.get('exclusive') ?? null;
    const appendOnly = args.get('append_only') ?? false;
    const makeParents = args.get('make_parent_dirs') ?? false;
    if (
      !Buffer.isBuffer(path) ||
      typeof create !== 'boolean' ||
      typeof lock !== 'boolean' ||
      typeof appendOnly !== 'boolean' ||
      typeof makeParents !== 'boolean' ||
      !(exclusive === null || typeof exclusive === 'boolean') ||
      // Seconds; beyond 2^53 it is no wait anyone means, and the re-encoded open could not carry it.
      !(lockWait === null || (typeof lockWait === 'number' && Number.isFinite(lockWait) && lockWait >= 0 && lockWait <= Number.MAX_SAFE_INTEGER))
    ) {
      return refuse(req, 'BK_DENY_BAD_ARGS', 'its arguments have the wrong types');
    }
    clientPath = path.toString('utf8').replace(/[^\x20-\x7e]/g, '?').slice(0, 200);
    const internal = s.internal;
    if (!internal && !key) return refuse(req, 'BK_DENY_REVOKED', `the key '${s.keyRef}' is not registered with borgkeep`);
    if (key?.revokedAt) return refuse(req, 'BK_DENY_REVOKED', `the key '${key.name}' was revoked on ${key.revokedAt.toISOString()}`);
    if (refusal) return refuse(req, refusal.reason, refusal.why);
    const name = repositoryNameFromPath(path);
    // The server's own session opens the one repository it was started for, and no other.
    const found = internal
      ? name === internal.repository.name ? { grant: null, repository: internal.repository } : undefined
      : name === null || !key ? undefined : await store.findGrant(key.id, name);
    if (!found) return answerMissing(req, 'BK_DENY_NO_REPOSITORY');
    grant = found.grant;
    repository = found.repository;
    role = internal ? internal.role : found.grant!.role;
    clientPath = path.toString('utf8');
    const opened = { repositoryId: repository.id, repositoryName: repository.name, role };
    ledger(() => store.updateSession(sessionId, opened));
    if (grant?.expiresAt && grant.expiresAt.getTime() <= now().getTime()) {
      return refuse(req, 'BK_DENY_EXPIRED', `the grant expired on ${grant.expiresAt.toISOString()}`);
    }
    if (grant?.fromCidrs && grant.fromCidrs.length > 0 && !addressAllowed(s.clientAddress, grant.fromCidrs)) {
      return refuse(req, 'BK_DENY_ADDRESS', `the client address ${s.clientAddress ?? '(unknown)'} is not in the grant's allowed ranges`);
    }
    if (create && role !== 'full') return refuse(req, 'BK_DENY_CREATE', 'only a full grant may create (init) a repository');
    const repoPath = join(deps.reposDir, repository.dirName);
    // Granted but not initialised yet: what borg serve itself answers, and no denial (borgmatic
    // asks this before every `init`).
    if (!create && !existsSync(repoPath)) {
      notInitialised = true;
      return answerMissing(req, null);
    }
    unlocked = lock === false;

    // borg serve resolves the path with realpath() and names the resolved form in its messages
    // (ObjectNotFound's args, its log): behind a symlinked data directory that form differs.
    const realRepos = realPathOr(deps.reposDir);
    // The server's own session has no key or grant that could go away while it runs.
    const watched = key && found.grant ? { key, grant: found.grant } : null;
    if (watched) {
      grantWatch = watchGrant({
        read: () => store.grantStanding(watched.key.id, found.repository.id),
        judge: (standing, at) =>
          whyGrantEnded({ keyName: watched.key.name, repositoryName: found.repository.name, grant: watched.grant, addressAllowed: (cidrs) => addressAllowed(s.clientAddress, cidrs) }, standing, at),
        now,
        onChange: onGrantsChanged,
        deadline: watched.grant.expiresAt,
      });
      grantWatch.signal.addEventListener('abort', () => onGrantEnded(String(grantWatch?.signal.reason)), { once: true });
    }
    scrubText = createTextScrubber([
      [repoPath, clientPath],
      [realPathOr(repoPath), clientPath],
      [join(realRepos, repository.dirName), clientPath],
      [deps.reposDir, '(server)'],
      [realRepos, '(server)'],
      [dirname(deps.reposDir), '(server)'],
    ]);
    child = deps.spawnBorg({
      repositoryPath: repoPath,
      appendOnly: role !== 'full',
      storageQuota: repository.quotaBytes,
      logLevel: s.logLevel,
    });
    childDone = pumpChild(child);
    // The child gets the client's own negotiate first (so it logs in the format the client
    // reads), then the open with the real path; the client already has its negotiate reply.
    if (negotiateFrame) {
      const nego = parseRequest(negotiateFrame);
      const reply = new Promise<RpcReply | null>((resolve) => pending.push({ kind: 'internal', msgid: nego.msgid, resolve }));
      await writeChild(negotiateFrame);
      void reply.then((r) => {
        const v = r && r.result instanceof MsgMap ? parseVersion(r.result.get('server_version')) : null;
        const mine = deps.borgVersion();
        if (v && deps.onChildVersion && (!mine || v.join('.') !== mine.join('.'))) deps.onChildVersion(v);
      });
    }
    const rewritten = new Map<string, MsgValue>([
      ['path', Buffer.from(repoPath, 'utf8')],
      ['create', create],
      ['lock_wait', lockWait],
      ['lock', lock],
      ['exclusive', exclusive],
      ['append_only', appendOnly],
      ['make_parent_dirs', false],
    ]);
    if (req.format === 'tuple') rewritten.delete('make_parent_dirs');
    openForwarded = true;
    pending.push({ kind: 'client', msgid: req.msgid, method: 'open' });
    await writeChild(encodeRequest(req.format, req.msgid, 'open', rewritten));
    // Unlocking a held key (borg's PBKDF2) happens here, while borg serve opens the repository.
    if (deps.repositoryKey && role !== 'read' && !unlocked) {
      archiveRules = createArchiveRules({ store, now }, deps.repositoryKey, { sessionId, repository, repositoryPath: repoPath, role, grant });
    }
  };

  /** Before the first write: the index on disk must match the committed state (borg replays on __len__). */
  const ensureIndex = async (): Promise<void> => {
    if (indexReady || !child || !repository) return;
    const r = await callInternal('__len__', new Map());
    if (!r || r.exceptionClass !== null) {
      throw new SessionEnd('error', 'the repository index could not be read');
    }
    refreshIndex();
    sessionStartTxn = index?.transactionId ?? -1;
    indexReady = true;
  };

  /** The object was put by this session (committed since it started, or in its open transaction). */
  const putBySession = (id: Buffer): boolean => {
    if (sessionPuts.has(id)) return true;
    const e = index?.lookup(id);
    return e !== undefined && e.segment > sessionStartTxn;
  };

  // --- the compaction gate -------------------------------------------------------------------
  const reviewHint = (name: string) =>
    `an admin reviews them with 'borgkeep audit ${name}' (with the passphrase) or approves them with 'borgkeep approve ${name}'`;
  const gateCheck = (repo: Repository) =>
    (deps.checkCompaction ?? checkCompaction)({ store, dataDir: dirname(deps.reposDir), repositoryKey: deps.repositoryKey }, repo, join(deps.reposDir, repo.dirName), {
      sessionId,
      // Counted as sent, not as answered: the commit can arrive before borg answered the deletes before it.
      deletedOlder: txn?.sentOlder ?? 0,
      overwritten: txn?.sentOverwrites ?? 0,
    });
  /** Who a gate event names: this session and its key. */
  const gateActor = () => (s.internal ? `the server's ${s.internal.kind} run (session ${sessionId})` : key ? `key '${key.name}' (session ${sessionId})` : `session ${sessionId}`);
  const noteDeferral = (repo: Repository, why: string): void => {
    const line = `compaction deferred: ${why}. Nothing was removed: the commit went through without compaction; ${reviewHint(repo.name)}, then 'borg compact' frees the space`;
    s.errOutput.write(`borgkeep: ${line}.\n`);
    ledger(() => store.recordEvent({ repositoryId: repo.id, kind: 'compaction-deferred', throughTxn: null, verdict: null, actor: gateActor(), detail: line }));
  };
  const noteVerifiedWithKey = (repo: Repository, throughTxn: number, detail: string): void => {
    ledger(() => store.recordEvent({ repositoryId: repo.id, kind: 'audit', throughTxn, verdict: 'clean', actor: KEY_GATE_ACTOR, detail }));
  };
  const noteCompaction = (fromTxn: number | null, throughTxn: number | null): void => {
    if (!repository || throughTxn === null) return;
    const repo = repository;
    const actor = gateActor();
    const detail = `compacted after verifying every transaction through ${fromTxn ?? 'the start'}; manifest versions kept by borgkeep`;
    ledger(() => store.recordEvent({ repositoryId: repo.id, kind: 'compaction', throughTxn, verdict: null, actor, detail, report: { fromTxn } }));
  };

  /** A refusal by the archive rules: the client's stderr says what and by which rule, once per reason. */
  const refuseByArchiveRule = (req: RpcRequest, r: Refusal): Promise<void> => {
    const line = `borgkeep: refused: ${r.refusal} (rule: ${r.rule}).\n`;
    if (line !== lastRuleLine) s.errOutput.write(line);
    lastRuleLine = line;
    return refuse(req, 'BK_DENY_ARCHIVE_RULE', `${r.refusal} (rule: ${r.rule})`);
  };

  const handleCall = async (req: RpcRequest): Promise<void> => {
    if (!openAttempted || !role) {
      return refuse(req, 'BK_DENY_NOT_OPEN', 'no repository is open in this session');
    }
    const isWriteMethod = req.method === 'put' || req.method === 'delete';
    if (isWriteMethod && !unlocked && child) await ensureIndex();
    const decision = decideCall(req, {
      role,
      unlocked,
      justCreated: lastCreate && lastMethod === 'open',
      existsCommitted: (id) => index?.lookup(id) !== undefined,
      putBySession,
      // Read at the decision: borg reserves only under the session's exclusive lock, so no other
      // session moves the file between this read and borg's own.
      currentNonce: () => (repository ? readRepositoryNonce(join(deps.reposDir, repository.dirName)) : null),
    });
    if (!decision.allow) return refuse(req, decision.reason, decision.why);
    if (req.method === 'put' && grant?.verifyObjects && repository) {
      // --verify-objects: the object is checked against its id before borg sees it.
      putCheck ??= createPutCheck(deps.repositoryKey, repository, join(deps.reposDir, repository.dirName));
      const refusal = await putCheck(req.args.get('id') as Buffer, req.args.get('data') as Buffer);
      if (refusal) return refuse(req, refusal.reason, refusal.why);
    }
    if (decision.write && grant?.writesPerDay != null && repository && key) {
      // Decided after borg holds the lock (a put waited for __len__ behind the open, above) and
      // before this put goes to borg; prunes, compactions and reads never claim.
      const startsBackup = req.method === 'put' && !(req.args.get('id') as Buffer).equals(MANIFEST_ID);
      if (backupAllowed === null && startsBackup) {
        const at = now();
        const { claimed } = await store.claimBackup({
          sessionId,
          grantId: grant.id,
          keyId: key.id,
          repositoryId: repository.id,
          limit: grant.writesPerDay,
          since: new Date(at.getTime() - DAY_MS),
          at,
        });
        backupAllowed = claimed;
      }
      if (backupAllowed === false) {
        const n = grant.writesPerDay;
        return refuse(
          req,
          'BK_DENY_WRITE_LIMIT',
          `the grant allows ${n} ${n === 1 ? 'backup' : 'backups'} per 24 hours and ${n === 1 ? 'it is' : 'they are'} used up (prune, compact and reads do not count)`,
        );
      }
    }
    if (!child) return refuse(req, 'BK_DENY_NOT_OPEN', 'no repository is open in this session');
    if (archiveRules && (req.method === 'put' || req.method === 'delete' || req.method === 'commit')) {
      // Decided before borg sees it: a manifest put by what it changes, a commit by what its
      // transaction did, and after a refusal nothing more is written.
      const id = req.method === 'commit' ? null : (req.args.get('id') as Buffer);
      const verdict =
        req.method === 'commit'
          ? archiveRules.judgeCommit(txn?.sentOlder ?? 0)
          : req.method === 'put' && id?.equals(MANIFEST_ID)
            ? await archiveRules.judgePut(req.args.get('data') as Buffer, putBySession)
            : archiveRules.judgeWrite();
      if (!verdict.allow) return refuseByArchiveRule(req, verdict);
    }
    if (req.method === 'save_key' && repository && deps.beforeSaveKey) {
      try {
        keyChanged = await deps.beforeSaveKey({ repositoryPath: join(deps.reposDir, repository.dirName), repository, sessionId, keyName: key?.name ?? null });
      } catch {
        return refuse(req, 'BK_DENY_SAVE_KEY', 'borgkeep could not keep the current key first, so it is not replaced');
      }
    }
    const entry: Pending = { kind: 'client', msgid: req.msgid, method: req.method };
    if (req.method === 'commit' && destroysHistory(req)) entry.compactAsked = true;
    let frame = req.frame;
    if (destroysHistory(req) && repository) {
      // Compaction makes the deletions and overwrites since the last compaction permanent: decided
      // now, from what is on disk (audit/compaction-gate.ts), never from an earlier verdict.
      // What cannot be read or kept is not verified: the safe answer is the closed one.
      let why: string | null;
      let fromTxn: number | null = null;
      try {
        const gate = await gateCheck(repository);
        why = gate.decision.allow ? null : gate.why;
        if (gate.decision.allow) {
          try {
            await gate.keep(gate.fromTxn, now());
            fromTxn = gate.fromTxn;
            const verified = gate.verifiedWithKey;
            // Those transactions were audited with the key: the next decision starts after them.
            if (verified) noteVerifiedWithKey(repository, verified.throughTxn, verified.detail);
          } catch (e) {
            why = `borgkeep could not keep the manifest versions compaction would remove (${(e as NodeJS.ErrnoException).code ?? 'error'})`;
          }
        }
      } catch (e) {
        why = `borgkeep could not read the repository's history (${(e as NodeJS.ErrnoException).code ?? 'error'})`;
      }
      if (why !== null) {
        // A commit in the legacy tuple format cannot say compact=False (borg 1.0/1.1 clients).
        if (req.method !== 'commit' || req.format === 'tuple') {
          return refuse(req, 'BK_DENY_GATE', `the history holds changes nobody verified yet: ${why}; ${reviewHint(repository.name)}`);
        }
        // Deferred, not failed: borg's own commit without compaction, so nothing is removed and
        // the client's run goes on (a routine borgmatic run still makes its backup).
        frame = encodeRequest(req.format, req.msgid, 'commit', new Map([...req.args, ['compact', false]]));
        noteDeferral(repository, why);
      } else {
        entry.compactingFrom = fromTxn;
      }
    }
    if (req.method === 'put' || req.method === 'delete') {
      const id = req.args.get('id') as Buffer;
      entry.id = Buffer.from(id); // the frame buffer is released after forwarding
      txn ??= { startedAt: now(), puts: 0, overwrites: 0, deletes: 0, deletesOlder: 0, sentOlder: 0, sentOverwrites: 0, manifest: false, writes: 0 };
      if (req.method === 'put') {
        entry.overwrite = !id.equals(MANIFEST_ID) && index?.lookup(id) !== undefined;
        sessionPuts.add(id);
        if (entry.overwrite) txn.sentOverwrites++;
      } else {
        entry.older = !id.equals(MANIFEST_ID) && !putBySession(id);
        if (entry.older) txn.sentOlder++;
      }
    }
    pending.push(entry);
    // A data put's frame is read into again once borg serve's pipe has it (frame-input.ts
    // release): nothing here keeps a view of it (its id was copied above). Not the manifest's,
    // which the archive rules and the audit's kept versions may still read.
    const reuse = req.method === 'put' && frame === req.frame && !entry.id!.equals(MANIFEST_ID);
    await writeChild(frame, reuse ? () => input.release(frame) : undefined);
  };

  const handleFrame = async (frame: Buffer): Promise<void> => {
    const req = parseRequest(frame);
    if (grantEnded) {
      // borg rolls back at EOF anyway; anything else gets the reason, which the client prints.
      if (req.method === 'rollback') return sendClient(encodeResultReply(req.format, req.msgid, null));
      return sendClient(encodeExceptionReply(req.format, req.msgid, { exceptionClass: DENIED_CLASS, message: `borgkeep ended this session: ${grantEnded}.` }));
    }
    if (draining) {
      return sendClient(encodeExceptionReply(req.format, req.msgid, { exceptionClass: 'ConnectionClosed', message: CHILD_GONE }));
    }
    // Client text as a metric label only when it is one of borg's methods: no unbounded labels.
    deps.onFrame?.(req.method === 'negotiate' || req.method === 'open' || isKnownMethod(req.method) ? req.method : 'other');
    if (!negotiateFrame) {
      if (req.method !== 'negotiate') throw new SessionEnd('error', 'the client did not start with negotiate');
      return handleNegotiate(req);
    }
    if (req.method === 'negotiate') {
      await refuse(req, 'BK_DENY_PROTOCOL', 'negotiate may only be the first call of a session');
    } else if (req.method === 'open') {
      openForwarded = false;
      await handleOpen(req);
      // Only an open(create=True) that went to borg serve makes the next save_key init's own: a
      // refused one (a second open) must not let a read or append key replace the key.
      lastCreate = openForwarded && req.args.get('create') === true;
      if (lastCreate) methodsDone.add(METHOD_OPEN_CREATE);
    } else {
      await handleCall(req);
      lastCreate = false;
    }
    lastMethod = req.method;
  };

  // --- progress in the ledger ------------------------------------------------------------------
  // The bytes so far, written every PROGRESS_INTERVAL_MS while data flows, so the console shows a
  // running backup's progress also when it runs in another process (sshd's forced command).
  // One write at a time, never queued up behind a slow database.
  let lastProgress = now().getTime();
  let progressWrite: Promise<void> | null = null;
  const reportProgress = (): void => {
    const at = now().getTime();
    // Not while the database refuses writes: each attempt could block for the busy timeout.
    if (progressWrite || ledgerTrouble || at - lastProgress < PROGRESS_INTERVAL_MS) return;
    lastProgress = at;
    progressWrite = store
      .updateSession(sessionId, { bytesIn, bytesOut })
      .catch((e: unknown) => {
        ledgerTrouble ??= (e as Error).message; // progress only: the session's end writes the totals
      })
      .finally(() => {
        progressWrite = null;
      });
  };

  // --- the client stream -----------------------------------------------------------------------
  const onStop = (): void => {
    endCause ??= new SessionEnd('aborted', 'the session was stopped on the server');
    stopReading();
  };
  // The key or grant went while the session ran: end it like a stop, and tell the client why.
  // borg serve gets EOF at once (nothing more reaches it; it rolls back what is not committed).
  // The client's calls for GRANT_ENDED_GRACE_MS more are answered with the reason: a borg client
  // in the middle of a backup prints that, instead of dying of a broken pipe on its next write
  // before it read the line on stderr (seen through the embedded gateway).
  const onGrantEnded = (why: string): void => {
    if (endCause) return;
    endCause = new SessionEnd('aborted', `${why}; the session was ended and borg rolled back what it had not committed`);
    grantEnded = why;
    s.errOutput.write(`borgkeep: session ended: ${why}; what was not committed is rolled back.\n`);
    if (child && !childExited) child.stdin.end();
    graceTimer = setTimeout(stopReading, GRANT_ENDED_GRACE_MS);
  };
  if (s.stop?.aborted) onStop();
  s.stop?.addEventListener('abort', onStop, { once: true });
  const onGone = (): void => {
    clientGone = true;
    endCause ??= new SessionEnd('aborted', 'the connection to the client was closed');
    stopReading();
  };
  if (s.gone?.aborted) onGone();
  s.gone?.addEventListener('abort', onGone, { once: true });
  try {
    for (;;) {
      const frame = await input.next();
      if (frame === null) break;
      // Nothing more goes to borg serve once the session is ending (a commit behind a revocation).
      if (endCause && !draining && !grantEnded) break;
      await handleFrame(frame);
      reportProgress();
    }
    if (input.pendingBytes > 0 && !endCause) {
      endCause = new SessionEnd('aborted', 'the client went away in the middle of a message');
    }
  } catch (e) {
    if (e instanceof SessionEnd) endCause ??= e;
    else if (e instanceof FrameError) {
      endCause ??= new SessionEnd('error', `the client sent a message borg does not allow: ${e.message}`);
    } else if ((e as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE' || (e as Error).name === 'AbortError') {
      endCause ??= new SessionEnd('aborted', 'the connection to the client was closed');
    } else {
      endCause ??= new SessionEnd('error', `internal error: ${(e as Error).message}`);
    }
  } finally {
    inputEnded = true;
    (grantWatch as GrantWatch | null)?.stop();
    clearTimeout(graceTimer);
    clearTimeout(drainTimer);
    clearTimeout(quietTimer);
    // Ending early (bad frame, signal) must not leave the process waiting on the client.
    stopReading();
    s.stop?.removeEventListener('abort', onStop);
    s.gone?.removeEventListener('abort', onGone);
    if (onConnectionGone) s.gone?.removeEventListener('abort', onConnectionGone);
  }
  if (endCause && endCause.result === 'error') {
    s.errOutput.write(`borgkeep: session ended: ${endCause.detail}.\n`);
  }

  // EOF to the child: borg serve closes the repository, rolling back anything uncommitted.
  if (child) {
    const c: BorgChild = child;
    c.stdin.end();
    const timer = setTimeout(() => c.kill('SIGTERM'), endCause ? 10_000 : 24 * 60 * 60 * 1000);
    await childDone;
    clearTimeout(timer);
    await answerUnanswered(); // calls forwarded after the child was already gone
  }
  await outputChain;
  (index as CommittedIndex | null)?.close();

  const uncommitted = txn !== null && (txn as Txn).writes > 0;
  const release = (archiveRules as SessionArchiveRules | null)?.rolledBack();
  if (release) ledger(release);
  finishTxn('rolled_back', null);
  let result: Exclude<SessionResult, 'open'>;
  let detail: string | null = null;
  if (endCause) {
    result = endCause.result;
    detail = endCause.detail;
  } else if (denials > 0) {
    result = 'denied';
    const parts = [...denialCounts].map(([k, n]) => `${k.split(' ')[0]}${n > 1 ? ` x${n}` : ''}`);
    detail = `${denials} ${denials === 1 ? 'call' : 'calls'} refused: ${parts.join(', ')}`;
  } else if ((rolledBackWrites > 0 || writeFailed) && writeError) {
    // Also when the very first write failed (a full disk), so the transaction had nothing to roll back.
    result = 'error';
    detail = `borg rolled the transaction back: ${writeError}`;
  } else if (uncommitted || clientGone || rolledBackWrites > 0) {
    result = 'aborted';
    detail = clientGone && !uncommitted ? 'the client stopped reading' : 'the session ended with an uncommitted transaction, which borg rolled back';
  } else {
    result = 'ok';
  }
  if (!(opened as boolean) && result === 'ok' && openAttempted) {
    result = 'error';
    if (notInitialised) detail = 'the repository is not initialised yet (borg init with a full key creates it)';
    else detail = openError ? `borg serve could not open the repository: ${openError}` : 'the repository was never opened';
  }
  await ledgerChain;
  await progressWrite; // before the totals, which it must not overwrite
  const end = { endedAt: now(), result, detail, bytesIn, bytesOut, methods: [...methodsDone] };
  const writeRest = async (): Promise<void> => {
    while (refusedWrites.length > 0) {
      await refusedWrites[0]!();
      refusedWrites.shift();
    }
    await store.endSession(sessionId, end);
  };
  // When the database refused a write (locked by another process, its disk full), the client's
  // session is over all the same: it is not kept waiting on the database (every attempt may
  // block for SQLite's busy timeout); the rest is written as soon as the database takes it again,
  // so the session does not stay open in the ledger for ever.
  let ledgerWritten: Promise<boolean> | null = null;
  if (!ledgerTrouble) {
    try {
      await writeRest();
    } catch (e) {
      ledgerTrouble = (e as Error).message;
    }
  }
  if (ledgerTrouble) {
    s.errOutput.write(`borgkeep: the server could not write its ledger (${ledgerTrouble}); it will retry.\n`);
    ledgerWritten = retryLedger(writeRest, deps.ledgerRetryMs ?? LEDGER_RETRY_MS);
  }
  return { sessionId, result, detail, ledgerWritten };
}

/** Runs `write` again after growing pauses until it works (true) or `giveUpMs` passed (false). */
async function retryLedger(write: () => Promise<void>, giveUpMs: number): Promise<boolean> {
  const deadline = Date.now() + giveUpMs;
  for (let i = 0; ; i++) {
    const pause = LEDGER_RETRY_PAUSES_MS[Math.min(i, LEDGER_RETRY_PAUSES_MS.length - 1)]!;
    if (Date.now() + pause > deadline) return false;
    await new Promise((r) => setTimeout(r, pause));
    try {
      await write();
      return true;
    } catch {
      // still refused
    }
  }
}
