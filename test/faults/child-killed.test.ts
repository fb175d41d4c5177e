// Fault: the child `borg serve` of one session killed with SIGKILL in the middle of a backup's
// transaction (a crash, the OOM killer), on the embedded gateway where many sessions share one
// process. Only that child dies; the real borg client is told and exits with an error, the
// session is closed in the ledger as an error, the repository keeps its committed archives and
// passes `borg check`, a backup running at the same time to another repository through the same
// gateway commits, and the next backup to the damaged repository works (borg clears the dead
// child's lock itself).

import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';

import { createBorgkeepEnv, makeSourceTree, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { childPids, cmdline, faultKit, randomTree, sleep, twoRepositories } from './fault-kit.js';

let env: BorgkeepEnv;
const kit = faultKit(() => env);

beforeAll(async () => {
  env = createBorgkeepEnv('fault-child', 'embedded');
  await twoRepositories(env, 'victim', { admin: 'full', laptop: 'append' }, 'other');
  const first = await env.borg('laptop', ['create', `${env.url('victim')}::first`, makeSourceTree(join(env.root, 'small'), 1)]);
  expect(first.code, first.stderr).toBe(0);
});
afterAll(() => env?.cleanup());

test('the child borg serve killed mid-transaction: that session ends as an error, nothing is lost, the other session commits', async () => {
  const serve = (await env.frontEnd()).process.pid!;
  const victimPath = await env.repoPath('victim');
  const data = randomTree(join(env.root, 'big'), 20 * 1024 * 1024);
  // 20 and 24 MiB at 2 MiB/s each: both are mid-upload when the child is killed, also on a
  // loaded machine where the victim is slow to reach its first 2 MiB.
  const victim = kit.slowBackup('laptop', 'victim', 'killed', data);
  const bystander = kit.slowBackup('server', 'other', 'bystander', randomTree(join(env.root, 'other-data'), 24 * 1024 * 1024));
  const session = await kit.openSessionOf('victim', 2 * 1024 * 1024, victim);
  await kit.openSessionOf('other', 0, bystander);
  await sleep(1000);
  expect(victim.exitCode, 'the victim backup ended before the kill').toBeNull();
  expect(bystander.exitCode, 'the bystander backup ended before the kill').toBeNull();

  // The gateway's children are the sessions' borg serve processes; kill the victim's alone.
  const children = childPids(serve).filter((pid) => cmdline(pid)?.includes('serve'));
  const target = children.filter((pid) => cmdline(pid)?.includes(victimPath));
  expect(children.length).toBe(2);
  expect(target.length).toBe(1);
  process.kill(target[0]!, 'SIGKILL');
  const killedAt = Date.now();

  // The client is told in words, not by a broken pipe and a Python traceback.
  const v = await victim.result;
  expect(Date.now() - killedAt).toBeLessThan(60_000); // no hang (about 3 s on an idle machine)
  expect(v.code).toBe(2);
  expect(v.stderr).toMatch(/borg serve on the server ended before answering this call; nothing more of this session is committed/);
  expect(v.stderr).not.toMatch(/Traceback|Broken pipe/);
  const closed = await kit.closedSession(session.id);
  expect(closed.result).toBe('error');
  expect(closed.detail).toBe('borg serve ended with SIGKILL');
  expect(closed.transactions.every((t) => t.state === 'rolled_back')).toBe(true);

  // The gateway itself lives on, and the other session through it was not disturbed.
  expect(childPids(serve)).not.toContain(target[0]);
  const b = await bystander.result;
  expect(b.code, b.stderr).toBe(0);
  const other = (await kit.ledger('other')).find((s) => s.keyName === 'server');
  expect(other?.result).toBe('ok');
  expect(other?.transactions.map((t) => t.state)).toEqual(['committed']);

  expect(await kit.onDisk('victim')).toEqual(['first']);
  expect(await kit.onDisk('other')).toEqual(['bystander']);

  // The dead child's lock is stale (same host, process gone): borg breaks it, the next backup works.
  const again = await env.borg('laptop', ['create', '--lock-wait', '30', `${env.url('victim')}::again`, data]);
  expect(again.code, again.stderr).toBe(0);
  expect(await kit.onDisk('victim')).toEqual(['again', 'first']);
  await kit.noneOpen();
});
