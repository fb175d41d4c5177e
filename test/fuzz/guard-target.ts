// Fuzz target 1: the frame splitter, the request parser, the grant policy and the guard, run
// in-process as one whole session per input (runGuardSession) with a fake `borg serve` child
// behind the spawnBorg seam and an in-memory GuardStore.
//
// Inputs: real client streams recorded from the borg client (corpus/guard/*.bin), mutated at the
// level of frames (dropped, repeated, reordered, swapped between sessions, methods and arguments
// replaced) and of bytes; sessions of generated requests; plain random bytes. Each input also picks
// the key's role (read, append, prune, full), the grant's limits, the compaction gate, how the
// stream is cut into chunks and how the fake child behaves (answers, refuses with server paths in
// its messages, crashes, sends garbage, answers out of order).
//
// Checked for every input:
//  - runGuardSession resolves (no exception) within the time limit;
//  - the fake child receives only frames the policy allows for the session's role: every frame
//    is a valid request, byte-identical to what the client sent (except the guard's own open with
//    the real path and its __len__), and decideCall allows it; nothing at all when the key, the
//    grant or the front-end refuses the session; no compaction while the gate is closed; no put
//    of new data when the grant's backups per day are used up;
//  - the session ends once in the store with a result, and with a message unless it was ok, and
//    never with the guard's catch-all 'internal error';
//  - a session that read the client to its end answered every request exactly once;
//  - nothing the client receives names the server's repository directory.

import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';

import type { BorgChild, BorgServeOptions } from '../../src/guard/borg-child.js';
import { MANIFEST_ID, decideCall, destroysHistory } from '../../src/guard/grant-policy.js';
import { runGuardSession, type GuardOutcome } from '../../src/guard/guard.js';
import { readRepositoryNonce } from '../../src/repository/nonce-file.js';
import { createFrameSplitter } from '../../src/rpc/frame-splitter.js';
import { encodeExceptionReply, encodeResultReply, parseReply, parseRequest, type RpcRequest } from '../../src/rpc/messages.js';
import { CLIENT_LIMITS, MsgMap, SERVER_LIMITS, encode, type EncodableValue, type MsgValue } from '../../src/rpc/msgpack.js';
import { NO_ARCHIVE_RULES, type GuardStore, type Role } from '../../src/store/types.js';
import { createPrng, type Prng } from '../support/prng.js';
import { mutate } from './mutate.js';

export const ROLES: readonly Role[] = ['read', 'append', 'prune', 'full'];
const CHILD_BEHAVIOURS = ['normal', 'normal', 'normal', 'errors', 'crash', 'garbage', 'misorder', 'stderr'] as const;
type ChildBehaviour = (typeof CHILD_BEHAVIOURS)[number];
/** The repository directory's name under reposDir; no reply may ever show it. */
const DIR_NAME = 'r8f3kq2x9vz';
const SERVER_VERSION = [1, 2, 4, -1];

export interface GuardInput {
  readonly role: Role;
  readonly keyState: 'ok' | 'unknown' | 'revoked';
  readonly grantState: 'ok' | 'expired' | 'address' | 'refused';
  readonly gateOpen: boolean;
  /** 0: the grant's writes of the day are used up; null: no limit. */
  readonly writesPerDay: 0 | null;
  readonly child: ChildBehaviour;
  /** The child misbehaves at this frame (crash, garbage, misorder), or refuses every n-th (errors). */
  readonly childAt: number;
  /** The session is stopped from the server side once the child has this many frames, or never. */
  readonly stopAt: number | null;
  /** The client's bytes, cut into these chunks. */
  readonly chunks: readonly Buffer[];
}

export interface GuardCorpus {
  readonly sessions: ReadonlyArray<{ readonly name: string; readonly bytes: Buffer; readonly frames: readonly Buffer[] }>;
  /** Object ids committed in the seed repository (from its index.N): for overwrites and deletes. */
  readonly committedIds: readonly Buffer[];
  readonly repoDir: string;
}

