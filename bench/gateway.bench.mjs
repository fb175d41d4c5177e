// The front door's speed (issue 19, part 4): wall time of a real `borg create` of fresh random
// data (BENCH_SOURCE_BYTES, 1 GiB; 64 MiB files new each run; --compression lz4; repokey) into a
// fresh repository, through the real ssh client on loopback, three ways in every round, the
// order rotating from round to round:
//   (a) OpenSSH's sshd with plain `borg serve --restrict-to-path R` as the key's forced command,
//   (b) the same sshd with `borgkeep borg-serve --key K` as the forced command (an append key),
//   (c) the embedded SSH gateway of `borgkeep serve` (the same key and role),
//   (d) a gateway on PostgreSQL forwarding the session over SSH to a storage node (`borgkeep node
//       run`) that holds the repository and runs the guard (BENCH_GATEWAY_NODES=0 leaves it out).
// Prints (b)/(a), (c)/(a) and (d)/(a) (medians of the rounds' ratios and ratio of the medians) and the
// server's CPU seconds per GiB for each: (a) and (b) the listening sshd's reaped descendants (the
// connection's sshd, the forced command, borg serve), (c) the serve process and its reaped borg
// serve children, (d) the gateway and the node and the node's reaped borg serve. Needs root (sshd; the forced commands run as root).
// BENCH_GATEWAY_BUSY=1 runs a CPU-bound process beside every run (the issue's "while other work
// ran" figures). Goals: (b)/(a) <= 1.03, (c)/(a) <= 1.00, (c)'s server CPU per GiB no higher
// than (a)'s, (d)/(a) <= 1.10.

import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';

import { BORGKEEP, GiB, MiB, borgClientEnv, borgVersion, fmt, median, printTable, run, runOk, saveResults, syncDisks, writeRandomTree, requireBuilt } from './lib/common.mjs';
import { cpuSeconds, waitNoChildren } from './lib/pull-hosts.mjs';
import { startPostgres } from './lib/postgres.mjs';

requireBuilt();
if (process.getuid?.() !== 0) throw new Error('gateway.bench.mjs needs root: it starts its own sshd whose forced commands run as root');
const SOURCE_BYTES = Number(process.env.BENCH_SOURCE_BYTES ?? GiB);
const ROUNDS = Number(process.env.BENCH_RUNS ?? 3);
const BUSY = process.env.BENCH_GATEWAY_BUSY === '1';
const GIB = SOURCE_BYTES / GiB;
const NODES = process.env.BENCH_GATEWAY_NODES !== '0';
const KINDS = NODES ? ['a', 'b', 'c', 'd'] : ['a', 'b', 'c'];

