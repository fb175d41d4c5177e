// One borgkeep installation for the hostile-client tests (test/guard/): keys for every role on
// repository "main" (initialised and given one archive by the real borg client with the full
// key), plus helpers to talk to `borgkeep borg-serve` with the hand-written RPC client and to
// prove afterwards that nothing reached the repository.
//
// The data directory is reached through a symlink, as when an admin points --data-dir at
// /var/lib/borgkeep -> /srv/...: borg serve resolves repository paths with realpath(), so
// anything that hides server paths must hide the resolved form too.
//
// Every client started here is remembered, so a file can check at its end that nothing the
// server ever wrote (stdout bytes, stderr text) names a server path, a PID or sys.argv.

import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'vitest';

import { MsgMap, decode, encode, type EncodableValue, type MsgValue } from '../../src/rpc/msgpack.js';
import { SCRUBBED_SYSINFO } from '../../src/rpc/messages.js';
import { createFrameSplitter } from '../../src/rpc/frame-splitter.js';
import { CLIENT_LIMITS } from '../../src/rpc/msgpack.js';
import { createBorgkeepEnv, makeSourceTree, type BorgkeepEnv, type RunResult } from './borgkeep-env.js';
import { OPEN_DEFAULTS, startRpcClient, type Reply, type RpcClient } from './rpc-client.js';

export const KEYS = { full: 'hk-full', append: 'hk-append', prune: 'hk-prune', read: 'hk-read' } as const;
export type RoleName = keyof typeof KEYS;
export const ROLES = Object.keys(KEYS) as RoleName[];

export const MANIFEST_ID = Buffer.alloc(32);
/** How long a session may take to end once its client closed stdin or sent a fatal frame. */
export const PROMPT_EXIT_MS = 10_000;

export interface SessionRecord {
  result: string;
  detail: string | null;
  role: string | null;
  repositoryName: string | null;
  denials: Array<{ method: string; reason: string; message: string }>;
  transactions: Array<{ state: string; objectsPut: number; objectsDeleted: number; manifestWritten: boolean }>;
}

export interface HostileFixture {
  readonly env: BorgkeepEnv;
  /** The data directory as configured and as resolved (they differ: it sits behind a symlink). */
  readonly dataDirs: readonly string[];
  /** Real path of a repository's directory. */
  repoDir(repo: string): string;
  /** Starts `borgkeep borg-serve --key KEY`; the client is remembered for leakCheck(). */
  start(key: string, opts?: { address?: string; command?: string }): RpcClient;
  /** Negotiates and opens `path` (default "/./main") with the key of `role`; fails unless it opened. */
  open(role: RoleName, path?: string, openArgs?: Record<string, EncodableValue>, opts?: { address?: string; command?: string }): Promise<RpcClient>;
  /** Closes the client's stdin and waits (bounded) for the session to end; returns its exit code. */
  finish(c: RpcClient): Promise<number | null>;
  /** The ledger's record of the session run by this client (read straight from the database). */
  session(c: RpcClient): SessionRecord;
  /** Every file of the repository with its size and hash, lock files included. */
  snapshot(repo: string): string[];
  /** Asserts the repository is byte-for-byte what it was at the last rebaseline(). */
  expectUnchanged(repo: string): void;
  rebaseline(repo: string): void;
  /** `borg list --json` archives (name and id) as the full key sees them. */
  archives(repo: string): Promise<string[]>;
  borgOk(role: RoleName, args: readonly string[]): Promise<RunResult>;
  /** Asserts that nothing any remembered client received names a server path, PID or argv. */
  leakCheck(allowed?: readonly string[]): void;
  readonly clients: readonly RpcClient[];
  /** Opens the installation's database (read-write); the caller closes it. */
  db(): Database.Database;
  /** Asserts no session is left open in the database, then returns `borgkeep ledger --json`'s sessions. */
  closedLedger<T>(): Promise<T[]>;
  cleanup(): void;
}

export interface FixtureOptions {
  label: string;
  /** Extra repositories: created, and initialised by the full key when `init` is set. */
  repos?: Array<{ name: string; init: boolean }>;
  /** borg init's --encryption for "main" (default none); with a key, borg reserves nonces. */
  encryption?: string;
}

function hashFile(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex').slice(0, 16);
}

function walk(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    const p = join(dir, r);
    if (e.isDirectory()) out.push(`${r}/`, ...walk(dir, r));
    else out.push(`${r} ${statSync(p).size} ${hashFile(p)}`);
  }
  return out.sort();
}