/** Loads the recorded sessions and the ids of the recorded repository. */
export function loadGuardCorpus(corpusDir: string): GuardCorpus {
  const dir = join(corpusDir, 'guard');
  const sessions = readdirSync(dir)
    .filter((n) => n.endsWith('.bin'))
    .sort()
    .map((n) => {
      const bytes = readFileSync(join(dir, n));
      // Recorded from the real client: every frame is valid, so the splitter finds all of them.
      const frames = createFrameSplitter(SERVER_LIMITS).push(bytes);
      return { name: n.replace(/\.bin$/, ''), bytes, frames };
    });
  if (sessions.length === 0) throw new Error(`no recorded sessions in ${dir}: run npm run fuzz -- --record`);
  const repoDir = join(corpusDir, 'guard-repo');
  return { sessions, committedIds: indexIds(repoDir), repoDir };
}

/** The ids in the newest index.N of a repository (every used bucket). */
export function indexIds(repoDir: string): Buffer[] {
  const names = readdirSync(repoDir).filter((n) => /^index\.\d+$/.test(n));
  const newest = names.sort((a, b) => Number(b.slice(6)) - Number(a.slice(6)))[0];
  if (!newest) return [];
  const buf = readFileSync(join(repoDir, newest));
  const ids: Buffer[] = [];
  for (let at = 18; at + 40 <= buf.length; at += 40) {
    const seg = buf.readUInt32LE(at + 32);
    if (seg !== 0xffffffff && seg !== 0xfffffffe) ids.push(Buffer.from(buf.subarray(at, at + 32)));
  }
  return ids;
}

// --- inputs --------------------------------------------------------------------------------------

const METHODS = [
  '__len__', 'list', 'scan', 'get', 'load_key', 'get_free_nonce', 'commit_nonce_reservation', 'rollback', 'check', 'put',
  'delete', 'commit', 'save_key', 'break_lock', 'destroy', 'inject_exception', 'open', 'negotiate', 'toString', '__proto__', 'async_responses',
];
const ARG_NAMES = ['id', 'data', 'wait', 'limit', 'marker', 'repair', 'save_space', 'max_duration', 'compact', 'threshold', 'cleanup_commits', 'keydata', 'next_unreserved', 'start_nonce', 'path', 'create', 'lock', 'lock_wait', 'exclusive', 'append_only', 'make_parent_dirs', 'kind', 'constructor'];
const PATHS = ['/./repo', 'repo', '/~/repo', '~/repo', './repo/', '/./missing', '/./../repo', '/etc', '', '/./repo\u0000x', '/./REPO'];

function randomValue(prng: Prng, ids: readonly Buffer[], depth = 0): EncodableValue {
  switch (prng.int(depth > 2 ? 9 : 12)) {
    case 0: return null;
    case 1: return prng.int(2) === 0;
    case 2: return prng.pick([0, 1, -1, 127, 128, 255, 65535, 2 ** 32, 2 ** 53, -(2 ** 31), 20 * 1024 * 1024]);
    case 3: return prng.int(1000);
    case 4: return { float: prng.pick([0.5, -1, Number.NaN, Number.POSITIVE_INFINITY, 1e300]) };
    case 5: return prng.bytes(prng.pick([0, 1, 31, 32, 33]));
    case 6: return ids.length > 0 ? prng.pick(ids) : MANIFEST_ID;
    case 7: return MANIFEST_ID;
    case 8: return prng.pick([BigInt(2) ** BigInt(63), -(BigInt(2) ** BigInt(63)), BigInt(2) ** BigInt(64) - BigInt(1)]);
    case 9: return Array.from({ length: prng.int(4) }, () => randomValue(prng, ids, depth + 1));
    case 10: return MsgMap.of(Array.from({ length: prng.int(3) }, () => [prng.pick(ARG_NAMES), randomValue(prng, ids, depth + 1) as MsgValue]));
    default: return prng.pick(PATHS);
  }
}

