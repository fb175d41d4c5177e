// The pull runner against a real client host: a real OpenSSH sshd in a network namespace (from
// which the server's loopback is unreachable), the real borg there, and a PullJobSession that is
// a plain `borg serve` on a scratch repokey repository (the keyless proxy is another part): a job
// that works proves the SSH plumbing and the remote-forwarding path; the failures each end with
// one sentence and the client's private directory gone.

import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { machine, tmpdir, type } from 'node:os';
import { dirname, join } from 'node:path';

import * as ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { generateEd25519KeyPair, type HostKey } from '../../src/gateway/host-keys.js';
import { authorizedKeysLine, loadOrCreatePullIdentity, type PullIdentity } from '../../src/pull/pull-identity.js';
import { runPullJob, type PullRunnerDeps } from '../../src/pull/pull-runner.js';
import type { PullHost, PullJob, PullJobRecorder, PullJobSession, PullJobState, PullProgress, PullSessionOutcome } from '../../src/pull/types.js';
import { parseSshPublicKey } from '../../src/store/ssh-public-key.js';
import { run } from '../helpers/borgkeep-env.js';
import { startPullClientHost, type PullClientHost } from '../helpers/pull-client-host.js';

/** This file's client host number: 10.213.11.0/30. */
const NET = 11;
const PASSPHRASE = `job passphrase ${randomBytes(8).toString('hex')}`;

let root: string;
let repo: string;
let data: string;
let client: PullClientHost;
let identity: PullIdentity;
let deps: PullRunnerDeps;
let loopbackService: Server;

function hostKey(): HostKey {
  const pair = generateEd25519KeyPair();
  const parsed = parseSshPublicKey(pair.public);
  return { type: parsed.type, privateKey: pair.private, publicLine: `${parsed.type} ${parsed.blob}`, fingerprint: parsed.fingerprint };
}

