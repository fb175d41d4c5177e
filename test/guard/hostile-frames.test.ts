// A hostile client's frames and paths. Frames `borg serve` would die on (fact sheet A.2, A.3,
// F.2, F.3) end the session before the child sees a byte of them: one clear line on stderr, an
// `error` session in the ledger, no lock left behind, the repository untouched, and the process
// gone promptly without the client closing its end. Paths that do not name a repository granted
// to the key all get the same DoesNotExist reply, whether the repository exists or not, so a key
// cannot learn what else the server holds; none of them reveals a server path.

import { mkdirSync, readFileSync, readdirSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { MsgMap, encode, type EncodableValue, type MsgValue } from '../../src/rpc/msgpack.js';
import type { RpcClient } from '../helpers/rpc-client.js';
import { KEYS, MANIFEST_ID, PROMPT_EXIT_MS, createHostileFixture, decodeAll, type HostileFixture } from '../helpers/hostile-fixture.js';

let f: HostileFixture;

beforeAll(async () => {
  f = await createHostileFixture({ label: 'hostile-frames', repos: [{ name: 'secret', init: true }] });
});
afterAll(() => f?.cleanup());

const NEW_ID = Buffer.alloc(32, 0x5a);
const SPLICE = Buffer.from('@@SPLICE@@');

/** Encodes `value`, then swaps the raw string SPLICE for `bytes` (bin, ext, oversized headers...). */
function frame(value: EncodableValue, bytes: Buffer): Buffer {
  const enc = encode(value);
  const marker = Buffer.concat([Buffer.from([0xa0 | SPLICE.length]), SPLICE]);
  const at = enc.indexOf(marker);
  if (at < 0) throw new Error('no splice marker in the frame');
  return Buffer.concat([enc.subarray(0, at), bytes, enc.subarray(at + marker.length)]);
}

const request = (method: string | Buffer, args: MsgMap): MsgMap => MsgMap.of([['i', 3], ['m', typeof method === 'string' ? Buffer.from(method) : method], ['a', args]]);
const args = (entries: Array<[string, MsgValue]>): MsgMap => MsgMap.of(entries);
const raw = (entries: Array<[string, MsgValue]>): MsgMap => new MsgMap(entries.map(([k, v]) => [Buffer.from(k), v]));
const putWithData = (data: Buffer): Buffer => frame(request('put', args([['id', NEW_ID], ['data', SPLICE]])), data);
const nils = (n: number): Buffer => Buffer.alloc(n, 0xc0);

const HOSTILE_FRAMES: Array<[string, Buffer, string]> = [
  ['a bin-typed put payload', putWithData(Buffer.from([0xc4, 0x01, 0x78])), 'bin-typed element'],
  ['a bin-typed method name', frame(request(SPLICE, args([])), Buffer.from([0xc4, 0x03, ...Buffer.from('get')])), 'bin-typed element'],
  ['a bin-typed top-level value', Buffer.from([0xc4, 0x00]), 'bin-typed element'],
  ['an ext-typed put payload (fixext 1)', putWithData(Buffer.from([0xd4, 0x01, 0x00])), 'ext-typed element'],
  ['an ext-typed argument (ext 8)', frame(request('list', args([['limit', SPLICE]])), Buffer.from([0xc7, 0x01, 0x05, 0x00])), 'ext-typed element'],
  ['an array of 101 elements', frame(request('list', args([['limit', SPLICE]])), Buffer.concat([Buffer.from([0xdc, 0x00, 101]), nils(101)])), 'an array has 101 elements'],
  ['a map of 101 entries', frame(request('put', SPLICE as unknown as MsgMap), Buffer.concat([Buffer.from([0xde, 0x00, 101]), ...Array.from({ length: 101 }, (_, n) => encode([`k${n}`, null]).subarray(1))])), 'a map has 101 entries'],
  ['a string announcing more than 20 MiB', putWithData(Buffer.from([0xdb, 0x01, 0x40, 0x00, 0x01])), 'a string of 20971521 bytes'],
  ['a 3-element tuple', encode([1, 3, 'get']), 'neither a request map nor a 4-element request tuple'],
  ['a bare integer', encode(42), 'neither a request map nor a 4-element request tuple'],
  ['a dict request without m', encode(MsgMap.of([['i', 3], ['a', args([])]])), 'lacks its method'],
  ['a dict request with m twice', encode(raw([['i', 3], ['m', Buffer.from('get')], ['m', Buffer.from('put')], ['a', args([['id', NEW_ID], ['data', Buffer.from('x')]])]])), "the key 'm' twice"],
  ['a put with data twice', encode(request('put', raw([['id', NEW_ID], ['data', Buffer.from('x')], ['data', Buffer.from('y')]]))), "the argument 'data' twice"],
];

describe('frames borg serve would die on', () => {
  test.each(HOSTILE_FRAMES)('%s ends the session before borg serve sees it', async (_name, bytes, reason) => {
    const c = await f.open('append');
    const sentAt = Date.now();
    c.send(bytes); // and keep stdin open: the server must end the session by itself
    const exited = new Promise<void>((resolve) => c.process.once('close', () => resolve()));
    const timeout = new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), PROMPT_EXIT_MS).unref());
    expect(await Promise.race([exited, timeout])).not.toBe('hung');
    expect(Date.now() - sentAt).toBeLessThan(PROMPT_EXIT_MS);
    expect(c.process.exitCode).toBe(1);

    const lines = c.stderrText().split('\n').filter(Boolean);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^borgkeep: session ended: the client sent a message borg does not allow: /);
    expect(lines[0]).toContain(reason);
    // Nothing answered it: the only replies are negotiate's and open's.
    expect(decodeAll(Buffer.concat(c.stdout)).map((v) => (v instanceof MsgMap ? v.get('i') : Array.isArray(v) ? v[1] : v))).toEqual([1, 2]);

    const s = f.session(c);
    expect(s.result).toBe('error');
    expect(s.detail).toMatch(/^the client sent a message borg does not allow: /);
    expect(s.transactions).toEqual([]);
    // borg serve ended cleanly on EOF: its lock is gone and nothing was written.
    f.expectUnchanged('main');
  });

  test('a bad frame after good ones in the same write still reaches nothing', async () => {
    const c = await f.open('append');
    const good = encode(MsgMap.of([['i', 3], ['m', Buffer.from('__len__')], ['a', MsgMap.of([])]]));
    c.send(Buffer.concat([good, putWithData(Buffer.from([0xc4, 0x01, 0x78])), good]));
    await new Promise<void>((resolve) => c.process.once('close', () => resolve()));
    expect(c.process.exitCode).toBe(1);
    expect(c.stderrText().split('\n').filter(Boolean)).toHaveLength(1);
    f.expectUnchanged('main');
  });
});