// Under /run, root's: sshd wants the directories above its files unwritable by others.
mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
const dir = mkdtempSync('/run/borgkeep-bench-gateway-');
chmodSync(dir, 0o755);
const children = [];
let postgres = null;
const cleanup = () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  postgres?.stop();
  rmSync(dir, { recursive: true, force: true });
};
process.once('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => process.exit(130));

const dataDir = join(dir, 'borgkeep-data');
const plainRoot = join(dir, 'plain-repos');
mkdirSync(plainRoot);
const cli = (args) => runOk(process.execPath, [BORGKEEP, '--data-dir', dataDir, ...args]);

async function sshKey(name) {
  const file = join(dir, name);
  await runOk('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `${name}@bench`, '-f', file]);
  return { file, pub: readFileSync(`${file}.pub`, 'utf8').trim() };
}
const plainKey = await sshKey('plain-key');
const writerKey = await sshKey('writer-key');
const adminKey = await sshKey('admin-key');
await cli(['key', 'add', 'writer-key', '--file', `${writerKey.file}.pub`]);
await cli(['key', 'add', 'admin-key', '--file', `${adminKey.file}.pub`]);

// (a) and (b): one sshd, the forced command chosen by the key.
const hostKeyFile = join(dir, 'ssh_host_ed25519_key');
await runOk('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKeyFile]);
const sshdPort = 20000 + Math.floor(Math.random() * 20000);
const guardCommand = (key) => `${process.execPath} ${BORGKEEP} --data-dir ${dataDir} borg-serve --key ${key}`;
writeFileSync(
  join(dir, 'authorized_keys'),
  [
    `command="borg serve --restrict-to-path ${plainRoot}",restrict ${plainKey.pub}`,
    `command="${guardCommand('writer-key')}",restrict ${writerKey.pub}`,
    `command="${guardCommand('admin-key')}",restrict ${adminKey.pub}`,
    '',
  ].join('\n'),
);
writeFileSync(
  join(dir, 'sshd_config'),
  [`ListenAddress 127.0.0.1:${sshdPort}`, `HostKey ${hostKeyFile}`, 'PidFile none', `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`, 'AllowUsers root', 'PermitRootLogin prohibit-password', 'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'UsePAM no', 'StrictModes no', ''].join('\n'),
);
async function started(child, pattern, label) {
  const chunks = [];
  child.stdout?.on('data', (d) => chunks.push(d));
  child.stderr?.on('data', (d) => chunks.push(d));
  const log = () => Buffer.concat(chunks).toString();
  const until = Date.now() + 30_000;
  for (;;) {
    const m = pattern.exec(log());
    if (m) return m;
    if (child.exitCode !== null) throw new Error(`${label} exited with ${child.exitCode}:\n${log()}`);
    if (Date.now() > until) throw new Error(`${label} did not start within 30 s:\n${log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
const sshd = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: ['ignore', 'pipe', 'pipe'] });
children.push(sshd);
await started(sshd, /Server listening on/, 'sshd');

// (c): borgkeep serve's embedded gateway on the same data directory.
const serve = spawn(process.execPath, [BORGKEEP, '--data-dir', dataDir, 'serve', '--ssh-listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
children.push(serve);
const servePort = Number((await started(serve, /ssh gateway listening on 127\.0\.0\.1:(\d+)/, 'borgkeep serve'))[1]);
const serveHostKey = readFileSync(join(dataDir, 'ssh', 'ssh_host_ed25519_key.pub'), 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
const knownHosts = [`[127.0.0.1]:${sshdPort} ${readFileSync(`${hostKeyFile}.pub`, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ')}`, `[127.0.0.1]:${servePort} ${serveHostKey}`];

// (d): a gateway and a storage node on a private PostgreSQL server, each with its own data directory.
const pgDataDir = join(dir, 'gateway-pg-data');
const nodeDataDir = join(dir, 'node-data');
const pgCli = (args) => runOk(process.execPath, [BORGKEEP, '--data-dir', pgDataDir, ...args]);
let gatewayPg = null;
let node = null;
let gatewayPgPort = 0;
if (NODES) {
  postgres = await startPostgres();
  // BENCH_CPU_PROF=DIR: CPU profiles of the gateway and the node of (d), written when they stop.
  const prof = [...(process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : []), ...(process.env.BENCH_NODE_FLAGS?.split(' ').filter(Boolean) ?? [])];
  gatewayPg = spawn(process.execPath, [...prof, BORGKEEP, '--data-dir', pgDataDir, 'serve', '--database', postgres.url, '--ssh-listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(gatewayPg);
  gatewayPgPort = Number((await started(gatewayPg, /ssh gateway listening on 127\.0\.0\.1:(\d+)/, 'borgkeep serve (PostgreSQL)'))[1]);
  node = spawn(process.execPath, [...prof, BORGKEEP, '--data-dir', nodeDataDir, 'node', 'run', '--name', 'n1', '--database', postgres.url, '--ssh-listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(node);
  await started(node, /node SSH server listening on/, 'borgkeep node');
  await pgCli(['key', 'add', 'writer-key', '--file', `${writerKey.file}.pub`]);
  await pgCli(['key', 'add', 'admin-key', '--file', `${adminKey.file}.pub`]);
  knownHosts.push(`[127.0.0.1]:${gatewayPgPort} ${readFileSync(join(pgDataDir, 'ssh', 'ssh_host_ed25519_key.pub'), 'utf8').trim().split(/\s+/).slice(0, 2).join(' ')}`);
}
writeFileSync(join(dir, 'known_hosts'), `${knownHosts.join('\n')}\n`);

const rsh = join(dir, 'rsh');
writeFileSync(rsh, `#!/bin/sh\nexec ssh -o BatchMode=yes -o IdentitiesOnly=yes -o IdentityAgent=none -o UserKnownHostsFile=${join(dir, 'known_hosts')} -o StrictHostKeyChecking=yes -o LogLevel=ERROR -i "$BENCH_KEY_FILE" "$@"\n`);
chmodSync(rsh, 0o755);

let counter = 0;
async function measure(kind) {
  const n = ++counter;
  const src = writeRandomTree(join(dir, `src-${n}`), SOURCE_BYTES);
  const clientDir = join(dir, `client-${n}`);
  try {
    let url;
    let key;
    if (kind === 'a') {
      url = `ssh://root@127.0.0.1:${sshdPort}${join(plainRoot, `repo-${n}`)}`;
      key = plainKey.file;
      await runOk('borg', ['init', '-e', 'repokey', url], { env: borgClientEnv(clientDir, rsh, { BENCH_KEY_FILE: key }) });
    } else {
      const name = `bench-${n}`;
      const admin = kind === 'd' ? pgCli : cli;
      await admin(['repo', 'create', name, ...(kind === 'd' ? ['--node', 'n1'] : [])]);
      await admin(['grant', 'admin-key', name, '--role', 'full']);
      await admin(['grant', 'writer-key', name, '--role', 'append']);
      const port = kind === 'b' ? sshdPort : kind === 'c' ? servePort : gatewayPgPort;
      const user = kind === 'b' ? 'root' : 'borg';
      await runOk('borg', ['init', '-e', 'repokey', `ssh://${user}@127.0.0.1:${port}/./${name}`], { env: borgClientEnv(clientDir, rsh, { BENCH_KEY_FILE: adminKey.file }) });
      url = `ssh://${user}@127.0.0.1:${port}/./${name}`;
      key = writerKey.file;
    }
    syncDisks();
    const server = kind === 'c' ? serve.pid : sshd.pid;
    if (kind === 'a' || kind === 'b') await waitNoChildren(sshd.pid);
    const before = kind === 'd' ? { gateway: cpuSeconds(gatewayPg.pid), node: cpuSeconds(node.pid) } : cpuSeconds(server);
    const burner = BUSY ? spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }) : null;
    const t0 = process.hrtime.bigint();
    const r = await run('borg', ['create', '--compression', 'lz4', `${url}::bench`, src], { env: borgClientEnv(clientDir, rsh, { BENCH_KEY_FILE: key }) });
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    burner?.kill('SIGKILL');
    if (r.code !== 0) throw new Error(`borg create (${kind}) failed (${r.code}):\n${r.stderr}`);
    // The connection's processes end (and are reaped) just after the client's exit.
    if (kind === 'a' || kind === 'b') await waitNoChildren(sshd.pid);
    else await new Promise((res) => setTimeout(res, 300));
    const whole = (b, a) => a.own - b.own + (a.reaped - b.reaped);
    const cpu =
      kind === 'd'
        ? whole(before.gateway, cpuSeconds(gatewayPg.pid)) + whole(before.node, cpuSeconds(node.pid))
        : kind === 'c'
          ? whole(before, cpuSeconds(server))
          : cpuSeconds(server).reaped - before.reaped;
    return { seconds, cpuPerGiB: cpu / GIB };
  } finally {
    rmSync(src, { recursive: true, force: true });
    rmSync(clientDir, { recursive: true, force: true });
    for (const name of readdirSync(plainRoot)) if (name === `repo-${n}`) rmSync(join(plainRoot, name), { recursive: true, force: true });
    syncDisks();
  }
}

console.log(
  `borg create of ${SOURCE_BYTES / MiB} MiB of fresh random data, -C lz4, -e repokey, over ssh on loopback; ${ROUNDS} rounds of (a) OpenSSH + plain borg serve, (b) OpenSSH + borgkeep borg-serve, (c) borgkeep's embedded gateway${NODES ? ', (d) gateway -> storage node' : ''}, order rotating${BUSY ? '; a CPU-bound process beside every run' : ''}; ${borgVersion()}, node ${process.version}, ${(await runOk('ssh', ['-V'])).stderr.trim()}`,
);
const results = Object.fromEntries(KINDS.map((k) => [k, []]));
for (let i = 0; i < ROUNDS; i++) {
  // The order rotates: each way goes first in turn.
  const order = KINDS.map((_, j) => KINDS[(i + j) % KINDS.length]);
  for (const kind of order) results[kind].push(await measure(kind));
  const a = results.a[i];
  const parts = KINDS.map((k) => `${k} ${fmt(results[k][i].seconds)} s${k === 'a' ? '' : ` (${k}/a ${fmt(results[k][i].seconds / a.seconds, 3)})`}`);
  console.log(`  round ${i + 1}: ${parts.join(', ')}; server CPU ${KINDS.map((k) => `${k} ${fmt(results[k][i].cpuPerGiB, 3)}`).join(', ')} s/GiB`);
}
const med = (kind, field) => median(results[kind].map((r) => r[field]));
const ratio = (kind) => ({ ofMedians: med(kind, 'seconds') / med('a', 'seconds'), medianOfRounds: median(results[kind].map((r, i) => r.seconds / results.a[i].seconds)) });
const rb = ratio('b');
const rc = ratio('c');
const rd = NODES ? ratio('d') : null;
printTable([
  ['way', 'median s', 'ratio to (a) (of medians; median of rounds)', 'server CPU s/GiB (median)'],
  ['(a) OpenSSH + borg serve', fmt(med('a', 'seconds')), '1', fmt(med('a', 'cpuPerGiB'), 3)],
  ['(b) OpenSSH + borgkeep borg-serve', fmt(med('b', 'seconds')), `${fmt(rb.ofMedians, 3)}; ${fmt(rb.medianOfRounds, 3)}`, fmt(med('b', 'cpuPerGiB'), 3)],
  ['(c) embedded gateway', fmt(med('c', 'seconds')), `${fmt(rc.ofMedians, 3)}; ${fmt(rc.medianOfRounds, 3)}`, fmt(med('c', 'cpuPerGiB'), 3)],
  ...(rd ? [['(d) gateway -> storage node', fmt(med('d', 'seconds')), `${fmt(rd.ofMedians, 3)}; ${fmt(rd.medianOfRounds, 3)}`, fmt(med('d', 'cpuPerGiB'), 3)]] : []),
]);
const goals = { b: rb.ofMedians <= 1.03, c: rc.ofMedians <= 1.0, cCpu: med('c', 'cpuPerGiB') <= med('a', 'cpuPerGiB'), ...(rd && { d: rd.ofMedians <= 1.1 }) };
console.log(
  `goals: (b)/(a) <= 1.03 ${goals.b ? 'met' : 'NOT met'}; (c)/(a) <= 1.00 ${goals.c ? 'met' : 'NOT met'}; (c)'s server CPU per GiB <= (a)'s ${goals.cCpu ? 'met' : 'NOT met'}${rd ? `; (d)/(a) <= 1.10 ${goals.d ? 'met' : 'NOT met'}` : ''}`,
);
saveResults(BUSY ? 'gateway-busy' : 'gateway', { sourceBytes: SOURCE_BYTES, rounds: ROUNDS, results, ratioB: rb, ratioC: rc, ratioD: rd, goals });
for (const c of children) c.kill('SIGTERM');
// The servers write their profiles (BENCH_CPU_PROF) as they stop.
await Promise.all(children.map((c) => (c.exitCode !== null || c.signalCode !== null ? null : new Promise((r) => c.once('exit', r)))));