const borgEnv = (): NodeJS.ProcessEnv => ({ ...process.env, BORG_PASSPHRASE: PASSPHRASE, BORG_BASE_DIR: join(root, 'borg-base'), BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes' });

/**
 * The stand-in for the keyless proxy: a plain `borg serve` restricted to the scratch directory,
 * where the client's `./job` is the scratch repository. `hang` never answers (for the time-out).
 */
function fakeSession(opts: { passphrase?: string; hang?: boolean; refusal?: string; figures?: { files: number; bytes: number } } = {}): PullJobSession & { disposed: boolean; serves: number } {
  const s = {
    passphrase: opts.passphrase ?? PASSPHRASE,
    disposed: false,
    serves: 0,
    serve(io: { input: NodeJS.ReadableStream; output: NodeJS.WritableStream; errOutput: NodeJS.WritableStream; stop?: AbortSignal }): Promise<PullSessionOutcome> {
      s.serves++;
      if (opts.hang) {
        return new Promise((resolve) => {
          const done = (): void => resolve({ committed: false, refusal: null, sessionId: null });
          if (io.stop?.aborted) done();
          io.stop?.addEventListener('abort', done, { once: true });
        });
      }
      const child: ChildProcess = spawn('borg', ['serve', '--restrict-to-path', root], { cwd: root, env: borgEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
      io.input.pipe(child.stdin!);
      child.stdout!.pipe(io.output, { end: false });
      child.stderr!.pipe(io.errOutput, { end: false });
      io.stop?.addEventListener('abort', () => child.kill('SIGTERM'), { once: true });
      return new Promise((resolve) =>
        child.on('close', (code) => resolve(opts.refusal ? { committed: false, refusal: opts.refusal, sessionId: null } : { committed: code === 0, refusal: null, sessionId: null, figures: opts.figures ?? null })),
      );
    },
    dispose() {
      s.disposed = true;
    },
  };
  return s;
}

function recorder(): PullJobRecorder & { states: { state: PullJobState; reason?: string | null; archiveName?: string }[]; progressed: PullProgress[]; lines: string[] } {
  const r = {
    states: [] as { state: PullJobState; reason?: string | null; archiveName?: string }[],
    progressed: [] as PullProgress[],
    lines: [] as string[],
    async state(_id: number, state: PullJobState, fields?: { archiveName?: string; reason?: string | null }) {
      r.states.push({ state, ...fields });
    },
    async progress(_id: number, p: PullProgress) {
      r.progressed.push(p);
    },
    async log(_id: number, line: string) {
      r.lines.push(line);
    },
  };
  return r;
}

let hostIds = 0;
function pullHost(over: Partial<PullHost> = {}): PullHost {
  return {
    id: ++hostIds,
    name: 'client1',
    address: client.address,
    port: client.port,
    user: client.user,
    repositoryId: 1,
    paths: [data],
    excludes: ['*.skip'],
    compression: 'lz4',
    archiveTemplate: '{host}-{now}',
    schedule: null,
    timeoutSeconds: 60,
    retries: 0,
    hostKeyFingerprint: client.hostKeyFingerprint,
    createdAt: new Date(),
    ...over,
  };
}

const job = (host: PullHost): PullJob => ({
  id: host.id,
  hostId: host.id,
  hostName: host.name,
  trigger: 'manual',
  state: 'queued',
  archiveName: null,
  queuedAt: new Date(),
  startedAt: null,
  endedAt: null,
  bytes: 0,
  files: 0,
  reason: null,
  attempt: 0,
  hostile: false,
});

/** The client's platform as pullBorgBinaries names it: the client host is a namespace of this machine. */
const platform = `${type()}-${machine()}`.toLowerCase();
/**
 * A "standalone borg" on the server: a script running the system's borg, padded to the size of a
 * PyInstaller borg-linux64 (30 MiB; the shell never reads past its exec). What the runner does
 * with it is what it does with the real one: its bytes uploaded and executed. Before the exec it
 * notes where it runs from, its checksum and its TMPDIR, into `standaloneRan` on the client.
 */
let standaloneBorg: string;
let standaloneRan: string;

/** The client's TMPDIR holds no job directory. */
const clientTmp = (): string[] => readdirSync(client.tmpDir);

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'bk-pull-runner-'));
  chmodSync(root, 0o755);
  identity = loadOrCreatePullIdentity(join(root, 'data'));
  client = await startPullClientHost(NET, [authorizedKeysLine(identity)]);
  // What the client backs up: readable by the client's pull user, with awkward names.
  data = join(client.dir, 'data dir');
  mkdirSync(join(data, 'sub $(x)'), { recursive: true });
  writeFileSync(join(data, 'random.bin'), randomBytes(3 * 1024 * 1024 + 17));
  writeFileSync(join(data, "it's here.txt"), 'hello from the client\n'.repeat(1000));
  writeFileSync(join(data, 'sub $(x)', 'nested.txt'), 'nested\n');
  writeFileSync(join(data, 'excluded.skip'), 'must not be backed up\n');
  for (const d of [data, join(data, 'sub $(x)')]) chmodSync(d, 0o755);
  standaloneBorg = join(root, 'borg-standalone');
  standaloneRan = join(client.dir, 'standalone-ran');
  mkdirSync(standaloneRan, { mode: 0o700 });
  chownSync(standaloneRan, client.uid, client.gid);
  const systemBorg = (await run('sh', ['-c', 'command -v borg'])).stdout.trim();
  const script = Buffer.from(`#!/bin/sh\n{ printf '%s\\n' "$0" "$TMPDIR"; /usr/bin/sha256sum < "$0"; } > '${standaloneRan}/ran'\nexec ${systemBorg} "$@"\n`);
  writeFileSync(standaloneBorg, Buffer.concat([script, randomBytes(30 * 1024 * 1024 - script.length)]), { mode: 0o600 });
  repo = join(root, 'job');
  const init = await run('borg', ['init', '--encryption=repokey', repo], { env: borgEnv() });
  if (init.code !== 0) throw new Error(`borg init failed: ${init.stderr}`);
  deps = { ssh2: { Client: ssh2.Client, Server: ssh2.Server, parseKey: ssh2.utils.parseKey }, identity, hostKey: hostKey(), connectTimeoutMs: 10_000 };
  loopbackService = createServer((s) => s.end('server loopback\n'));
  await new Promise<void>((resolve) => loopbackService.listen(0, '127.0.0.1', resolve));
}, 60_000);