/** A plausible value for a named argument, mostly of the right type. */
function argValue(prng: Prng, name: string, ids: readonly Buffer[]): EncodableValue {
  if (prng.int(6) === 0) return randomValue(prng, ids);
  switch (name) {
    case 'id': case 'marker': return prng.int(3) === 0 ? MANIFEST_ID : prng.int(2) === 0 && ids.length > 0 ? prng.pick(ids) : prng.bytes(32);
    case 'data': case 'keydata': return prng.bytes(prng.int(64));
    case 'path': return prng.pick(PATHS);
    case 'limit': case 'next_unreserved': case 'start_nonce': case 'max_duration': case 'lock_wait': return prng.int(3) === 0 ? null : prng.int(100_000);
    case 'threshold': return { float: 0.1 };
    default: return prng.int(2) === 0;
  }
}

/** A request of a random method with mostly plausible arguments, in either format. */
function randomRequest(prng: Prng, ids: readonly Buffer[], known: Buffer[]): Buffer {
  const method = prng.pick(METHODS);
  const msgid = prng.int(8) === 0 ? prng.pick([0, -1, 2 ** 53, 2 ** 31]) : 1 + prng.int(500);
  const names = [...new Set(Array.from({ length: prng.int(4) }, () => prng.pick(ARG_NAMES)))];
  if (method === 'put') names.push('id', 'data');
  if (method === 'delete' || method === 'get') names.push('id');
  const unique = [...new Set(names)];
  if (prng.int(8) === 0) {
    return encode([1, msgid, method, unique.map((n) => argValue(prng, n, ids))]);
  }
  const args = MsgMap.of(unique.map((n) => [n, argValue(prng, n, ids) as MsgValue]));
  const req = encode(MsgMap.of([['i', msgid], ['m', Buffer.from(method)], ['a', args]]));
  if (method === 'put') known.push(req);
  return req;
}

/** A recorded frame with its method, an argument or its message id replaced. */
function rewriteFrame(prng: Prng, frame: Buffer, ids: readonly Buffer[]): Buffer {
  let req: RpcRequest;
  try {
    req = parseRequest(frame);
  } catch {
    return frame;
  }
  const method = prng.int(3) === 0 ? prng.pick(METHODS) : req.method;
  const args = new Map<string, EncodableValue>(req.args);
  const name = prng.int(3) === 0 ? prng.pick(ARG_NAMES) : [...args.keys()][prng.int(Math.max(1, args.size))] ?? prng.pick(ARG_NAMES);
  if (prng.int(4) === 0) args.delete(name);
  else args.set(name, argValue(prng, name, ids));
  const msgid = prng.int(6) === 0 ? prng.pick([req.msgid, req.msgid + 1, 0]) : req.msgid;
  try {
    if (req.format === 'tuple') return encode([1, msgid, method, [...args.values()]]);
    return encode(MsgMap.of([['i', msgid], ['m', Buffer.from(method)], ['a', MsgMap.of([...args].map(([k, v]) => [k, v as MsgValue]))]]));
  } catch {
    return frame; // a decoded float64 beyond 2^64 is an integral number, which encode() refuses as Python would
  }
}

function cutIntoChunks(prng: Prng, bytes: Buffer): Buffer[] {
  if (bytes.length === 0) return [];
  const style = prng.int(4);
  if (style === 0) return [bytes];
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; ) {
    const n = style === 1 ? prng.range(1, 8) : style === 2 ? prng.range(1, 4096) : prng.range(1, 65536);
    chunks.push(bytes.subarray(at, at + n));
    at += n;
  }
  return chunks;
}

