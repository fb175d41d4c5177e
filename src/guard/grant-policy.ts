// The decision for every RPC call after `open`, from the role of the key's grant and what the
// session has done so far (ARCHITECTURE.md "Roles of a grant"; fact sheet F for the holes that
// `borg serve --append-only` leaves open).
//
// Pure and synchronous: whatever it needs to know about the repository (does this object exist
// in the committed state? was it written by this session?) comes in as functions. It never
// allows what it does not recognise: unknown methods, unknown arguments and wrongly typed
// arguments are refused.

import type { MsgValue } from '../rpc/msgpack.js';
import type { RpcRequest } from '../rpc/messages.js';
import type { Role } from '../store/types.js';
import { keyBlobProblem } from '../repository/borg-key.js';
import { MANIFEST_ID } from '../repository/manifest.js';

export { MANIFEST_ID } from '../repository/manifest.js';
/** borg's MAX_DATA_SIZE: the largest put payload (20 MiB - 41). */
export const MAX_DATA_SIZE = 20 * 1024 * 1024 - 41;

/** borg 1.2's NONCE_SPACE_RESERVATION (crypto/nonces.py): AES blocks it reserves beyond what it needs now. */
export const NONCE_SPACE_RESERVATION = 2n ** 28n;
/**
 * The furthest a stock borg 1.2 client moves the repository's nonce in one reservation. It reserves
 * from max(repository nonce, its own copy, the manifest's next IV) up to that plus the blocks of
 * the object it is about to encrypt plus NONCE_SPACE_RESERVATION; that object is at most borg's
 * MAX_OBJECT_SIZE (20 MiB, else its put fails), i.e. 20 MiB / 16 blocks. Its own copy and the
 * manifest's IV are never ahead of the repository's file unless that file was moved back.
 */
export const MAX_NONCE_RESERVATION = NONCE_SPACE_RESERVATION + BigInt((20 * 1024 * 1024) / 16);

export type DenyReason =
  | 'BK_DENY_ROLE'
  | 'BK_DENY_OVERWRITE'
  | 'BK_DENY_DELETE_OLD'
  | 'BK_DENY_UNLOCKED_WRITE'
  | 'BK_DENY_SECOND_OPEN'
  | 'BK_DENY_SAVE_KEY'
  | 'BK_DENY_COMPACT'
  | 'BK_DENY_REPAIR'
  | 'BK_DENY_DESTROY'
  | 'BK_DENY_BREAK_LOCK'
  | 'BK_DENY_INJECT'
  | 'BK_DENY_UNKNOWN_METHOD'
  | 'BK_DENY_BAD_ARGS'
  | 'BK_DENY_NOT_OPEN'
  | 'BK_DENY_NONCE'
  | 'BK_DENY_NONCE_JUMP'
  | 'BK_DENY_CREATE'
  | 'BK_DENY_NO_REPOSITORY'
  | 'BK_DENY_REVOKED'
  | 'BK_DENY_EXPIRED'
  | 'BK_DENY_ADDRESS'
  | 'BK_DENY_WRITE_LIMIT'
  | 'BK_DENY_PROTOCOL'
  | 'BK_DENY_SESSION_LIMIT'
  | 'BK_DENY_SHUTDOWN'
  | 'BK_DENY_NODE_DOWN'
  | 'BK_DENY_GATE'
  | 'BK_DENY_ARCHIVE_RULE'
  | 'BK_DENY_OBJECT_ID'
  | 'BK_DENY_OBJECT_ENVELOPE'
  | 'BK_DENY_OBJECT_UNVERIFIED';

export type Decision =
  | { readonly allow: true; readonly write: boolean }
  | { readonly allow: false; readonly reason: DenyReason; /** why, completing "<method> refused: ..." */ readonly why: string };

/** What the policy may ask about the session and the repository. */
export interface PolicyContext {
  readonly role: Role;
  /** The session opened the repository with lock=False. */
  readonly unlocked: boolean;
  /** The previous call of the session was open(create=True). */
  readonly justCreated: boolean;
  /** The object exists in the repository's committed state. */
  existsCommitted(id: Buffer): boolean;
  /** The object was put by this session (committed since, or still in its transaction). */
  putBySession(id: Buffer): boolean;
  /**
   * The repository's `nonce` file now (borg's next unreserved AES-CTR counter): null when there is
   * none, 'unreadable' when it is not the 16 hex digits borg writes. Asked only for nonce calls.
   */
  currentNonce(): bigint | null | 'unreadable';
}

type ArgType = 'bool' | 'int' | 'uint' | 'number' | 'id' | 'bytes' | 'any';
interface MethodSpec {
  readonly args: Readonly<Record<string, { type: ArgType; optional?: boolean; nullable?: boolean }>>;
  readonly roles: readonly Role[];
  readonly write: boolean;
}

const ALL: readonly Role[] = ['read', 'append', 'prune', 'full'];
const WRITERS: readonly Role[] = ['append', 'prune', 'full'];