afterAll(async () => {
  loopbackService?.close();
  await client?.close();
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('the client host', () => {
  it("cannot reach the server's loopback services from inside its namespace", async () => {
    const { port } = loopbackService.address() as { port: number };
    // From the server's own namespace the service answers ...
    const here = await run('bash', ['-c', `timeout 3 cat </dev/tcp/127.0.0.1/${port}`]);
    expect(here.stdout).toBe('server loopback\n');
    // ... from the client's, neither its loopback nor the server's veth address reaches it.
    for (const address of ['127.0.0.1', client.serverAddress]) {
      const there = await client.exec('bash', ['-c', `timeout 3 cat </dev/tcp/${address}/${port}`]);
      expect(there.code).not.toBe(0);
      expect(there.stdout).toBe('');
    }
  });
});

describe('a client host', () => {
  it('leaves no namespace, veth, sshd or directory behind when closed', async () => {
    const second = await startPullClientHost(NET + 100, []);
    const pid = second.sshdPid;
    await second.close();
    expect((await run('ip', ['netns', 'list'])).stdout).not.toMatch(new RegExp(`\\b${second.netns}\\b`));
    expect((await run('ip', ['link', 'show'])).stdout).not.toContain(`bkp${NET + 100}s`);
    expect(() => process.kill(pid, 0)).toThrow();
    expect(existsSync(second.dir)).toBe(false);
  });
});

describe('a pull job', () => {
  // The direct hop where the client's python3 runs the job's connector (this client host has it),
  // SSH with a one-time job key where it cannot (forced here).
  it.each([
    ['direct', /connects through the job's connector \(python3\)/],
    ['ssh', /connects over SSH with the job's key/],
  ] as const)('backs the client up through the remote-forwarded port (%s): borg extract gives the files back byte for byte', async (hop, said) => {
    const host = pullHost();
    // The archive's own figures come from the session (the proxy reads them from the archive's metadata).
    const session = fakeSession({ figures: { files: 3, bytes: 3 * 1024 * 1024 + 17 } });
    const rec = recorder();
    const archiveName = `client1-2026-12-06T14:00:00-${hop}`;
    const result = await runPullJob(hop === 'ssh' ? { ...deps, hop } : deps, host, job(host), session, rec, { archiveName });
    expect(rec.lines.join('\n')).toMatch(said);
    expect(result, rec.lines.join('\n')).toEqual({ state: 'done', reason: null });
    expect(rec.states.map((s) => s.state)).toEqual(['connecting', 'running', 'committing', 'done']);
    expect(rec.states[0].archiveName).toBe(archiveName);
    expect(session.serves).toBe(1);
    expect(session.disposed).toBe(true);
    const last = rec.progressed.at(-1)!;
    expect(last).toMatchObject({ files: 3, bytes: 3 * 1024 * 1024 + 17 });

    const list = await run('borg', ['list', '--short', repo], { env: borgEnv() });
    expect(list.stdout.trim().split('\n').at(-1)).toBe(archiveName);
    const restore = join(root, `restore-${hop}`);
    mkdirSync(restore);
    const extract = await run('borg', ['extract', `${repo}::${archiveName}`], { env: borgEnv(), cwd: restore });
    expect(extract.code, extract.stderr).toBe(0);
    const restored = join(restore, data.slice(1));
    for (const f of ['random.bin', "it's here.txt", join('sub $(x)', 'nested.txt')]) {
      expect(readFileSync(join(restored, f)).equals(readFileSync(join(data, f))), f).toBe(true);
    }
    expect(readdirSync(restored).sort()).toEqual(["it's here.txt", 'random.bin', 'sub $(x)']);
    // The client's private directory is gone, and no secret is in the job's log.
    expect(clientTmp()).toEqual([]);
    const log = rec.lines.join('\n');
    expect(log).not.toContain(PASSPHRASE);
    expect(log).not.toContain('PRIVATE KEY');
    expect(log).not.toContain(root);
  });

  it('that fails (borg refuses the passphrase) leaves no private directory on the client', async () => {
    const host = pullHost();
    const rec = recorder();
    const result = await runPullJob(deps, host, job(host), fakeSession({ passphrase: 'not the passphrase' }), rec, { archiveName: 'client1-wrong' });
    expect(result.state).toBe('failed');
    expect(result.reason).toMatch(/^borg create failed on client1: .*passphrase/i);
    expect(rec.states.at(-1)).toEqual({ state: 'failed', reason: result.reason });
    expect(clientTmp()).toEqual([]);
    expect(rec.lines.join('\n')).not.toContain('not the passphrase');
  });

  it('that runs past its time-out fails, and its directory is removed', async () => {
    const host = pullHost({ timeoutSeconds: 3 });
    const rec = recorder();
    const started = Date.now();
    const result = await runPullJob(deps, host, job(host), fakeSession({ hang: true }), rec, { archiveName: 'client1-slow' });
    expect(result).toEqual({ state: 'failed', reason: 'the job ran longer than its time-out of 3 s' });
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(clientTmp()).toEqual([]);
  });
});

describe('a pull job that ends badly', () => {
  it('whose session refused something fails with the refusal, not as done', async () => {
    const host = pullHost();
    const refusal = 'the archive name other-name is not the job\'s; the job was refused';
    const result = await runPullJob(deps, host, job(host), fakeSession({ refusal }), recorder(), { archiveName: 'client1-refused' });
    expect(result).toEqual({ state: 'failed', reason: refusal, refused: true });
    expect(clientTmp()).toEqual([]);
  });

  it('stopped by its caller fails as stopped, and its directory is removed', async () => {
    const host = pullHost();
    const rec = recorder();
    const stop = new AbortController();
    const running = runPullJob(deps, host, job(host), fakeSession({ hang: true }), rec, { archiveName: 'client1-stopped', stop: stop.signal });
    await expect.poll(() => rec.lines.some((l) => l.includes("the client's borg connected"))).toBe(true);
    // While it runs: the job's directory is the user's alone, its secrets are in 0600 files and on
    // no command line (every user of the client can read those).
    const [jobDir] = clientTmp();
    expect(jobDir).toMatch(/^borgkeep-pull\./);
    const dir = join(client.tmpDir, jobDir);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(dir).uid).toBe(client.uid);
    // The direct hop (this client has python3): its connector and one-time token; no SSH key.
    expect(readdirSync(dir).filter((f) => f !== 'base').sort()).toEqual(['connect.py', 'pass', 'token']);
    for (const f of ['connect.py', 'token', 'pass']) expect(statSync(join(dir, f)).mode & 0o777, f).toBe(0o600);
    expect(readFileSync(join(dir, 'pass'), 'utf8')).toBe(`${PASSPHRASE}\n`);
    const token = readFileSync(join(dir, 'token'), 'utf8').trim();
    expect(token).toMatch(/^[0-9a-f]{64}$/);
    const ps = await run('ps', ['-eo', 'args']);
    expect(ps.stdout).toContain('borg create --log-json');
    expect(ps.stdout).toContain(`python3 -I ${dir}/connect.py`);
    expect(ps.stdout).not.toContain(PASSPHRASE);
    expect(ps.stdout).not.toContain(token);
    expect(rec.lines.join('\n')).not.toContain(token);
    stop.abort();
    expect(await running).toEqual({ state: 'failed', reason: 'the job was stopped' });
    expect(clientTmp()).toEqual([]);
  });

  it('whose connection drops mid-backup fails, and the directory is removed all the same', async () => {
    const host = pullHost();
    const rec = recorder();
    const running = runPullJob(deps, host, job(host), fakeSession({ hang: true }), rec, { archiveName: 'client1-dropped' });
    await expect.poll(() => rec.lines.some((l) => l.includes("the client's borg connected"))).toBe(true);
    // The client's sshd loses the connection: every sshd process but the listener is killed.
    const pids = (await client.exec('ip', ['netns', 'pids', client.netns])).stdout.split(/\s+/).filter(Boolean).map(Number);
    for (const pid of pids) {
      if (pid === client.sshdPid) continue;
      let comm = '';
      try {
        comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      } catch {
        continue;
      }
      if (comm === 'sshd') process.kill(pid, 'SIGKILL');
    }
    const result = await running;
    expect(result).toEqual({ state: 'failed', reason: 'the connection to client1 dropped during the job' });
    expect(rec.lines).toContain("connecting to client1 again to remove the job's directory");
    expect(rec.lines).toContain("removed the job's private directory on the client");
    expect(clientTmp()).toEqual([]);
  });
});

describe('a pull job that cannot start', () => {
  it('fails with one sentence within the command time-out when the client host stops answering: no forwarded port, no session channel', async () => {
    // The real client host, with the one request left unanswered (as a host under heavy load, or
    // a broken sshd, leaves it): the job must not wait in "connecting" for ever.
    const NoForward = class extends ssh2.Client {};
    NoForward.prototype.forwardIn = function (this: ssh2.Client) {
      return this;
    } as never;
    const NoChannel = class extends ssh2.Client {};
    NoChannel.prototype.exec = function (this: ssh2.Client) {
      return this;
    } as never;
    const cases: [typeof ssh2.Client, string][] = [
      [NoForward, 'client1 did not answer the request for a forwarded port within 2 s'],
      [NoChannel, 'the client host did not open an SSH session channel within 2 s'],
    ];
    for (const [Client, reason] of cases) {
      const host = pullHost();
      const started = Date.now();
      const result = await runPullJob({ ...deps, ssh2: { ...deps.ssh2, Client }, commandTimeoutMs: 2000 }, host, job(host), fakeSession(), recorder(), { archiveName: 'x' });
      expect(result).toEqual({ state: 'failed', reason });
      expect(Date.now() - started).toBeLessThan(15_000);
      expect(clientTmp()).toEqual([]);
    }
  });

  it('fails when the client allows no remote forwarding', async () => {
    const host = pullHost({ port: client.portWithoutForwarding });
    const result = await runPullJob(deps, host, job(host), fakeSession(), recorder(), { archiveName: 'x' });
    expect(result.state).toBe('failed');
    expect(result.reason).toMatch(/^client1 does not allow remote forwarding to its loopback/);
    expect(clientTmp()).toEqual([]);
  });

  it('fails when the host key is not accepted yet, naming the offered fingerprint', async () => {
    const host = pullHost({ hostKeyFingerprint: null });
    const session = fakeSession();
    const result = await runPullJob(deps, host, job(host), session, recorder(), { archiveName: 'x' });
    expect(result).toEqual({
      state: 'failed',
      reason: `the host key of client1 is not accepted yet: ${client.hostKeyFingerprint} (compare it with ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on the client, then accept it with borgkeep host accept-key client1 ${client.hostKeyFingerprint})`,
      hostKey: { offered: client.hostKeyFingerprint, pinned: null },
    });
    expect(session.serves).toBe(0);
    expect(session.disposed).toBe(true);
  });

  it('fails on a host key mismatch, naming both fingerprints', async () => {
    const pinned = 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
    const host = pullHost({ hostKeyFingerprint: pinned });
    const result = await runPullJob(deps, host, job(host), fakeSession(), recorder(), { archiveName: 'x' });
    expect(result.state).toBe('failed');
    expect(result.reason).toBe(`the host key of client1 has changed: it offered ${client.hostKeyFingerprint}, but ${pinned} is pinned; the job was refused`);
    expect(result.hostKey).toEqual({ offered: client.hostKeyFingerprint, pinned });
  });

  it('fails with a clear reason when the client is unreachable', async () => {
    const host = pullHost({ port: 2 });
    const result = await runPullJob(deps, host, job(host), fakeSession(), recorder(), { archiveName: 'x' });
    expect(result).toEqual({ state: 'failed', reason: `could not connect to client1 (${client.address}:2): the connection was refused (is sshd running there?)` });
  });

  it('fails when the client refuses the pull key', async () => {
    const other = loadOrCreatePullIdentity(join(root, 'other-data'));
    const host = pullHost();
    const result = await runPullJob({ ...deps, identity: other }, host, job(host), fakeSession(), recorder(), { archiveName: 'x' });
    expect(result).toEqual({
      state: 'failed',
      reason: `client1 refused borgkeep's pull key for user ${client.user} (is the line of borgkeep pull-key in that user's authorized_keys?)`,
    });
  });

  it('fails when the TMPDIR on the client has a name borg cannot take, leaving nothing there', async () => {
    const host = pullHost({ port: client.portWithOddTmpDir });
    const result = await runPullJob(deps, host, job(host), fakeSession(), recorder(), { archiveName: 'x' });
    expect(result).toEqual({
      state: 'failed',
      reason: `the TMPDIR of user ${client.user} on client1 has characters borg cannot take in its ssh command (use a path of letters, digits, '.', '_', '-' and '/')`,
    });
    expect(readdirSync(client.oddTmpDir)).toEqual([]);
  });

  it('fails with one sentence naming the platform and the config key when the client has no borg and none is configured for it', async () => {
    const host = pullHost({ port: client.portWithoutBorg });
    // A standalone borg for another platform only.
    const result = await runPullJob({ ...deps, borgBinaries: { 'plan9-mips': standaloneBorg } }, host, job(host), fakeSession(), recorder(), { archiveName: 'x' });
    expect(result).toEqual({
      state: 'failed',
      reason: `borg is not installed on client1: user ${client.user} has no borg command in its PATH, and no standalone borg is configured for its platform ${platform} (pullBorgBinaries)`,
    });
    expect(clientTmp()).toEqual([]);
  });

  it('fails with one sentence when the standalone borg configured for the platform cannot be read or is no program, leaving nothing on the client', async () => {
    const host = pullHost({ port: client.portWithoutBorg });
    const missing = join(root, 'no-such-borg');
    const rec = recorder();
    const result = await runPullJob({ ...deps, borgBinaries: { [platform]: missing } }, host, job(host), fakeSession(), rec, { archiveName: 'x' });
    expect(result).toEqual({ state: 'failed', reason: `could not read the standalone borg configured for ${platform} (pullBorgBinaries): there is no such file` });
    expect(clientTmp()).toEqual([]);
    // The server's path is in neither the reason nor the log.
    expect(rec.lines.join('\n')).not.toContain(root);
    // A file that is no program (here a key) is never sent.
    const notAProgram = join(root, 'not-a-program');
    writeFileSync(notAProgram, '-----BEGIN OPENSSH PRIVATE KEY-----\n');
    const second = await runPullJob({ ...deps, borgBinaries: { [platform]: notAProgram } }, host, job(host), fakeSession(), recorder(), { archiveName: 'x' });
    expect(second).toEqual({
      state: 'failed',
      reason: `the standalone borg configured for ${platform} (pullBorgBinaries) is not a program (an ELF or Mach-O binary, or a #! script): give the single-file borg, e.g. borg-linux64`,
    });
    expect(clientTmp()).toEqual([]);
  });
});

describe('a client without borg', () => {
  it('gets the standalone borg configured for its platform: uploaded for the job, run, and removed with the job directory', async () => {
    const host = pullHost({ port: client.portWithoutBorg });
    const session = fakeSession();
    const rec = recorder();
    const archiveName = 'client1-standalone';
    const result = await runPullJob({ ...deps, borgBinaries: { [platform]: standaloneBorg } }, host, job(host), session, rec, { archiveName });
    expect(result, rec.lines.join('\n')).toEqual({ state: 'done', reason: null });
    expect(session.serves).toBe(1);
    expect(rec.lines).toContain(`uploaded the standalone borg for ${platform} (30.0 MiB)`);
    // It ran from the job's private directory, byte for byte the server's file, unpacking (as a
    // PyInstaller borg does) into that directory.
    const [ranAs, tmp, sum] = readFileSync(join(standaloneRan, 'ran'), 'utf8').split('\n');
    expect(ranAs).toMatch(new RegExp(`^${client.tmpDir}/borgkeep-pull\\.[A-Za-z0-9]+/borg$`));
    expect(tmp).toBe(dirname(ranAs!));
    expect(sum!.split(' ')[0]).toBe(createHash('sha256').update(readFileSync(standaloneBorg)).digest('hex'));
    // The uploaded borg (the only one in that PATH) wrote the archive.
    const list = await run('borg', ['list', '--short', repo], { env: borgEnv() });
    expect(list.stdout.split('\n')).toContain(archiveName);
    expect(clientTmp()).toEqual([]);
    expect(rec.lines.join('\n')).not.toContain(root);
  });
});