/** Input `seed` of the guard target: a pure function of the seed and the corpus. */
export function generateGuardInput(seed: number, corpus: GuardCorpus): GuardInput {
  const prng = createPrng(seed);
  const ids = corpus.committedIds;
  const base = prng.pick(corpus.sessions);
  const other = prng.pick(corpus.sessions);
  let bytes: Buffer;
  const shape = prng.int(20);
  if (shape < 10) {
    // frame-level mutations of a recorded session
    const frames = [...base.frames];
    const known: Buffer[] = [];
    const ops = 1 + prng.int(6);
    for (let k = 0; k < ops && frames.length > 0; k++) {
      const at = prng.int(frames.length);
      switch (prng.int(8)) {
        case 0: frames.splice(at, 1); break;
        case 1: frames.splice(at, 0, frames[at]); break;
        case 2: { const j = prng.int(frames.length); [frames[at], frames[j]] = [frames[j], frames[at]]; break; }
        case 3: frames.splice(at, 0, prng.pick(other.frames)); break;
        case 4: frames.splice(at, 0, randomRequest(prng, ids, known)); break;
        case 5: frames[at] = rewriteFrame(prng, frames[at], ids); break;
        case 6: frames[at] = mutate(prng, frames[at], prng.pick(other.frames), 3); break;
        default: frames.splice(at + 1); break; // the client goes away
      }
    }
    bytes = Buffer.concat(frames);
  } else if (shape < 15) {
    bytes = mutate(prng, base.bytes, other.bytes);
  } else if (shape < 19) {
    // negotiate and open as the client sends them, then generated requests
    const known: Buffer[] = [];
    const frames = base.frames.slice(0, 2);
    const n = prng.int(40);
    for (let k = 0; k < n; k++) frames.push(prng.int(5) === 0 && known.length > 0 ? prng.pick(known) : randomRequest(prng, ids, known));
    bytes = Buffer.concat(frames);
    if (prng.int(4) === 0) bytes = mutate(prng, bytes, other.bytes, 2);
  } else {
    bytes = prng.int(2) === 0 ? prng.bytes(prng.int(512)) : Buffer.concat([base.frames[0] ?? Buffer.alloc(0), prng.bytes(prng.int(512))]);
  }
  const special = prng.int(16);
  return {
    role: prng.pick(ROLES),
    keyState: special === 0 ? 'unknown' : special === 1 ? 'revoked' : 'ok',
    grantState: special === 2 ? 'expired' : special === 3 ? 'address' : special === 4 ? 'refused' : 'ok',
    gateOpen: prng.int(2) === 0,
    writesPerDay: prng.int(8) === 0 ? 0 : null,
    child: prng.pick(CHILD_BEHAVIOURS),
    childAt: prng.range(1, 30),
    stopAt: prng.int(16) === 0 ? prng.range(1, 20) : null,
    chunks: cutIntoChunks(prng, bytes),
  };
}

export function guardInputToJson(input: GuardInput): object {
  return { ...input, chunks: undefined, stream: Buffer.concat(input.chunks).toString('base64'), chunkSizes: input.chunks.map((c) => c.length) };
}

export function guardInputFromJson(j: Record<string, unknown>): GuardInput {
  const stream = Buffer.from(j.stream as string, 'base64');
  const chunks: Buffer[] = [];
  let at = 0;
  for (const n of j.chunkSizes as number[]) {
    chunks.push(stream.subarray(at, at + n));
    at += n;
  }
  return { ...(j as unknown as GuardInput), chunks };
}

// --- one session ---------------------------------------------------------------------------------

export interface Violation {
  readonly property: string;
  readonly message: string;
}

interface Harness {
  readonly reposDir: string;
  readonly repoPath: string;
  readonly committed: Set<string>;
}

export function createGuardHarness(reposDir: string, corpus: GuardCorpus): Harness {
  return { reposDir, repoPath: join(reposDir, DIR_NAME), committed: new Set(corpus.committedIds.map((b) => b.toString('latin1'))) };
}

/** The directory the harness expects the seed repository to be copied to. */
export const guardRepoDirName = DIR_NAME;

