// borg serve's own errors reach the client without anything of the server: no traceback frame
// (server install paths, line numbers, code), no PID, no argv, no server path, in the dict format
// (the stock borg 1.2 client) and the legacy tuple format (a 1.0-style client, by hand), with and
// without --debug. What helps the user stays: the exception's class and its message.

import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { MsgMap, encode, type MsgValue } from '../../src/rpc/msgpack.js';
import { createBorgkeepEnv, makeSourceTree, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { startRpcClient, type Reply, type RpcClient } from '../helpers/rpc-client.js';

let env: BorgkeepEnv;
/** An id no object of the repository has (all zeros is the manifest). */
const MISSING = 'ff'.repeat(32);

beforeAll(async () => {
  env = createBorgkeepEnv('tb-scrub');
  await env.repoWithKeys('main', { admin: 'full' });
  expect((await env.borg('admin', ['init', '-e', 'repokey', env.url('main')])).code).toBe(0);
  const src = makeSourceTree(join(env.root, 'src'), 1);
  expect((await env.borg('admin', ['create', `${env.url('main')}::a1`, src])).code).toBe(0);
});
afterAll(() => env?.cleanup());

/** Fails naming the first thing of the server found in what the client got. */
function expectNothingOfTheServer(text: string): void {
  const leaks: Array<[string, RegExp]> = [
    ['a traceback header', /Traceback \(most recent call last\)/],
    ['a traceback frame', /File "[^"]*", line \d+/],
    ['a server install path', /dist-packages|site-packages|\/usr\/lib\/python/],
    ['the data directory', new RegExp(env.dataDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))],
    ['borg serve code', /res = f\(\*\*args\)|raise self\.ObjectNotFound|raise LockTimeout/],
    ['a server PID', /PID: ?\d+/],
    ['the server argv', /sys\.argv|'serve', '--restrict-to-repository'/],
  ];
  for (const [what, re] of leaks) expect(re.test(text), `${what} reached the client:\n${text}`).toBe(false);
}

/** Every string in a decoded reply, joined. */
function allText(v: MsgValue): string {
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (Array.isArray(v)) return v.map(allText).join('\n');
  if (v instanceof MsgMap) return v.entries.map(([k, x]) => `${allText(k)}: ${allText(x)}`).join('\n');
  return String(v);
}

/**
 * The stock client's output without the client's own sysinfo block, which it prints after an
 * error: its own platform, PID (with its working directory, the test's) and argv, not the server's.
 */
function serverPart(text: string): string {
  const ownPid = new RegExp(`^PID: \\d+\\s+CWD: ${process.cwd().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
  return text
    .split('\n')
    .filter((l) => !/^(Platform|Linux|Borg|SSH_ORIGINAL_COMMAND):/.test(l) && !ownPid.test(l))
    .filter((l) => !(l.startsWith("sys.argv: ['/usr/bin/borg'") && !l.includes("'serve'")))
    .filter((l) => !l.startsWith('SSH command line:'))
    .join('\n');
}

/** Holds the repository's exclusive lock in a session of its own. */
async function holdLock(): Promise<RpcClient> {
  const holder = startRpcClient(env, 'admin');
  await holder.open('/./main', { exclusive: true });
  return holder;
}

describe('the stock borg client (dict format), without and with --debug', () => {
  test('a missing object: the message, nothing of the server', async () => {
    for (const flag of [[], ['--debug']]) {
      const r = await env.borg('admin', [...flag, 'debug', 'get-obj', env.url('main'), MISSING, join(env.root, 'out')]);
      expect(r.code).toBe(2);
      // borg's `debug get-obj` prints its own "object ... not found." on stdout.
      expect(r.stdout).toContain(`object ${MISSING} not found.`);
      expectNothingOfTheServer(serverPart(`${r.stdout}\n${r.stderr}`));
    }
  });

  test('a lock timeout: the message, nothing of the server', async () => {
    const holder = await holdLock();
    try {
      for (const flag of [[], ['--debug']]) {
        const r = await env.borg('admin', [...flag, '--lock-wait', '1', 'list', env.url('main')]);
        expect(r.code).toBe(2);
        expect(r.stderr).toContain('Failed to create/acquire the lock /./main/lock.exclusive (timeout).');
        expectNothingOfTheServer(serverPart(r.stderr));
      }
    } finally {
      await holder.close();
    }
  });
});

describe('a legacy tuple-format client (borg 1.0 style), without and with --debug', () => {
  /** negotiate(2) keeps the session in the tuple format, as borg serve does for 1.0 clients. */
  async function tupleSession(debug: boolean): Promise<RpcClient> {
    const c = startRpcClient(env, 'admin', { command: debug ? 'borg serve --debug' : 'borg serve' });
    c.send(encode([1, 1, 'negotiate', [2]]));
    expect((await c.reply(1)).result).toBe(2);
    return c;
  }
  const open = (c: RpcClient): Promise<Reply> => {
    c.send(encode([1, 2, 'open', [Buffer.from('/./main'), false, 1, true, true, false]]));
    return c.reply(2);
  };

  test('a missing object: the class in the reply, the message on stderr, nothing of the server', async () => {
    for (const debug of [false, true]) {
      const c = await tupleSession(debug);
      expect((await open(c)).exceptionClass).toBeNull();
      c.send(encode([1, 3, 'get', [Buffer.from(MISSING, 'hex')]]));
      const r = await c.reply(3);
      expect(r.exceptionClass).toBe('ObjectNotFound');
      const { stderr } = await c.close();
      expect(stderr).toContain(`Object with key ${MISSING} not found in repository /./main.`);
      expectNothingOfTheServer(`${allText(r.raw)}\n${stderr}`);
    }
  });

  test('a lock timeout: the class in the reply, the message on stderr, nothing of the server', async () => {
    const holder = await holdLock();
    try {
      for (const debug of [false, true]) {
        const c = await tupleSession(debug);
        const r = await open(c);
        expect(r.exceptionClass).toBe('LockTimeout');
        const { stderr } = await c.close();
        expect(stderr).toContain('Failed to create/acquire the lock /./main/lock.exclusive (timeout).');
        expectNothingOfTheServer(`${allText(r.raw)}\n${stderr}`);
      }
    } finally {
      await holder.close();
    }
  });
});

describe('a dict-format client by hand, with --debug', () => {
  test('a missing object: the reply and stderr carry the class and message, nothing of the server', async () => {
    const c = startRpcClient(env, 'admin', { command: 'borg serve --debug' });
    await c.open('/./main');
    const r = await c.call('get', { id: Buffer.from(MISSING, 'hex') });
    expect(r.exceptionClass).toBe('ObjectNotFound');
    expect(r.message).toContain(`Object with key ${MISSING} not found in repository /./main.`);
    const { stderr } = await c.close();
    expectNothingOfTheServer(`${allText(r.raw)}\n${stderr}`);
  });
});