// Argument names and types of borg 1.2's server methods (RepositoryServer / Repository).
// `negotiate` and `open` are handled by the guard before any policy call.
const METHODS: Readonly<Record<string, MethodSpec>> = {
  __len__: { args: {}, roles: ALL, write: false },
  list: { args: { limit: { type: 'uint', optional: true, nullable: true }, marker: { type: 'id', optional: true, nullable: true } }, roles: ALL, write: false },
  scan: { args: { limit: { type: 'uint', optional: true, nullable: true }, marker: { type: 'id', optional: true, nullable: true } }, roles: ALL, write: false },
  get: { args: { id: { type: 'id' } }, roles: ALL, write: false },
  load_key: { args: {}, roles: ALL, write: false },
  // Writes: the reservation rewrites the repository's `nonce` file, and borg asks for the
  // exclusive lock for both (a read key's `borg check --archives-only` asks for them too).
  get_free_nonce: { args: {}, roles: WRITERS, write: true },
  commit_nonce_reservation: { args: { next_unreserved: { type: 'uint' }, start_nonce: { type: 'uint', nullable: true } }, roles: WRITERS, write: true },
  rollback: { args: {}, roles: ALL, write: false },
  check: {
    args: { repair: { type: 'bool', optional: true }, save_space: { type: 'bool', optional: true }, max_duration: { type: 'uint', optional: true } },
    roles: ALL,
    write: false,
  },
  put: { args: { id: { type: 'id' }, data: { type: 'bytes' }, wait: { type: 'bool', optional: true } }, roles: WRITERS, write: true },
  delete: { args: { id: { type: 'id' }, wait: { type: 'bool', optional: true } }, roles: WRITERS, write: true },
  commit: {
    args: {
      save_space: { type: 'bool', optional: true },
      compact: { type: 'bool', optional: true },
      threshold: { type: 'number', optional: true },
      cleanup_commits: { type: 'bool', optional: true },
    },
    roles: WRITERS,
    write: true,
  },
  save_key: { args: { keydata: { type: 'bytes' } }, roles: ALL, write: true },
  break_lock: { args: {}, roles: ['full'], write: true },
  destroy: { args: {}, roles: ['full'], write: true },
  inject_exception: { args: { kind: { type: 'any' } }, roles: [], write: false },
};

function typeOk(v: MsgValue, t: ArgType): boolean {
  switch (t) {
    case 'bool': return typeof v === 'boolean';
    case 'int': return typeof v === 'number' && Number.isSafeInteger(v);
    case 'uint': return (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) || (typeof v === 'bigint' && v >= 0n);
    case 'number': return typeof v === 'number' && Number.isFinite(v);
    case 'id': return Buffer.isBuffer(v) && v.length === 32;
    case 'bytes': return Buffer.isBuffer(v);
    case 'any': return true;
  }
}

const deny = (reason: DenyReason, why: string): Decision => ({ allow: false, reason, why });
const UNLOCKED = 'the repository was opened without a lock, so nothing may be written in this session';
const NONCE_READ_ROLE =
  "the read role may not reserve nonce space, which rewrites the repository's nonce file (borg asks for it before it encrypts anything, also in 'borg check --archives-only' of an encrypted repository)";

/**
 * Whether an allowed call makes deletions permanent, so a full grant needs the compaction gate
 * open for it: a compacting commit (a missing `compact` compacts: borg's server default),
 * destroy, and check with repair (which rewrites segments).
 */
export function destroysHistory(req: RpcRequest): boolean {
  if (req.method === 'commit') return req.args.get('compact') !== false;
  if (req.method === 'check') return req.args.get('repair') === true;
  return req.method === 'destroy';
}

/** Whether the method is one borg serve knows and the guard lets any role call at all. */
export function isKnownMethod(method: string): boolean {
  return Object.hasOwn(METHODS, method) || method === 'negotiate' || method === 'open';
}

/** Checks argument names and types of a call to a known method; returns why not, or null. */
export function checkArgs(req: RpcRequest): string | null {
  const spec = METHODS[req.method];
  if (!spec) return null;
  for (const [name, value] of req.args) {
    // Own properties only: an argument called 'toString' or '__proto__' is unknown, not a spec.
    const a = Object.hasOwn(spec.args, name) ? spec.args[name] : undefined;
    if (!a) return `it has an unknown argument '${name}'`;
    if (value === null ? !a.nullable : !typeOk(value, a.type)) return `its argument '${name}' has the wrong type`;
  }
  for (const [name, a] of Object.entries(spec.args)) {
    if (!a.optional && !req.args.has(name)) return `it lacks the argument '${name}'`;
  }
  return null;
}