function fakeStore(input: GuardInput, ends: Array<{ result: string; detail: string | null }>): GuardStore {
  const created = new Date('2026-01-01T00:00:00Z');
  let sessions = 0;
  const grant = {
    id: 1,
    keyId: 7,
    repositoryId: 3,
    role: input.role,
    writesPerDay: input.writesPerDay,
    fromCidrs: input.grantState === 'address' ? ['192.0.2.0/24'] : null,
    expiresAt: input.grantState === 'expired' ? created : null,
    createdAt: created,
    ...NO_ARCHIVE_RULES,
  };
  return {
    findKey: async () =>
      input.keyState === 'unknown'
        ? undefined
        : { id: 7, name: 'laptop', type: 'ssh-ed25519', blob: '', fingerprint: 'SHA256:x', comment: null, bits: 256, createdAt: created, revokedAt: input.keyState === 'revoked' ? created : null },
    findGrant: async (_keyId, name) =>
      name !== 'repo'
        ? undefined
        : {
            grant,
            repository: { id: 3, name: 'repo', dirName: DIR_NAME, quotaBytes: null, expectedIntervalSeconds: 86400, createdAt: created },
          },
    claimBackup: async () => ({ claimed: input.writesPerDay !== 0, backups: 0 }),
    grantStanding: async () => ({ keyRevokedAt: input.keyState === 'revoked' ? created : null, grant }),
    startSession: async () => ++sessions,
    updateSession: async () => undefined,
    endSession: async (_id, end) => {
      ends.push({ result: end.result, detail: end.detail });
    },
    recordTransaction: async () => 1,
    recordDenial: async () => 1,
    listEvents: async () => [],
    recordEvent: async (e) => ({ ...e, id: 1, at: created }),
    listCommittedTransactions: async () => [],
    claimRemovals: async () => ({ claimed: true, used: 0, claimId: 1 }),
    releaseRemovals: async () => undefined,
    recordArchiveSightings: async () => undefined,
    listArchiveSightings: async () => [],
  };
}