/** Child processes of `pid`, from /proc. */
function childPids(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).flatMap((t) =>
    readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').split(' ').filter(Boolean).map(Number),
  );
}

/** Waits for the session's process to end by itself; fails if it takes longer than PROMPT_EXIT_MS. */
async function endsPromptly(c: RpcClient): Promise<void> {
  const exited = new Promise<void>((resolve) => c.process.once('close', () => resolve()));
  const timeout = new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), PROMPT_EXIT_MS).unref());
  expect(await Promise.race([exited, timeout]), `the session did not end; stderr: ${c.stderrText()}`).not.toBe('hung');
}

test('borg serve dying mid-session ends the session at once, without waiting for the client', async () => {
  const c = await f.open('append');
  const [child] = childPids(c.process.pid ?? -1);
  expect(child).toBeGreaterThan(0);
  process.kill(child, 'SIGKILL'); // a crash, the OOM killer...
  await endsPromptly(c);
  expect(c.process.exitCode).toBe(1);
  expect(c.stderrText().split('\n').filter(Boolean)).toEqual(['borgkeep: session ended: borg serve ended with SIGKILL.']);
  expect(f.session(c)).toMatchObject({ result: 'error', detail: 'borg serve ended with SIGKILL', transactions: [] });
  // The next session clears the dead process's lock and finds the repository as it was.
  const next = await f.open('append');
  expect(await f.finish(next)).toBe(0);
  f.expectUnchanged('main');
});