/** Decides one call made after a successful `open`. */
export function decideCall(req: RpcRequest, ctx: PolicyContext): Decision {
  const { method, args } = req;
  const spec = Object.hasOwn(METHODS, method) ? METHODS[method] : undefined;
  if (!spec) return deny('BK_DENY_UNKNOWN_METHOD', 'borgkeep does not allow this method');
  if (method === 'inject_exception') return deny('BK_DENY_INJECT', 'it is a test hook of borg serve and never allowed');
  if (req.unmappable) return deny('BK_DENY_BAD_ARGS', 'this method cannot be called in the legacy tuple format');
  const badArgs = checkArgs(req);
  if (badArgs) return deny('BK_DENY_BAD_ARGS', badArgs);

  const role = ctx.role;
  const full = role === 'full';

  switch (method) {
    case 'break_lock':
      if (!full) return deny('BK_DENY_BREAK_LOCK', 'only a full grant may break the repository lock');
      return { allow: true, write: true };
    case 'destroy':
      if (!full) return deny('BK_DENY_DESTROY', 'only a full grant may destroy a repository');
      break;
    case 'check': {
      const repair = args.get('repair') === true;
      if (repair && !full) return deny('BK_DENY_REPAIR', 'only a full grant may repair a repository');
      // borg 1.2's server-side check rewrites `config` (it keeps its progress there), so it is a
      // write, and a read key changes no file of the repository.
      if (role === 'read') {
        return deny(
          'BK_DENY_ROLE',
          "the read role may not run borg's repository check, which rewrites the repository's config file; a writing key may (with a read key, 'borg check --archives-only' works on repositories that are not encrypted)",
        );
      }
      // A repair rewrites segments and the index: never without the repository lock.
      if (repair && ctx.unlocked) {
        return deny('BK_DENY_UNLOCKED_WRITE', UNLOCKED);
      }
      return { allow: true, write: repair };
    }
    case 'save_key':
      if (!full && !ctx.justCreated) return deny('BK_DENY_SAVE_KEY', 'only a full grant may replace the repository key');
      {
        // borg erases the previous config when it writes the new one: junk here loses the key.
        const problem = keyBlobProblem(args.get('keydata') as Buffer);
        if (problem) return deny('BK_DENY_SAVE_KEY', `the key data is not an encrypted borg 1.2 key: ${problem}`);
      }
      break;
    case 'get_free_nonce':
      if (!spec.roles.includes(role)) return deny('BK_DENY_ROLE', NONCE_READ_ROLE);
      break;
    case 'commit_nonce_reservation': {
      if (!spec.roles.includes(role)) return deny('BK_DENY_ROLE', NONCE_READ_ROLE);
      if (ctx.unlocked) return deny('BK_DENY_UNLOCKED_WRITE', UNLOCKED);
      const next = BigInt(args.get('next_unreserved') as number | bigint);
      const startArg = args.get('start_nonce');
      const start = startArg === null || startArg === undefined ? null : BigInt(startArg as number | bigint);
      const current = ctx.currentNonce();
      if (current === 'unreadable') return deny('BK_DENY_NONCE', "the repository's nonce file is not what borg writes; an admin must look at it");
      // borg refuses this too; refusing it here means the reservation below is judged from the file.
      if (start !== current) return deny('BK_DENY_NONCE', "the reservation does not start at the repository's current nonce");
      const from = current ?? 0n;
      if (next < from) return deny('BK_DENY_NONCE', 'a nonce reservation may only move forward');
      if (next - from > MAX_NONCE_RESERVATION) {
        return deny('BK_DENY_NONCE_JUMP', `it would move the repository's nonce forward by ${next - from} AES blocks, more than the ${MAX_NONCE_RESERVATION} borg reserves at once`);
      }
      break;
    }
    case 'commit':
      // A role that may not commit at all is told so, not that it may not compact.
      if (!spec.roles.includes(role)) return deny('BK_DENY_ROLE', `the ${role} role may not commit`);
      if (args.get('compact') !== false && !full) {
        return deny('BK_DENY_COMPACT', `only a full grant may compact a repository (commit without compact=False)`);
      }
      break;
    case 'put': {
      const id = args.get('id') as Buffer;
      const data = args.get('data') as Buffer;
      if (data.length > MAX_DATA_SIZE) return deny('BK_DENY_BAD_ARGS', `the object is larger than borg's limit of ${MAX_DATA_SIZE} bytes`);
      if (!spec.roles.includes(role)) return deny('BK_DENY_ROLE', `the ${role} role may not write objects`);
      const manifest = id.equals(MANIFEST_ID);
      if (role === 'prune' && !manifest) return deny('BK_DENY_ROLE', 'the prune role may only rewrite the manifest, not add objects');
      if (role === 'append' && !manifest && ctx.existsCommitted(id)) {
        return deny('BK_DENY_OVERWRITE', 'the append role may not overwrite an object that is already in the repository');
      }
      break;
    }
    case 'delete': {
      const id = args.get('id') as Buffer;
      if (!spec.roles.includes(role)) return deny('BK_DENY_ROLE', `the ${role} role may not delete objects`);
      if (!full && id.equals(MANIFEST_ID)) return deny('BK_DENY_ROLE', 'only a full grant may delete the manifest');
      if (role === 'append' && !ctx.putBySession(id)) {
        return deny('BK_DENY_DELETE_OLD', 'the append role may only delete objects written in the same session');
      }
      break;
    }
  }
  if (!spec.roles.includes(role)) return deny('BK_DENY_ROLE', `the ${role} role may not do this`);
  if (spec.write && ctx.unlocked) {
    return deny('BK_DENY_UNLOCKED_WRITE', UNLOCKED);
  }
  return { allow: true, write: spec.write };
}