export async function createHostileFixture(opts: FixtureOptions): Promise<HostileFixture> {
  // The installation lives behind a symlink (see the header).
  const realBase = mkdtempSync(join(tmpdir(), `${opts.label}-real-`));
  const linkBase = realBase.replace(`${opts.label}-real-`, `${opts.label}-link-`);
  symlinkSync(realBase, linkBase);
  const savedTmp = process.env.TMPDIR;
  process.env.TMPDIR = linkBase;
  let env: BorgkeepEnv;
  try {
    env = createBorgkeepEnv(opts.label);
  } finally {
    if (savedTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmp;
  }
  const dataDirs = [env.dataDir, join(realpathSync(env.root), 'data')];
  const clients: RpcClient[] = [];
  const repoDirs = new Map<string, string>();
  const baselines = new Map<string, string[]>();

  const cleanup = (): void => {
    for (const c of clients) if (c.process.exitCode === null && c.process.signalCode === null) c.process.kill('SIGKILL');
    env.cleanup();
    rmSync(linkBase, { force: true });
    rmSync(realBase, { recursive: true, force: true });
  };

  try {
    await env.cliOk(['repo', 'create', 'main']);
    for (const r of opts.repos ?? []) await env.cliOk(['repo', 'create', r.name]);
    for (const [role, key] of Object.entries(KEYS)) {
      await env.addKey(key);
      await env.cliOk(['grant', key, 'main', '--role', role]);
    }
    for (const r of opts.repos ?? []) await env.cliOk(['grant', KEYS.full, r.name, '--role', 'full']);

    const ok = async (role: RoleName, args: readonly string[]): Promise<RunResult> => {
      const r = await env.borg(KEYS[role], args);
      if (r.code !== 0) throw new Error(`borg ${args.join(' ')} as ${role} failed (${r.code}): ${r.stderr}`);
      return r;
    };
    await ok('full', ['init', '-e', opts.encryption ?? 'none', env.url('main')]);
    await ok('full', ['create', `${env.url('main')}::first`, makeSourceTree(join(env.root, 'src'), 1)]);
    for (const r of opts.repos ?? []) if (r.init) await ok('full', ['init', '-e', 'none', env.url(r.name)]);
    for (const name of ['main', ...(opts.repos ?? []).map((r) => r.name)]) repoDirs.set(name, await env.repoPath(name));

    const fixture: HostileFixture = {
      env,
      dataDirs,
      clients,
      repoDir(repo) {
        const d = repoDirs.get(repo);
        if (!d) throw new Error(`no repository '${repo}' in this fixture`);
        return d;
      },
      start(key, o = {}) {
        const c = startRpcClient(env, key, o);
        clients.push(c);
        return c;
      },
      async open(role, path = '/./main', openArgs = {}, o = {}) {
        const c = fixture.start(KEYS[role], o);
        await c.open(path, openArgs);
        return c;
      },
      async finish(c) {
        c.process.stdin.end();
        if (c.process.exitCode === null && c.process.signalCode === null) {
          await new Promise<void>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`the session did not end within ${PROMPT_EXIT_MS} ms; stderr: ${c.stderrText()}`)), PROMPT_EXIT_MS);
            c.process.once('close', () => {
              clearTimeout(timer);
              resolve();
            });
          });
        }
        return c.process.exitCode;
      },
      session(c) {
        const db = new Database(join(env.dataDir, 'borgkeep.db'), { readonly: true, fileMustExist: true });
        try {
          const s = db
            .prepare('select id, result, detail, role, repository_name from sessions where pid = ? order by id desc limit 1')
            .get(c.process.pid) as { id: number; result: string; detail: string | null; role: string | null; repository_name: string | null } | undefined;
          if (!s) throw new Error(`no ledger session for pid ${c.process.pid}`);
          const denials = db.prepare('select method, reason, message from denials where session_id = ? order by id').all(s.id) as SessionRecord['denials'];
          const transactions = (
            db
              .prepare('select state, objects_put, objects_deleted, manifest_written from transactions where session_id = ? order by id')
              .all(s.id) as Array<{ state: string; objects_put: number; objects_deleted: number; manifest_written: number }>
          ).map((t) => ({ state: t.state, objectsPut: t.objects_put, objectsDeleted: t.objects_deleted, manifestWritten: Boolean(t.manifest_written) }));
          return { result: s.result, detail: s.detail, role: s.role, repositoryName: s.repository_name, denials, transactions };
        } finally {
          db.close();
        }
      },
      async closedLedger<T>() {
        const db = fixture.db();
        try {
          expect(db.prepare("select count(*) as n from sessions where result = 'open' or ended_at is null").get()).toEqual({ n: 0 });
        } finally {
          db.close();
        }
        return (JSON.parse(await env.cliOk(['ledger', '--json', '--limit', '10000'])) as { sessions: T[] }).sessions;
      },
      snapshot: (repo) => walk(fixture.repoDir(repo)),
      rebaseline(repo) {
        baselines.set(repo, fixture.snapshot(repo));
      },
      expectUnchanged(repo) {
        const base = baselines.get(repo);
        if (!base) throw new Error(`no baseline for '${repo}'`);
        expect(fixture.snapshot(repo), `repository '${repo}' changed`).toEqual(base);
      },
      async archives(repo) {
        const r = await ok('full', ['list', '--json', env.url(repo)]);
        const list = JSON.parse(r.stdout) as { archives: Array<{ name: string; id: string }> };
        return list.archives.map((a) => `${a.name} ${a.id}`).sort();
      },
      borgOk: ok,
      leakCheck(allowed = []) {
        // Server paths in both spellings, the random directory names, and borg's sysinfo fields.
        const realRoot = realpathSync(env.root);
        const forbidden = [
          ...dataDirs,
          ...[...repoDirs.values()].flatMap((d) => [d, d.replace(env.root, realRoot), d.slice(d.lastIndexOf('/') + 1)]),
          realBase,
          'serve-home',
          'PID',
          'sys.argv',
          'CWD:',
          'SSH_ORIGINAL_COMMAND',
        ];
        for (const c of clients) {
          let out = Buffer.concat(c.stdout).toString('latin1');
          let err = c.stderrText();
          for (const a of allowed) {
            out = out.split(a).join('<sent by the client>');
            err = err.split(a).join('<sent by the client>');
          }
          for (const f of forbidden) {
            expect(out, `a reply of session pid ${c.process.pid} names '${f}'`).not.toContain(f);
            expect(err, `stderr of session pid ${c.process.pid} names '${f}'`).not.toContain(f);
          }
          // Replies carry no traceback (it names server files); borg's own debug log may.
          expect(out).not.toContain('Traceback');
          // Every exception reply carries the scrubbed sysinfo, never borg's.
          for (const v of decodeAll(Buffer.concat(c.stdout))) {
            if (v instanceof MsgMap && v.has('exception_class')) {
              expect(String(v.get('sysinfo'))).toBe(SCRUBBED_SYSINFO);
            }
          }
        }
      },
      db: () => new Database(join(env.dataDir, 'borgkeep.db'), { fileMustExist: true }),
      cleanup,
    };
    for (const name of repoDirs.keys()) if (existsDir(fixture.repoDir(name))) fixture.rebaseline(name);
    return fixture;
  } catch (e) {
    cleanup();
    throw e;
  }
}

function existsDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** Every msgpack value in a byte stream the server wrote. */
export function decodeAll(bytes: Buffer): MsgValue[] {
  const splitter = createFrameSplitter(CLIENT_LIMITS);
  return splitter.push(bytes).map((f) => decode(Buffer.from(f)));
}

export interface DenialExpectation {
  msgid: number;
  method: string;
  role: RoleName | 'none';
  key: string;
  repo: string;
  /** Part of the reason text, e.g. "may not overwrite". */
  why?: string;
}

/** Asserts a PermissionDenied reply of borgkeep's, in dict or tuple format. */
export function expectDenied(r: Reply, e: DenialExpectation): void {
  expect(r.msgid).toBe(e.msgid);
  expect(r.exceptionClass, `expected a refusal of ${e.method}, got ${r.exceptionClass}: ${r.message}`).toBe('PermissionDenied');
  expect(r.message).toMatch(new RegExp(`^borgkeep refused ${e.method}: `));
  expect(r.message).toContain(`key '${e.key}'`);
  expect(r.message).toContain(`role ${e.role}`);
  expect(r.message).toContain(`repository '${e.repo}'`);
  if (e.why) expect(r.message).toContain(e.why);
  if (r.raw instanceof MsgMap) {
    expect(String(r.raw.get('exception_args'))).toBe(r.message);
    expect(r.raw.get('exception_trace')).toBe(false);
    expect(String(r.raw.get('sysinfo'))).toBe(SCRUBBED_SYSINFO);
  } else {
    expect(Array.isArray(r.raw) && r.raw.length === 4 && r.raw[0] === 1).toBe(true);
  }
}

/** A successful reply (no exception) to `msgid`. */
export function expectOk(r: Reply, msgid: number): void {
  expect(r.exceptionClass, `expected success, got ${r.exceptionClass}: ${r.message}`).toBeNull();
  expect(r.msgid).toBe(msgid);
}

export { OPEN_DEFAULTS, encode };