describe('paths', () => {
  /** Every probe's session: negotiate, open(path), then a get, which must be refused too. */
  async function probe(path: string): Promise<{ c: RpcClient; open: MsgValue; stdout: Buffer }> {
    const c = f.start(KEYS.append);
    await c.negotiate();
    const open = await c.call('open', { path, create: false, lock_wait: 1, lock: true, exclusive: true, append_only: false, make_parent_dirs: false });
    await c.call('get', { id: MANIFEST_ID });
    expect(await f.finish(c)).toBe(0);
    return { c, open: open.raw, stdout: Buffer.concat(c.stdout) };
  }

  /** The server's bytes with the client's own path text replaced, re-encoded. */
  function normalised(stdout: Buffer, path: string): Buffer {
    const norm = (v: MsgValue): MsgValue => {
      if (Buffer.isBuffer(v)) return Buffer.from(v.toString('latin1').split(path).join('<PATH>'), 'latin1');
      if (Array.isArray(v)) return v.map(norm);
      if (v instanceof MsgMap) return new MsgMap(v.entries.map(([k, x]) => [norm(k), norm(x)]));
      return v;
    };
    return Buffer.concat(decodeAll(stdout).map((v) => encode(norm(v))));
  }

  let sentPaths: string[] = [];

  test('names the key may not open all get the same DoesNotExist, existing or not', async () => {
    const secretDir = f.repoDir('secret');
    const reposDir = dirname(secretDir);
    // Symlinks to "secret" where a path might be resolved: the repos dir and borg serve's home.
    symlinkSync(secretDir, join(reposDir, 'link'));
    mkdirSync(join(f.dataDirs[0], 'serve-home'), { recursive: true });
    symlinkSync(secretDir, join(f.dataDirs[0], 'serve-home', 'secret'));
    const paths = [
      '/./secret', // exists, not granted
      '/./nope', // does not exist
      '/./main/../secret',
      '../secret',
      secretDir, // the real path, as the admin's configuration spells it
      join(f.dataDirs[1], 'repos', secretDir.slice(reposDir.length + 1)), // and resolved
      '/~/secret',
      '~/secret',
      '/./link',
      'link',
      '~/link',
      join(reposDir, 'link'),
      '/./repos/link',
      '/./serve-home/secret',
    ];
    // Paths naming server places (absolute ones, serve-home) come back in their own replies.
    sentPaths = paths.filter((p) => (p.startsWith('/') && !p.startsWith('/.') && !p.startsWith('/~')) || p.includes('serve-home'));
    const results = await Promise.all(paths.map((p) => probe(p)));
    const reference = normalised(results[0].stdout, paths[0]);
    results.forEach((r, n) => {
      const path = paths[n];
      const open = r.open as MsgMap;
      expect(String(open.get('exception_class')), path).toBe('DoesNotExist');
      expect((open.get('exception_args') as Buffer[]).map(String)).toEqual([path]);
      expect((open.get('exception_short') as Buffer[]).map(String)).toEqual([`Repository ${path} does not exist.`]);
      expect(normalised(r.stdout, path).equals(reference), `the reply to ${path} differs`).toBe(true);
      expect(r.c.stderrText()).toBe('');
      expect(f.session(r.c).denials.map((d) => `${d.method} ${d.reason}`)).toEqual(['open BK_DENY_NO_REPOSITORY', 'get BK_DENY_NOT_OPEN']);
    });
    f.expectUnchanged('secret');
    f.expectUnchanged('main');
  });

  test('the real borg client is told the same for a hidden and a missing repository', async () => {
    const hidden = await f.env.borg(KEYS.append, ['list', f.env.url('secret')]);
    const missing = await f.env.borg(KEYS.append, ['list', f.env.url('nope')]);
    expect(hidden.code).toBe(2);
    expect(hidden.stderr).toContain(`Repository ${f.env.url('secret')} does not exist.`);
    expect(hidden.stderr.split('secret').join('X')).toBe(missing.stderr.split('nope').join('X'));
  });

  test('/./main, main, ~/main and /~/main all open "main"', async () => {
    const config = readFileSync(join(f.repoDir('main'), 'config'), 'utf8');
    const id = /^id = ([0-9a-f]{64})$/m.exec(config)?.[1];
    expect(id).toBeDefined();
    const opened = await Promise.all(
      ['/./main', 'main', '~/main', '/~/main', '/./main/'].map(async (path) => {
        const c = f.start(KEYS.append);
        const r = await c.open(path, { lock: false });
        const len = await c.call('__len__');
        expect(await f.finish(c)).toBe(0);
        expect(f.session(c)).toMatchObject({ result: 'ok', repositoryName: 'main', denials: [] });
        return `${Buffer.from(r.result as Buffer).toString('hex')} ${String(len.result)}`;
      }),
    );
    expect(new Set(opened)).toEqual(new Set([opened[0]]));
    expect(opened[0].split(' ')[0]).toBe(id);
  });

  test('nothing the server sent names a server path, a PID or sys.argv', () => {
    // Absolute paths the client sent itself come back in its DoesNotExist; nothing else may.
    expect(sentPaths.length).toBe(4);
    f.leakCheck(sentPaths);
  });
});

test('the repositories pass borg check', async () => {
  for (const repo of ['main', 'secret']) {
    const r = await f.env.borg(KEYS.full, ['check', f.env.url(repo)]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  }
});

test('the ledger holds every session closed: frames and the crash as errors, probes as denials', async () => {
  const sessions = await f.closedLedger<{ result: string; detail: string | null; denials: Array<{ reason: string }> }>();
  const errors = sessions.filter((s) => s.result === 'error').map((s) => s.detail ?? '');
  expect(errors.filter((d) => d.startsWith('the client sent a message borg does not allow: '))).toHaveLength(HOSTILE_FRAMES.length + 1);
  expect(errors.filter((d) => d === 'borg serve ended with SIGKILL')).toHaveLength(1);
  expect(errors).toHaveLength(HOSTILE_FRAMES.length + 2);
  expect(sessions.every((s) => ['ok', 'denied', 'error'].includes(s.result))).toBe(true);
  expect([...new Set(sessions.flatMap((s) => s.denials.map((d) => d.reason)))].sort()).toEqual(['BK_DENY_NOT_OPEN', 'BK_DENY_NO_REPOSITORY']);
});
