// Two gateways and two storage nodes on one PostgreSQL database, on loopback, each with its own
// data directory and port (issue 19): real borg clients back up through either gateway to
// repositories on either node; a repository is moved between nodes while another backup runs,
// and its archives, ledger and audit history survive; a node killed mid-backup fails its own
// client with a clear error while the other backup finishes, and the gateways close its dead
// session as aborted without waiting for its restart; `borg check` passes.

import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { BORGKEEP, createBorgkeepEnv, makeSourceTree, PASSPHRASE, run, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { firstAdminPassword } from '../helpers/first-admin.js';
import { startSlowBackup } from '../helpers/slow-backup.js';
import { waitForSession } from '../helpers/ledger-wait.js';
import { hostKeyLine, startEmbedded, writePortAndHostKey, writeSshRsh, type SshFrontEnd } from '../helpers/ssh-transports.js';
import { createTestPostgresDatabase } from '../support/temp-store.js';
import { startNode, type TestNode } from './node-helpers.js';

let db: Awaited<ReturnType<typeof createTestPostgresDatabase>>;
let env: BorgkeepEnv;
let b: SshFrontEnd;
/** BORG_RSH to gateway B (the env's own goes to gateway A). */
let rshB: string;
const nodes: Record<string, TestNode> = {};

interface SessionRow {
  id: number;
  result: string;
  keyName: string;
  bytesIn: number;
  detail: string | null;
}

beforeAll(async () => {
  db = await createTestPostgresDatabase();
  env = createBorgkeepEnv('bk-nodes', 'embedded', { serveArgs: ['--database', db.url] });
  await env.frontEnd();
  // Gateway B: its own data directory (host keys) and port, the same database.
  const dataB = join(env.root, 'gateway-b');
  b = await startEmbedded(dataB, ['--database', db.url]);
  const dirB = join(env.root, 'client-b');
  mkdirSync(dirB);
  writePortAndHostKey(join(dirB, 'port'), join(dirB, 'known_hosts'), b.port, hostKeyLine('embedded', dataB, b));
  rshB = writeSshRsh(dirB, join(env.root, 'ssh-keys'), join(dirB, 'port'), join(dirB, 'known_hosts'));
  for (const name of ['n1', 'n2']) nodes[name] = await startNode(name, join(env.root, `node-${name}`), db.url);
  for (const [repo, node] of [['alpha', 'n1'], ['beta', 'n2'], ['gamma', 'n1']] as const) await env.cliOk(['repo', 'create', repo, '--node', node]);
  await env.addKey('laptop');
  for (const repo of ['alpha', 'beta', 'gamma']) await env.cliOk(['grant', 'laptop', repo, '--role', 'full']);
}, 120_000);
afterAll(async () => {
  for (const n of Object.values(nodes)) await n.stop();
  await b?.stop();
  await env?.cleanup();
  await db?.drop();
});

const viaB = (args: string[]) => run('borg', args, { env: { ...env.borgEnv('laptop'), BORG_RSH: rshB } });
const viaA = (args: string[]) => env.borg('laptop', args);
const dirName = async (repo: string) => (JSON.parse(await env.cliOk(['repo', 'show', repo, '--json'])) as { dirName: string }).dirName;
const sessions = async (repo: string) =>
  (JSON.parse(await env.cliOk(['ledger', '--json', '--repo', repo, '--limit', '500'])) as { sessions: SessionRow[] }).sessions;

/** A backup of `mib` MiB of random data at 1 MiB/s, running in the background. */
const slowBackup = (repo: string, archive: string, mib: number) =>
  startSlowBackup({ source: join(env.root, `slow-${archive}`), mib, target: `${env.url(repo)}::${archive}`, env: env.borgEnv('laptop') });

describe('two gateways and two storage nodes on one PostgreSQL database', () => {
  it('back up through either gateway to repositories on either node; the files are on the node, not the gateway', async () => {
    for (const [repo, via] of [['alpha', viaA], ['beta', viaB]] as const) {
      const init = await via(['init', '-e', 'repokey', env.url(repo)]);
      expect(init.code, init.stderr).toBe(0);
    }
    let seed = 1;
    for (const [repo, via, archive] of [['alpha', viaA, 'a-via-a'], ['alpha', viaB, 'a-via-b'], ['beta', viaB, 'b-via-b'], ['beta', viaA, 'b-via-a']] as const) {
      const r = await via(['create', `${env.url(repo)}::${archive}`, makeSourceTree(join(env.root, `src-${archive}`), seed++)]);
      expect(r.code, r.stderr).toBe(0);
    }
    expect((await viaB(['list', '--short', env.url('alpha')])).stdout.split('\n').filter(Boolean).sort()).toEqual(['a-via-a', 'a-via-b']);
    expect((await viaA(['list', '--short', env.url('beta')])).stdout.split('\n').filter(Boolean).sort()).toEqual(['b-via-a', 'b-via-b']);
    expect(existsSync(join(nodes.n1!.repoPath(await dirName('alpha')), 'config'))).toBe(true);
    expect(existsSync(join(nodes.n2!.repoPath(await dirName('beta')), 'config'))).toBe(true);
    expect(existsSync(join(env.dataDir, 'repos', await dirName('alpha')))).toBe(false);
    expect(JSON.parse(await env.cliOk(['repo', 'show', 'alpha', '--json']))).toMatchObject({ node: 'n1', path: null });
    // Every session is in the one ledger, with its key, as if it had run on one machine.
    // alpha: init, two backups, a list.
    expect((await sessions('alpha')).filter((s) => s.result === 'ok')).toHaveLength(4);
    const list = JSON.parse(await env.cliOk(['node', 'list', '--json'])) as { nodes: Array<{ name: string; up: boolean; repositories: number }> };
    expect(list.nodes.map((n) => [n.name, n.up, n.repositories])).toEqual([['n1', true, 2], ['n2', true, 1]]);
  });

  it('a key without a grant learns nothing of where a repository is: the answer is the same as for none', async () => {
    await env.addKey('stranger');
    const r = await run('borg', ['list', env.url('alpha')], { env: env.borgEnv('stranger') });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/does not exist/);
    expect(r.stderr).not.toMatch(/n1|node/);
  });

  it('moves a repository between nodes while another backup runs: its archives, ledger and audit history survive', async () => {
    const audit = async (node: TestNode) => {
      const r = await run(process.execPath, [BORGKEEP, '--data-dir', node.dataDir, 'audit', 'alpha', '--json'], { env: { ...process.env, BORGKEEP_DATA_DIR: undefined, BORG_PASSPHRASE: PASSPHRASE } });
      expect(r.code, r.stderr).toBe(0);
      const report = JSON.parse(r.stdout) as { verdict: string; transactions: Array<{ id: number; verdict: string; session: number | null; key: string | null; archivesAdded: string[] | null }> };
      return { verdict: report.verdict, transactions: report.transactions.map((t) => [t.id, t.verdict, t.session, t.key, t.archivesAdded]) };
    };
    const before = { audit: await audit(nodes.n1!), sessions: (await sessions('alpha')).map((s) => [s.id, s.result]) };
    expect(before.audit.verdict).toBe('clean');
    const dir = await dirName('alpha');

    const other = slowBackup('beta', 'during-move', 8);
    await waitForSession(() => sessions('beta'), (all) => {
      if (other.child.exitCode !== null) throw new Error(`the backup of beta ended before the move began: ${other.stderr()}`);
      return all.find((s) => s.result === 'open' && s.bytesIn > 0);
    }, 'the backup of beta');
    const moved = await env.cli(['repo', 'move', 'alpha', '--to', 'n2', '--json']);
    expect(moved.code, moved.stderr).toBe(0);
    expect(JSON.parse(moved.stdout)).toMatchObject({ repository: 'alpha', from: 'n1', to: 'n2', sourceCleared: true });
    expect(existsSync(join(nodes.n2!.repoPath(dir), 'config'))).toBe(true);
    expect(existsSync(nodes.n1!.repoPath(dir))).toBe(false); // in n1's trash, not destroyed
    const during = await other.done;
    expect(during.code, during.stderr).toBe(0);

    // The same archives through either gateway, a new backup on n2, the same ledger and audit.
    expect((await viaB(['list', '--short', env.url('alpha')])).stdout.split('\n').filter(Boolean).sort()).toEqual(['a-via-a', 'a-via-b']);
    const next = await viaA(['create', `${env.url('alpha')}::after-move`, makeSourceTree(join(env.root, 'src-after-move'), 9)]);
    expect(next.code, next.stderr).toBe(0);
    const after = (await sessions('alpha')).map((s) => [s.id, s.result]);
    for (const row of before.sessions) expect(after).toContainEqual(row);
    const audited = await audit(nodes.n2!);
    expect(audited.verdict).toBe('clean');
    expect(audited.transactions.slice(0, before.audit.transactions.length)).toEqual(before.audit.transactions);
    expect(audited.transactions.at(-1)?.[4]).toEqual(['after-move']);
    const list = JSON.parse(await env.cliOk(['node', 'list', '--json'])) as { nodes: Array<{ name: string; repositories: number }> };
    expect(list.nodes.map((n) => [n.name, n.repositories])).toEqual([['n1', 1], ['n2', 2]]);
  });

  it('refuses a move it cannot make, in one sentence, and changes nothing', async () => {
    const same = await env.cli(['repo', 'move', 'alpha', '--to', 'n2']);
    expect(same.code).not.toBe(0);
    expect(same.stderr.trim()).toBe("borgkeep: repository 'alpha' is on storage node 'n2' already");
    const nowhere = await env.cli(['repo', 'move', 'alpha', '--to', 'n9']);
    expect(nowhere.stderr.trim()).toBe("borgkeep: there is no storage node 'n9' (borgkeep node list shows the nodes)");
    // The target holds files of the repository already: the copy is refused before anything is put in place.
    const dir = await dirName('beta');
    mkdirSync(nodes.n1!.repoPath(dir), { recursive: true });
    try {
      const clash = await env.cli(['repo', 'move', 'beta', '--to', 'n1']);
      expect(clash.code).not.toBe(0);
      expect(clash.stderr).toMatch(/the repository was not moved: this node already holds files of that repository; nothing was copied; it stays where it was, unchanged/);
    } finally {
      rmSync(nodes.n1!.repoPath(dir), { recursive: true, force: true });
    }
    expect((await viaA(['list', '--short', env.url('beta')])).code).toBe(0);
    const list = JSON.parse(await env.cliOk(['node', 'list', '--json'])) as { nodes: Array<{ name: string; repositories: number }> };
    expect(list.nodes.map((n) => [n.name, n.repositories])).toEqual([['n1', 1], ['n2', 2]]);
  });

  it('a node killed mid-backup fails its own client with a clear error; the other backup finishes; the gateways close its session as aborted before it restarts; borg check passes', async () => {
    const init = await viaA(['init', '-e', 'repokey', env.url('gamma')]);
    expect(init.code, init.stderr).toBe(0);
    const onN1 = slowBackup('gamma', 'killed', 8);
    const onN2 = slowBackup('beta', 'survives', 4);
    const running = await waitForSession(() => sessions('gamma'), (all) => {
      if (onN1.child.exitCode !== null) throw new Error('the backup on n1 ended before it was seen running');
      return all.find((s) => s.result === 'open' && s.bytesIn > 1024 * 1024);
    }, 'the backup on n1');
    await nodes.n1!.stop('SIGKILL');
    const killed = await onN1.done;
    expect(killed.code).not.toBe(0);
    expect(killed.stderr).toContain("storage node 'n1' went away during the session");
    expect(killed.stderr).not.toMatch(/Traceback|Broken ?pipe/i);
    // While n1 is down its repositories say so at once; the others work.
    const down = await viaB(['list', env.url('gamma')]);
    expect(down.code).not.toBe(0);
    expect(down.stderr).toMatch(/storage node 'n1', which cannot be reached now/);
    const other = await onN2.done;
    expect(other.code, other.stderr).toBe(0);
    // Once its heartbeat is old, the metrics and the console's API say it is down; n2 is up.
    const http = /HTTP API listening on (http:\/\/127\.0\.0\.1:\d+)/.exec((await env.frontEnd()).log())![1];
    await expect.poll(async () => (await (await fetch(`${http}/metrics`)).text()).match(/^borgkeep_node_up\{node="n\d"\} \d$/gm), { timeout: 30_000, interval: 1000 }).toEqual([
      'borgkeep_node_up{node="n1"} 0',
      'borgkeep_node_up{node="n2"} 1',
    ]);
    const login = await fetch(`${http}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'admin', password: firstAdminPassword(env.dataDir) }) });
    const shown = (await (await fetch(`${http}/api/v1/nodes`, { headers: { cookie: (login.headers.get('set-cookie') ?? '').split(';')[0]! } })).json()) as { nodes: Array<{ name: string; up: boolean; repositories: number }> };
    expect(shown.nodes.map((n) => [n.name, n.up, n.repositories])).toEqual([['n1', false, 1], ['n2', true, 2]]);
    expect((await viaB(['list', '--short', env.url('beta')])).stdout).toContain('survives');

    // The dead node's session does not wait for a restart that may never come: once its heartbeat
    // is DEAD_NODE_AFTER_MS old, the gateway that runs the jobs closes it as aborted.
    await expect.poll(async () => (await sessions('gamma')).find((s) => s.id === running.id)?.result, { timeout: 45_000, interval: 1000 }).toBe('aborted');
    expect(`${(await env.frontEnd()).log()}${b.log()}`).toMatch(/closed 1 session\(s\) left open by storage node 'n1', which stopped answering, as aborted/);

    nodes.n1 = await startNode('n1', nodes.n1!.dataDir, db.url, nodes.n1!.port);
    expect(nodes.n1.log()).not.toMatch(/closed \d+ sessions? left open/);
    expect((await sessions('gamma')).find((s) => s.id === running.id)?.result).toBe('aborted');
    const check = await viaA(['check', env.url('gamma')]);
    expect(check.code, check.stderr).toBe(0);
  }, 180_000);
});