/** `borg serve` as far as the guard can tell, which checks every frame it is given. */
function fakeChild(opts: BorgServeOptions, input: GuardInput, h: Harness, clientBytes: Buffer, violations: Violation[], onFrame: (n: number) => void): BorgChild {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let resolveExit: (v: number | string) => void = () => undefined;
  const exited = new Promise<number | string>((r) => (resolveExit = r));
  let done = false;
  const finish = (code: number | string) => {
    if (done) return;
    done = true;
    stdout.end();
    stderr.end();
    resolveExit(code);
  };
  const violate = (property: string, message: string) => violations.push({ property, message });
  if (opts.repositoryPath !== h.repoPath) violate('forwarded', `the child was started for ${opts.repositoryPath}`);
  if (opts.appendOnly !== (input.role !== 'full')) violate('forwarded', `the child was started with appendOnly=${opts.appendOnly} for role ${input.role}`);

  const splitter = createFrameSplitter(SERVER_LIMITS);
  let frames = 0;
  let opened = false;
  let unlocked = false;
  let prevCreate = false;
  const putIds = new Set<string>();

  const answer = (req: RpcRequest): void => {
    if (done) return;
    frames++;
    if (input.child === 'crash' && frames >= input.childAt) {
      stderr.write(`Traceback: ${h.repoPath}/data/0/1 crashed\n`);
      finish(1);
      return;
    }
    if (input.child === 'garbage' && frames >= input.childAt) {
      stdout.write(Buffer.from([0xc1, 0xc1, 0x00, 0xff]));
      return;
    }
    if (input.child === 'stderr') stderr.write(`Remote: opening ${h.repoPath} (${h.reposDir})\n`);
    const msgid = input.child === 'misorder' && frames === input.childAt ? req.msgid + 1 : req.msgid;
    if (input.child === 'errors' && frames % input.childAt === 0 && req.method !== 'negotiate') {
      const text = `Repository ${h.repoPath} does not exist.`;
      stdout.write(encodeExceptionReply(req.format, msgid, { exceptionClass: 'DoesNotExist', message: text, args: [h.repoPath], trace: true }));
      return;
    }
    // As borg does: a reservation rewrites the nonce file the guard judges the next one against.
    if (req.method === 'commit_nonce_reservation') writeNonce(h.repoPath, req.args.get('next_unreserved'));
    let result: EncodableValue = null;
    if (req.method === 'negotiate') result = req.format === 'tuple' ? 2 : MsgMap.of([['server_version', SERVER_VERSION as MsgValue]]);
    else if (req.method === 'open') result = Buffer.alloc(32, 1);
    else if (req.method === '__len__') result = h.committed.size;
    else if (req.method === 'get' || req.method === 'load_key') result = Buffer.from('data');
    stdout.write(encodeResultReply(req.format, msgid, result));
  };

  const check = (frame: Buffer): void => {
    let req: RpcRequest;
    try {
      req = parseRequest(frame);
    } catch (e) {
      violate('forwarded', `the child got a frame that is not a request: ${(e as Error).message}`);
      return;
    }
    if (req.method === 'negotiate') {
      if (frames > 0 || opened) violate('forwarded', 'the child got negotiate after other calls');
      if (!clientBytes.includes(frame)) violate('forwarded', 'the child got a negotiate the client did not send');
      return answer(req);
    }
    if (req.method === 'open') {
      if (opened) violate('forwarded', 'the child got a second open');
      opened = true;
      const path = req.args.get('path');
      if (!Buffer.isBuffer(path) || path.toString('utf8') !== h.repoPath) violate('forwarded', 'the child got an open of another path');
      if (req.args.get('make_parent_dirs') === true) violate('forwarded', 'the child got open with make_parent_dirs');
      if (req.args.get('create') === true && input.role !== 'full') violate('forwarded', `the child got open(create) for role ${input.role}`);
      unlocked = req.args.get('lock') === false;
      prevCreate = req.args.get('create') === true;
      return answer(req);
    }
    if (!opened) violate('forwarded', `the child got ${req.method} before open`);
    // The guard's own __len__ (negative msgids); a client may use negative msgids too, and
    // then its frame is checked like any other below.
    if (req.msgid < 0 && req.method === '__len__' && req.args.size === 0) return answer(req);
    // The one rewrite besides open: a compacting commit the closed gate deferred, sent as compact=False.
    const deferred = req.method === 'commit' && req.args.get('compact') === false && !input.gateOpen && req.format === 'dict';
    if (!deferred && !clientBytes.includes(frame)) violate('forwarded', `the child got a ${req.method} the client did not send byte for byte`);
    const decision = decideCall(req, {
      role: input.role,
      unlocked,
      justCreated: prevCreate,
      existsCommitted: (id) => h.committed.has(id.toString('latin1')),
      // Weaker than the guard's own notion (put in this session, committed or not): no false alarms.
      putBySession: (id) => putIds.has(id.toString('latin1')),
      currentNonce: () => readRepositoryNonce(h.repoPath),
    });
    prevCreate = false;
    if (!decision.allow) violate('forwarded', `the child got a ${req.method} that decideCall refuses for role ${input.role}: ${decision.why}`);
    // A used-up backups-per-day limit stops the first new object besides the manifest (a prune's
    // deletes and manifest and a compaction are no backup and go through).
    else if (input.writesPerDay === 0 && req.method === 'put' && !(req.args.get('id') as Buffer).equals(MANIFEST_ID)) {
      violate('forwarded', `the child got a put of new data though the day's backups are used up`);
    }
    if (destroysHistory(req) && !input.gateOpen) violate('forwarded', `the child got a compacting ${req.method} while the gate is closed`);
    if (req.method === 'put') putIds.add((req.args.get('id') as Buffer).toString('latin1'));
    onFrame(frames + 1);
    answer(req);
  };

  const stdin = new Writable({
    write(chunk: Buffer, _enc, cb) {
      if (!done) {
        try {
          for (const f of splitter.push(chunk)) check(f);
        } catch (e) {
          violate('forwarded', `the child got bytes borg's unpacker rejects: ${(e as Error).message}`);
        }
      }
      cb();
    },
    final(cb) {
      if (splitter.pendingBytes > 0) violate('forwarded', `the child got ${splitter.pendingBytes} bytes of an incomplete frame`);
      cb();
      setImmediate(() => finish(0));
    },
  });
  stdin.on('error', () => undefined);
  return { stdin, stdout, stderr, exited, kill: (signal = 'SIGTERM') => finish(signal) };
}

