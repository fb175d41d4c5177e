// The keyless pull proxy with the real borg client (issue 16): a repository (repokey) whose key
// borgkeep holds; a job session made by createPullJobSession; the stock `borg create` on "the
// client" reaching it through a BORG_RSH bridge to a unix socket (no SSH: the runner's part), with
// only the job's passphrase. The archive must land in the real repository, readable with the
// repository's real key, byte for byte; the job key must open nothing of the repository; a
// hand-written client with the job key must be refused every read and every forgery.

import { createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import type { GuardDeps } from '../../src/guard/guard.js';
import { createJobKey, manifestTamKey, unlockJobKey } from '../../src/pull/job-key.js';
import { createPullJobSession, packAuthenticated } from '../../src/pull/pull-proxy.js';
import type { PullJobSession, PullSessionOutcome } from '../../src/pull/types.js';
import { ObjectError, objectId, openObject, sealObject, type BorgKey } from '../../src/repository/borg-key.js';
import { latestIndexTransaction } from '../../src/repository/hash-index.js';
import { readRepositoryNonce } from '../../src/repository/nonce-file.js';
import { listSegments, readSegment } from '../../src/repository/segments.js';
import { parseRepoConfig } from '../../src/repository/repo-config.js';
import { createFrameSplitter } from '../../src/rpc/frame-splitter.js';
import { CLIENT_LIMITS, MsgMap, decode, encode, type MsgValue } from '../../src/rpc/msgpack.js';
import type { Store } from '../../src/store/database.js';
import type { Repository } from '../../src/store/types.js';
import { readCurrentManifestEnvelope } from '../../src/vault/repository-key.js';
import { createBorgkeepEnv, makeSourceTree, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { runBorgAgainstSession, shWord as word, vaultedRepository } from '../helpers/pull-job-bridge.js';

let env: BorgkeepEnv;
let store: Store;
let guard: GuardDeps;
let repository: Repository;
let repoPath: string;
let repoKey: BorgKey;
let work: string;
let jobs = 0;


async function borgOk(args: string[], opts: { cwd?: string } = {}): Promise<string> {
  const r = await env.borg('admin', args, opts);
  expect(r.code, `borg ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r.stdout;
}

function newSession(archiveName: string, repo: Repository = repository): PullJobSession {
  return createPullJobSession({ guard }, { jobId: ++jobs, repository: repo, archiveName });
}

/** Serves one job session on a unix socket and runs the stock borg client against it. */
const runBorgJob = (session: PullJobSession, args: string[], cwd: string, stdinScript?: string, killWhen?: () => boolean) =>
  runBorgAgainstSession(session, args, { cwd, work, ...(stdinScript !== undefined && { stdinScript }), ...(killWhen && { killWhen }) });

/** A hand-written borg RPC client speaking to a job session in this process. */
function rpcClient(session: PullJobSession, stop?: AbortSignal) {
  const input = new PassThrough();
  const output = new PassThrough();
  const served = session.serve({ input, output, errOutput: new PassThrough(), ...(stop && { stop }) });
  const splitter = createFrameSplitter(CLIENT_LIMITS);
  const replies = new Map<number, MsgValue>();
  const waiters = new Map<number, (v: MsgValue) => void>();
  output.on('data', (d: Buffer) => {
    for (const f of splitter.push(d)) {
      const v = decode(Buffer.from(f));
      const id = v instanceof MsgMap ? (v.get('i') as number) : ((v as MsgValue[])[1] as number);
      const w = waiters.get(id);
      if (w) w(v);
      else replies.set(id, v);
    }
  });
  let msgid = 1;
  const reply = (id: number) =>
    new Promise<MsgValue>((resolve) => {
      const have = replies.get(id);
      if (have !== undefined) resolve(have);
      else waiters.set(id, resolve);
    });
  const call = async (method: string, args: Array<[string, MsgValue]> = []) => {
    const id = msgid++;
    input.write(encode(MsgMap.of([['i', id], ['m', Buffer.from(method)], ['a', MsgMap.of(args)]])));
    const v = (await reply(id)) as MsgMap;
    const cls = v.get('exception_class');
    const shortText = v.get('exception_short');
    return {
      error: Buffer.isBuffer(cls) ? cls.toString() : null,
      message: Array.isArray(shortText) ? shortText.map((x) => String(x)).join(' ') : '',
      result: v.get('r') ?? null,
    };
  };
  return {
    async open(): Promise<{ jobKey: BorgKey; jobRepoId: Buffer }> {
      const id = msgid++;
      input.write(encode([1, id, 'negotiate', [MsgMap.of([['client_version', [1, 2, 4, -1]]])]]));
      await reply(id);
      const o = await call('open', [['path', Buffer.from('/./job')], ['create', false], ['lock_wait', 1], ['lock', true], ['exclusive', true], ['append_only', false], ['make_parent_dirs', false]]);
      expect(o.error, o.message).toBeNull();
      const blob = (await call('load_key')).result as Buffer;
      const jobRepoId = o.result as Buffer;
      return { jobKey: unlockJobKey(blob.toString('latin1'), session.passphrase, jobRepoId), jobRepoId };
    },
    call,
    async close(): Promise<PullSessionOutcome> {
      input.end();
      return served;
    },
    served,
  };
}

/** An object as the stock client would put it: its id from the shared id key, sealed with the job key. */
async function jobObject(jobKey: BorgKey, plain: Buffer, iv: bigint): Promise<{ id: Buffer; data: Buffer }> {
  const id = await objectId('repokey', jobKey, plain);
  return { id, data: await sealObject(Buffer.concat([Buffer.from([0, 0]), plain]), 'repokey', jobKey, iv) };
}

/** A manifest naming `archives`, TAM'd and sealed with the job key. */
async function jobManifest(jobKey: BorgKey, archives: Array<[string, Buffer]>, iv: bigint): Promise<Buffer> {
  const plain = packAuthenticated(
    [
      ['version', 1],
      ['archives', MsgMap.of(archives.map(([n, id]) => [n, MsgMap.of([['id', id], ['time', Buffer.from('2026-12-06T10:00:00.000000')]])]))],
      ['timestamp', Buffer.from(new Date().toISOString().replace('Z', '000'))],
      ['config', MsgMap.of([['tam_required', true]])],
      ['item_keys', []],
    ],
    (salt) => manifestTamKey(jobKey, salt),
  );
  return sealObject(Buffer.concat([Buffer.from([0, 0]), plain]), 'repokey', jobKey, iv);
}

/**
 * The AES-CTR counter ranges of every object stored in the repository (its IV and the blocks its
 * ciphertext uses), identical envelopes counted once (borg compact re-puts the same bytes).
 */
async function counterRanges(): Promise<Array<{ from: bigint; to: bigint }>> {
  const seen = new Set<string>();
  const ranges: Array<{ from: bigint; to: bigint }> = [];
  for (const file of listSegments(repoPath)) {
    for (const e of (await readSegment(file, () => true)).entries) {
      if (e.tag !== 'put' || !e.data) continue;
      const key = createHmac('sha256', 'k').update(e.data).digest('hex');
      if (seen.has(key)) continue;
      seen.add(key);
      const from = e.data.readBigUInt64BE(33);
      ranges.push({ from, to: from + BigInt(Math.ceil((e.data.length - 41) / 16)) });
    }
  }
  return ranges.sort((a, b) => (a.from < b.from ? -1 : a.from > b.from ? 1 : 0));
}

const lastTransaction = (): number | null => latestIndexTransaction(repoPath);
const segmentFiles = (): string[] => readdirSync(join(repoPath, 'data'), { recursive: true }).map(String).sort();

beforeAll(async () => {
  env = createBorgkeepEnv('pullproxy');
  work = mkdtempSync(join(tmpdir(), 'bk-pullproxy-'));
  await env.repoWithKeys('main', { admin: 'full' });
  await borgOk(['init', '-e', 'repokey', env.url('main')]);
  const before = makeSourceTree(join(work, 'before'), 1);
  await borgOk(['create', `${env.url('main')}::pushed-before`, '.'], { cwd: before });
  ({ store, guard, repository, repoPath, repoKey } = await vaultedRepository(env, work, 'main'));
}, 120_000);

afterAll(async () => {
  await store?.close();
  await env?.cleanup();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the job key', () => {
  test("shares the repository's id key and chunk seed, nothing else; two jobs' keys differ; borg's own format", () => {
    const a = createJobKey(repoKey, 'repokey');
    const b = createJobKey(repoKey, 'repokey');
    const unlocked = unlockJobKey(a.blob, a.passphrase, a.key.repositoryId);
    expect(unlocked.idKey.equals(repoKey.idKey)).toBe(true);
    expect(unlocked.chunkSeed).toBe(repoKey.chunkSeed);
    expect(unlocked.tamRequired).toBe(true);
    expect(unlocked.encKey.equals(repoKey.encKey)).toBe(false);
    expect(unlocked.encHmacKey.equals(repoKey.encHmacKey)).toBe(false);
    expect(unlocked.repositoryId.equals(repoKey.repositoryId)).toBe(false);
    expect(a.blob.split('\n').every((l) => l.length <= 70)).toBe(true);
    for (const [x, y] of [
      [a.key.encKey, b.key.encKey],
      [a.key.encHmacKey, b.key.encHmacKey],
      [a.key.repositoryId, b.key.repositoryId],
    ] as const) expect(x.equals(y)).toBe(false);
    expect(a.passphrase).not.toBe(b.passphrase);
    expect(a.blob).not.toBe(b.blob);
    expect(() => unlockJobKey(a.blob, b.passphrase, a.key.repositoryId)).toThrow(/passphrase is wrong/);
  });

  test("cannot open a real object of the repository: refused by its MAC", async () => {
    const config = parseRepoConfig(readFileSync(join(repoPath, 'config'), 'utf8'));
    const envelope = (await readCurrentManifestEnvelope(repoPath, config))!;
    // The repository's own key opens it; the job's does not.
    await expect(openObject(envelope, 'repokey', repoKey)).resolves.toBeInstanceOf(Buffer);
    const job = createJobKey(repoKey, 'repokey');
    await expect(openObject(envelope, 'repokey', job.key)).rejects.toThrow(ObjectError);
    await expect(openObject(envelope, 'repokey', job.key)).rejects.toThrow(/MAC does not verify/);
  });
});

describe('a pull job with the stock borg client', () => {
  test("borg create with only the job's passphrase writes the archive into the real repository; extract restores it byte for byte; check is clean; the ledger session is kind 'pull'", async () => {
    const nonceBefore = readRepositoryNonce(repoPath) as bigint;
    const src = makeSourceTree(join(work, 'client-a'), 7, 8);
    writeFileSync(join(src, 'random.bin'), Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7919 + (i >> 5)) & 0xff)));
    const session = newSession('host-a-1');
    const r = await runBorgJob(session, ['create', '--compression', 'lz4', 'ssh://job/./job::host-a-1', '.'], src);
    session.dispose();
    expect(r.code, r.stderr).toBe(0);
    expect(r.outcome).toMatchObject({ committed: true, refusal: null });

    const listed = (await borgOk(['list', '--short', env.url('main')])).split('\n').filter(Boolean).sort();
    expect(listed).toEqual(['host-a-1', 'pushed-before']);
    const out = mkdtempSync(join(work, 'extract-'));
    await borgOk(['extract', `${env.url('main')}::host-a-1`], { cwd: out });
    for (const f of readdirSync(src)) expect(readFileSync(join(out, f)).equals(readFileSync(join(src, f))), f).toBe(true);
    const check = await env.borg('admin', ['check', env.url('main')]);
    expect(check.code, check.stderr).toBe(0);
    // borg 1.2.5+ checks archive TAMs with the repository's key: the stored metadata carries one that verifies.
    const info = JSON.parse(await borgOk(['info', '--json', `${env.url('main')}::host-a-1`])) as { archives: Array<{ name: string; id: string }> };
    expect(info.archives[0]!.name).toBe('host-a-1');
    const objPath = join(work, 'archive.obj');
    await borgOk(['debug', 'get-obj', env.url('main'), info.archives[0]!.id, objPath]);
    const meta = decode(await openObject(readFileSync(objPath), 'repokey', repoKey)) as MsgMap;
    const tam = meta.get('tam') as MsgMap;
    const hmac = tam.get('hmac') as Buffer;
    const plain = encode(meta);
    const zeroed = Buffer.from(plain);
    zeroed.fill(0, plain.indexOf(hmac), plain.indexOf(hmac) + 64);
    const tamKey = Buffer.from(hkdfSync('sha512', Buffer.concat([repoKey.idKey, repoKey.encKey, repoKey.encHmacKey]), tam.get('salt') as Buffer, 'borg-metadata-authentication-archive', 64));
    expect(createHmac('sha512', tamKey).update(zeroed).digest().equals(hmac)).toBe(true);

    // Every object was sealed under counters reserved from the repository's nonce file first:
    // the file moved forward past them, and no two stored objects share a counter.
    const nonceAfter = readRepositoryNonce(repoPath) as bigint;
    expect(nonceAfter > nonceBefore).toBe(true);
    const ranges = await counterRanges();
    for (let i = 1; i < ranges.length; i++) expect(ranges[i]!.from >= ranges[i - 1]!.to, `counter ${ranges[i]!.from} reused`).toBe(true);
    expect(ranges.at(-1)!.to <= nonceAfter).toBe(true);

    const sessions = await store.listSessions({ repositoryId: repository.id, limit: 20 });
    const mine = sessions.find((s) => s.id === r.outcome!.sessionId)!;
    expect(mine.kind).toBe('pull');
    expect(mine.runKind).toBe('pull');
    expect(mine.result).toBe('ok');
  });

  test('a second job into the same repository works, also for chunks the repository already has', async () => {
    // The files of the archive pushed before, and one more: the append role may not overwrite
    // objects, so the proxy must take the chunks the repository has without writing them again.
    const src = join(work, 'before');
    writeFileSync(join(src, 'new.txt'), 'only in the second job\n'.repeat(1000));
    const session = newSession('host-b-1');
    const r = await runBorgJob(session, ['create', 'ssh://job/./job::host-b-1', '.'], src);
    session.dispose();
    expect(r.code, r.stderr).toBe(0);
    expect(r.outcome).toMatchObject({ committed: true, refusal: null });
    const listed = (await borgOk(['list', '--short', env.url('main')])).split('\n').filter(Boolean).sort();
    expect(listed).toEqual(['host-a-1', 'host-b-1', 'pushed-before']);
    const out = mkdtempSync(join(work, 'extract-'));
    await borgOk(['extract', `${env.url('main')}::host-b-1`], { cwd: out });
    for (const f of readdirSync(src)) expect(readFileSync(join(out, f)).equals(readFileSync(join(src, f))), f).toBe(true);
  });

  test("borg list with the job's key and path shows nothing of the repository", async () => {
    const session = newSession('host-c-1');
    const r = await runBorgJob(session, ['list', '--short', 'ssh://job/./job'], work);
    session.dispose();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.outcome?.refusal ?? null).toBeNull();
  });

  test("a job that writes checkpoints ends with its one archive; the checkpoints are gone from the manifest", async () => {
    const data = join(work, 'stream.bin');
    writeFileSync(data, randomBytes(6 * 1024 * 1024));
    const half = 3 * 1024 * 1024;
    const session = newSession('host-d-1');
    // borg checks its checkpoint interval after each chunk: the pause makes it write one.
    const r = await runBorgJob(
      session,
      ['create', '--checkpoint-interval', '1', 'ssh://job/./job::host-d-1', '-'],
      work,
      `head -c ${half} ${word(data)}; sleep 2; tail -c +${half + 1} ${word(data)}`,
    );
    session.dispose();
    expect(r.code, r.stderr).toBe(0);
    expect(r.outcome).toMatchObject({ committed: true, refusal: null });
    const listed = (await borgOk(['list', '--short', env.url('main')])).split('\n').filter(Boolean).sort();
    expect(listed).toEqual(['host-a-1', 'host-b-1', 'host-d-1', 'pushed-before']);
    const sessions = await store.listSessions({ repositoryId: repository.id, limit: 20 });
    const mine = sessions.find((s) => s.id === r.outcome!.sessionId)!;
    // A checkpoint commit, then the final one.
    expect(mine.transactions.filter((t) => t.state === 'committed').length).toBeGreaterThanOrEqual(2);
    const out = mkdtempSync(join(work, 'extract-'));
    await borgOk(['extract', `${env.url('main')}::host-d-1`], { cwd: out });
    expect(readFileSync(join(out, 'stdin')).equals(readFileSync(data))).toBe(true);
    // (borg check of the repository with these archives: the next test's, after its clean-up.)
  });
});

describe('a job that does not finish', () => {
  test('the client killed in the middle of its backup, after a checkpoint: nothing of the job stays, the next job works', async () => {
    const before = lastTransaction()!;
    const data = join(work, 'slow.bin');
    // borg's chunker reads a pipe 8 MiB at a time (its largest chunk) and checks the checkpoint
    // interval after each chunk: more than that before and after the pause makes it write a
    // checkpoint while the client still waits for more.
    writeFileSync(data, randomBytes(20 * 1024 * 1024));
    const half = 10 * 1024 * 1024;
    const session = newSession('host-k-1');
    // Killed once a checkpoint is committed (the repository's transaction moved) and more is under way.
    const r = await runBorgJob(
      session,
      ['create', '--checkpoint-interval', '1', 'ssh://job/./job::host-k-1', '-'],
      work,
      `head -c ${half} ${word(data)}; sleep 2; tail -c +${half + 1} ${word(data)}; sleep 30`,
      () => (lastTransaction() ?? 0) > before,
    );
    session.dispose();
    expect(r.code).not.toBe(0);
    expect(r.outcome).toMatchObject({ committed: false, refusal: null });
    // The checkpoint was committed, then removed again with every object of the job.
    const sessions = await store.listSessions({ repositoryId: repository.id, limit: 20 });
    const mine = sessions.find((s) => s.id === r.outcome!.sessionId)!;
    expect(mine.transactions.filter((t) => t.state === 'committed').map((t) => (t.objectsPut > 0 ? 'checkpoint' : t.objectsDeleted > 0 ? 'removed' : '?'))).toEqual(['checkpoint', 'removed']);
    expect((await borgOk(['list', '--short', env.url('main')])).split('\n').filter((n) => n.startsWith('host-k-1'))).toEqual([]);
    // No orphans: borg check finds nothing (its archive check counts unreferenced objects).
    const check = await env.borg('admin', ['check', env.url('main')]);
    expect(check.code, check.stderr).toBe(0);
    expect(check.stderr).not.toMatch(/orphan/i);
  });
});

describe('a job stopped on the server', () => {
  test('the stop signal ends the session: nothing is committed, the session is aborted in the ledger', async () => {
    const before = lastTransaction();
    const session = newSession('host-s-1');
    const stop = new AbortController();
    const c = rpcClient(session, stop.signal);
    const { jobKey } = await c.open();
    const obj = await jobObject(jobKey, Buffer.from('written before the stop'), 100n);
    expect((await c.call('put', [['id', obj.id], ['data', obj.data], ['wait', true]])).error).toBeNull();
    stop.abort();
    const outcome = await c.served;
    session.dispose();
    expect(outcome).toMatchObject({ committed: false, refusal: null });
    expect((await store.getLedgerEntry(outcome.sessionId!))!.result).toBe('aborted');
    expect(lastTransaction()).toBe(before);
  });
});

describe('a repokey-blake2 repository', () => {
  test('a job writes its archive, and borg extract with the real key restores it', async () => {
    await env.repoWithKeys('blake', { admin2: 'full' });
    const url = env.url('blake');
    const init = await env.borg('admin2', ['init', '-e', 'repokey-blake2', url]);
    expect(init.code, init.stderr).toBe(0);
    const passFile = join(work, 'passphrase');
    await env.cliOk(['repo', 'key', 'blake', '--passphrase-file', passFile]);
    const blake = (await store.findRepository('blake'))!;
    const src = makeSourceTree(join(work, 'client-e'), 11, 3);
    const session = newSession('host-e-1', blake);
    const r = await runBorgJob(session, ['create', 'ssh://job/./job::host-e-1', '.'], src);
    session.dispose();
    expect(r.code, r.stderr).toBe(0);
    expect(r.outcome).toMatchObject({ committed: true, refusal: null });
    const out = mkdtempSync(join(work, 'extract-'));
    const x = await env.borg('admin2', ['extract', `${url}::host-e-1`], { cwd: out });
    expect(x.code, x.stderr).toBe(0);
    for (const f of readdirSync(src)) expect(readFileSync(join(out, f)).equals(readFileSync(join(src, f))), f).toBe(true);
  });

  test('a backup of a few hundred objects (BLAKE2), each sealed into a buffer used again once the guard forwarded the last: check --verify-data with the real key is clean, extract is byte for byte', async () => {
    const src = join(work, 'client-many');
    mkdirSync(src, { recursive: true });
    for (let i = 0; i < 5; i++) writeFileSync(join(src, `big-${i}.bin`), randomBytes(8 * 1024 * 1024));
    const session = newSession('host-many-1', (await store.findRepository('blake'))!);
    // Chunks of about 256 KiB: ~160 puts, far more than the pool's buffers, so buffers come back and are sealed into again.
    const r = await runBorgJob(session, ['create', '--compression', 'none', '--chunker-params', 'buzhash,16,20,18,4095', 'ssh://job/./job::host-many-1', '.'], src);
    session.dispose();
    expect(r.code, r.stderr).toBe(0);
    expect(r.outcome).toMatchObject({ committed: true, refusal: null });
    const check = await env.borg('admin2', ['check', '--verify-data', `${env.url('blake')}::host-many-1`]);
    expect(check.code, check.stderr).toBe(0);
    const out = mkdtempSync(join(work, 'extract-many-'));
    const x = await env.borg('admin2', ['extract', `${env.url('blake')}::host-many-1`], { cwd: out });
    expect(x.code, x.stderr).toBe(0);
    for (const f of readdirSync(src)) expect(readFileSync(join(out, f)).equals(readFileSync(join(src, f))), f).toBe(true);
  });
});

describe('a hand-written client with the job key', () => {
  test('any get but the manifest and any list are refused in one sentence', async () => {
    const session = newSession('host-h-1');
    const c = rpcClient(session);
    await c.open();
    const manifest = await c.call('get', [['id', Buffer.alloc(32)]]);
    expect(manifest.error).toBeNull();
    const config = parseRepoConfig(readFileSync(join(repoPath, 'config'), 'utf8'));
    const real = (await readCurrentManifestEnvelope(repoPath, config))!;
    expect((manifest.result as Buffer).equals(real)).toBe(false);
    // An object the repository holds (the first archive's metadata id is in the real manifest).
    const some = await c.call('get', [['id', Buffer.alloc(32, 7)]]);
    expect(some.error).toBe('PermissionDenied');
    expect(some.message).toMatch(/^borgkeep refused get: a pull job may read no object of the repository\.$/);
    const list = await c.call('list', [['limit', 100], ['marker', null]]);
    expect(list.error).toBe('PermissionDenied');
    for (const m of ['scan', 'save_key', 'break_lock', 'destroy', 'check']) expect((await c.call(m)).error, m).toBe('PermissionDenied');
    const outcome = await c.close();
    session.dispose();
    expect(outcome.committed).toBe(false);
    expect(outcome.refusal).toMatch(/refused get/);
    // In the ledger as refusals of the pull session: the history and the alerts see them.
    const entry = (await store.getLedgerEntry(outcome.sessionId!))!;
    expect(entry.kind).toBe('pull');
    expect(entry.denials.map((d) => `${d.method} ${d.reason}`).sort()).toEqual(
      ['break_lock BK_DENY_BREAK_LOCK', 'check BK_DENY_ROLE', 'destroy BK_DENY_DESTROY', 'get BK_DENY_ROLE', 'list BK_DENY_ROLE', 'save_key BK_DENY_SAVE_KEY', 'scan BK_DENY_ROLE'],
    );
  });

  test('a put whose id does not match its content is refused; the job has a refusal; the repository is unchanged', async () => {
    const before = lastTransaction();
    const files = segmentFiles();
    const session = newSession('host-h-2');
    const c = rpcClient(session);
    const { jobKey } = await c.open();
    const good = await jobObject(jobKey, Buffer.from('honest chunk'), 1000n);
    expect((await c.call('put', [['id', good.id], ['data', good.data], ['wait', true]])).error).toBeNull();
    const forged = await jobObject(jobKey, Buffer.from('what the id claims'), 2000n);
    const other = await jobObject(jobKey, Buffer.from('something else'), 3000n);
    const r = await c.call('put', [['id', forged.id], ['data', other.data], ['wait', true]]);
    expect(r.error).toBe('PermissionDenied');
    expect(r.message).toMatch(/its content does not match its id/);
    // Nothing more is written or committed after that, and each later write is answered with the
    // cause: borg reports the last of the errors its asynchronous puts collected, so an answer
    // "an earlier call failed" would hide it (the pull job's reason said that in CI).
    const later = await jobObject(jobKey, Buffer.from('a later honest chunk'), 4000n);
    const again = await c.call('put', [['id', later.id], ['data', later.data]]);
    expect(again).toMatchObject({ error: 'PermissionDenied', message: r.message });
    const commit = await c.call('commit', [['save_space', false], ['compact', false], ['threshold', 0.1], ['cleanup_commits', false]]);
    expect(commit).toMatchObject({ error: 'PermissionDenied', message: r.message });
    const outcome = await c.close();
    session.dispose();
    expect(outcome).toMatchObject({ committed: false });
    expect(outcome.refusal).toMatch(/does not match its id/);
    const entry = (await store.getLedgerEntry(outcome.sessionId!))!;
    expect(entry.denials.map((d) => d.reason)).toEqual(['BK_DENY_OBJECT_ID']);
    expect(lastTransaction()).toBe(before);
    // borg serve rolled back what it had: the uncommitted segment is removed at the next write,
    // and no committed segment was added.
    expect(segmentFiles().filter((f) => !files.includes(f)).every((f) => Number(f.split('/').at(-1)) > (before ?? 0))).toBe(true);
  });

  test('a manifest naming another archive, or two archives, is refused; nothing is committed', async () => {
    const before = lastTransaction();
    for (const archives of [['someone-else'], ['host-h-3', 'host-h-3.checkpoint']]) {
      const session = newSession('host-h-3');
      const c = rpcClient(session);
      const { jobKey } = await c.open();
      const meta = Buffer.from(
        encode(
          MsgMap.of([
            ['cmdline', []],
            ['items', []],
            ['name', Buffer.from(archives[0]!)],
            ['time', Buffer.from('2026-12-06T10:00:00.000000')],
            ['version', 1],
          ]),
        ),
      );
      const obj = await jobObject(jobKey, meta, 5000n);
      expect((await c.call('put', [['id', obj.id], ['data', obj.data], ['wait', true]])).error).toBeNull();
      const manifest = await jobManifest(jobKey, archives.map((n) => [n, obj.id] as [string, Buffer]), 6000n);
      const r = await c.call('put', [['id', Buffer.alloc(32)], ['data', manifest], ['wait', true]]);
      expect(r.error, archives.join()).toBe('PermissionDenied');
      expect(r.message).toMatch(archives.length === 1 ? /archive is named 'host-h-3', not 'someone-else'/ : /exactly one archive/);
      const outcome = await c.close();
      session.dispose();
      expect(outcome.committed).toBe(false);
      expect(outcome.refusal).not.toBeNull();
    }
    expect(lastTransaction()).toBe(before);
  });

  test("a manifest claiming an archive this job did not write, and a delete of another's object, are refused", async () => {
    const before = lastTransaction();
    const info = JSON.parse(await borgOk(['info', '--json', `${env.url('main')}::pushed-before`])) as { archives: Array<{ id: string }> };
    const theirs = Buffer.from(info.archives[0]!.id, 'hex');
    let session = newSession('host-h-4');
    let c = rpcClient(session);
    let { jobKey } = await c.open();
    const manifest = await jobManifest(jobKey, [['host-h-4', theirs]], 7000n);
    const r = await c.call('put', [['id', Buffer.alloc(32)], ['data', manifest], ['wait', true]]);
    expect(r.error).toBe('PermissionDenied');
    expect(r.message).toMatch(/was not written by this job/);
    expect((await c.close()).refusal).toMatch(/not written by this job/);
    session.dispose();

    session = newSession('host-h-5');
    c = rpcClient(session);
    ({ jobKey } = await c.open());
    const d = await c.call('delete', [['id', theirs], ['wait', true]]);
    expect(d.error).toBe('PermissionDenied');
    expect(d.message).toMatch(/a job deletes only its own objects/);
    expect((await c.close()).committed).toBe(false);
    session.dispose();
    expect(lastTransaction()).toBe(before);
  });
});



