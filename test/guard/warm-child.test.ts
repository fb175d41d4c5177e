// The forced command starts its child `borg serve` before the client opens (src/guard/
// warm-child.ts), so node's and Python's start-ups overlap: with a hand-written client over the
// real `borgkeep borg-serve`. The warm child serves the session it was guessed for, is the only
// borg serve of that session, and never outlives a session that did not take it.

import { afterAll, beforeAll, expect, test } from 'vitest';

import { createBorgkeepEnv, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { startRpcClient } from '../helpers/rpc-client.js';
import { childPids, cmdline } from '../faults/fault-kit.js';

let env: BorgkeepEnv;
beforeAll(async () => {
  env = createBorgkeepEnv('warm-child');
  await env.repoWithKeys('main', { admin: 'full', laptop: 'append' });
  await env.cliOk(['repo', 'create', 'side']);
  await env.cliOk(['grant', 'admin', 'side', '--role', 'full']);
  for (const repo of ['main', 'side']) {
    const init = await env.borg('admin', ['init', '-e', 'none', env.url(repo)]);
    expect(init.code, init.stderr).toBe(0);
  }
});
afterAll(() => env?.cleanup());

/** The guard's child `borg serve` processes (pid and argv). */
function borgChildren(guardPid: number): Array<{ pid: number; argv: string[] }> {
  return childPids(guardPid)
    .map((pid) => ({ pid, argv: cmdline(pid) ?? [] }))
    .filter((c) => c.argv.some((a) => a.endsWith('borg')) && c.argv.includes('serve'));
}

async function waitFor<T>(what: string, get: () => T | undefined): Promise<T> {
  for (let i = 0; i < 200; i++) {
    const v = get();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what}: not seen in 10 s`);
}

test("borg serve runs for the key's one grant before the client opens, and is the one that serves the session", async () => {
  const c = startRpcClient(env, 'laptop');
  await c.negotiate();
  const warm = await waitFor('a warm borg serve', () => borgChildren(c.process.pid!)[0]);
  expect(warm.argv).toContain('--append-only');
  expect(warm.argv.join(' ')).toContain(await env.repoPath('main'));
  await c.open('/./main');
  const len = await c.call('__len__');
  expect(len.exceptionClass).toBeNull();
  expect(borgChildren(c.process.pid!).map((ch) => ch.pid)).toEqual([warm.pid]);
  const end = await c.close();
  expect(end.code).toBe(0);
  await waitFor("the warm child gone", () => (cmdline(warm.pid) === null ? true : undefined));
});

test('a key with two grants gets no warm child: borg serve starts at the open, for the repository opened', async () => {
  const c = startRpcClient(env, 'admin');
  await c.negotiate();
  await new Promise((r) => setTimeout(r, 500));
  expect(borgChildren(c.process.pid!)).toEqual([]);
  await c.open('/./side');
  const [child] = borgChildren(c.process.pid!);
  expect(child.argv.join(' ')).toContain(await env.repoPath('side'));
  expect(child.argv).not.toContain('--append-only');
  expect((await c.close()).code).toBe(0);
});

test('a refused open: the warm child gets no byte and ends with the session', async () => {
  const c = startRpcClient(env, 'laptop');
  await c.negotiate();
  const warm = await waitFor('a warm borg serve', () => borgChildren(c.process.pid!)[0]);
  const refused = await c.call('open', { path: Buffer.from('/./side'), create: false, lock_wait: 1, lock: true, exclusive: true, append_only: false });
  expect(refused.exceptionClass).not.toBeNull();
  await c.close();
  expect(c.process.exitCode).not.toBeNull();
  await waitFor('the warm child gone', () => (cmdline(warm.pid) === null ? true : undefined));
  const { sessions } = JSON.parse(await env.cliOk(['ledger', '--json', '--limit', '1'])) as { sessions: Array<{ result: string }> };
  expect(sessions[0].result).toBe('denied');
});