class Sink extends Writable {
  readonly parts: Buffer[] = [];
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: () => void): void {
    this.parts.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
    cb();
  }
  text(): string {
    return Buffer.concat(this.parts).toString('latin1');
  }
}

const RESULTS = new Set(['ok', 'denied', 'error', 'aborted']);

/** Why the replies do not match the requests one for one by msgid, or null when they do. */
function unansweredRequests(requests: Buffer, replies: Buffer): string | null {
  const count = new Map<number, number>();
  for (const f of createFrameSplitter(SERVER_LIMITS).push(requests)) {
    const id = parseRequest(f).msgid;
    count.set(id, (count.get(id) ?? 0) + 1);
  }
  for (const f of createFrameSplitter(CLIENT_LIMITS).push(replies)) {
    const r = parseReply(f);
    if (!r) return 'the client got a frame that is not a reply';
    count.set(r.msgid, (count.get(r.msgid) ?? 0) - 1);
  }
  for (const [id, n] of count) {
    if (n > 0) return `request ${id} got ${n} reply(s) too few`;
    if (n < 0) return `msgid ${id} got ${-n} reply(s) too many`;
  }
  return null;
}

export interface GuardRun {
  readonly violations: Violation[];
  /** How the session ended; null when it did not (a crash or a hang). */
  readonly outcome: GuardOutcome | null;
  /** What the client received on stderr. */
  readonly stderr: string;
}

/** Writes the repository's nonce file as borg does (16 hex digits); removes it for nil. */
function writeNonce(repoPath: string, value: MsgValue | undefined): void {
  if (value === null) rmSync(join(repoPath, 'nonce'), { force: true });
  else if ((typeof value === 'number' || typeof value === 'bigint') && BigInt(value) >= 0n && BigInt(value) < 2n ** 64n) {
    writeFileSync(join(repoPath, 'nonce'), BigInt(value).toString(16).padStart(16, '0'));
  }
}

/**
 * The recorded sessions come from one repository at different times: each finds the nonce file
 * as it was when it ran, i.e. where its first reservation starts (the seed's state otherwise).
 */
function nonceAsRecorded(repoPath: string, clientBytes: Buffer): void {
  let frames: Buffer[];
  try {
    frames = createFrameSplitter(SERVER_LIMITS).push(clientBytes);
  } catch {
    return;
  }
  for (const frame of frames) {
    try {
      const req = parseRequest(frame);
      if (req.method === 'commit_nonce_reservation' && req.args.has('start_nonce')) return writeNonce(repoPath, req.args.get('start_nonce'));
    } catch {
      // not a request the parser reads: the guard will refuse it
    }
  }
}

/** Runs one input; says what went wrong (nothing, for a good input). */
export async function runGuardInput(input: GuardInput, h: Harness, timeLimitMs: number): Promise<GuardRun> {
  const violations: Violation[] = [];
  const ends: Array<{ result: string; detail: string | null }> = [];
  const clientBytes = Buffer.concat(input.chunks);
  nonceAsRecorded(h.repoPath, clientBytes);
  const stop = new AbortController();
  let spawned = 0;
  const output = new Sink();
  const errOutput = new Sink();
  const run = runGuardSession(
    {
      store: fakeStore(input, ends),
      reposDir: h.reposDir,
      spawnBorg: (opts) => {
        spawned++;
        if (spawned > 1) violations.push({ property: 'forwarded', message: 'a second child was started' });
        if (input.keyState !== 'ok' || input.grantState !== 'ok') {
          violations.push({ property: 'forwarded', message: `a child was started though the session is refused (${input.keyState}, ${input.grantState})` });
        }
        return fakeChild(opts, input, h, clientBytes, violations, (n) => {
          if (input.stopAt !== null && n >= input.stopAt) stop.abort();
        });
      },
      borgVersion: () => [1, 2, 4, -1],
      // The gate's look at the disk, as the input says: closed defers a commit and refuses the rest.
      checkCompaction: async () => ({
        decision: {
          allow: input.gateOpen,
          unverified: input.gateOpen ? [] : [{ id: 7, session: 1, key: 'k', role: 'prune', why: 'deleted 1 object(s) written by earlier sessions' }],
          structurallyVerified: 0,
          coverage: { keyVerifiedThrough: null, coveredThrough: null, by: null },
        },
        freeable: 0,
        fromTxn: null,
        why: 'the fuzzer says so',
        keep: async () => 0,
      }),
      host: 'fuzz',
      pid: 1,
    },
    {
      keyRef: 'laptop',
      clientAddress: '198.51.100.7',
      logLevel: null,
      input: Readable.from(input.chunks, { objectMode: false }),
      output,
      errOutput,
      stop: stop.signal,
      refusal: input.grantState === 'refused' ? { reason: 'BK_DENY_SESSION_LIMIT', why: 'the server has too many sessions' } : undefined,
    },
  );
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<'hang'>((resolve) => {
    timer = setTimeout(() => resolve('hang'), timeLimitMs);
  });
  let outcome: GuardOutcome | 'hang';
  try {
    outcome = await Promise.race([run, hang]);
  } catch (e) {
    violations.push({ property: 'crash', message: `runGuardSession threw: ${(e as Error)?.stack ?? String(e)}` });
    return { violations, outcome: null, stderr: errOutput.text() };
  } finally {
    clearTimeout(timer);
  }
  if (outcome === 'hang') {
    violations.push({ property: 'hang', message: `the session did not end within ${timeLimitMs} ms` });
    return { violations, outcome: null, stderr: errOutput.text() };
  }
  if (!RESULTS.has(outcome.result)) violations.push({ property: 'result', message: `the session ended with result '${String(outcome.result)}'` });
  // The guard's catch-all for exceptions it did not expect: a crash, however politely reported.
  if (outcome.detail?.startsWith('internal error')) violations.push({ property: 'crash', message: `the session ended with ${outcome.detail}` });
  if (outcome.result !== 'ok' && !(typeof outcome.detail === 'string' && outcome.detail.length > 0)) {
    violations.push({ property: 'result', message: `the session ended '${outcome.result}' without a message` });
  }
  if (ends.length !== 1 || ends[0].result !== outcome.result) {
    violations.push({ property: 'result', message: `the store saw ${ends.length} session end(s) (${ends.map((e) => e.result).join(', ')}) for result ${outcome.result}` });
  }
  // A session that read the client to its end: every request got exactly one reply with its msgid.
  if (outcome.result === 'ok' || outcome.result === 'denied') {
    const unanswered = unansweredRequests(clientBytes, Buffer.concat(output.parts));
    if (unanswered) violations.push({ property: 'reply', message: unanswered });
  }
  for (const [what, sink] of [['reply', output], ['stderr line', errOutput]] as const) {
    const text = sink.text();
    if (text.includes(DIR_NAME) || text.includes(h.reposDir)) violations.push({ property: 'leak', message: `a ${what} to the client names the server's repository directory` });
  }
  return { violations, outcome, stderr: errOutput.text() };
}
