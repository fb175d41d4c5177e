// `borgkeep pull-key`, `host ...` and `pull ...` through the built CLI on a real SQLite store.
// The job runner (SSH to the client) is not part of these tests: where a job must run, this test
// process plays `borgkeep serve` in the store (its heartbeat, claiming the job, ending it), which
// is what the CLI sees of a server.
import { spawn, type ChildProcess } from 'node:child_process';
import { hostname } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { openStore, type Store } from '../../src/store/database.js';
import { BORGKEEP, createSandbox, expectOneSentence, type CliSandbox } from './cli-harness.js';

let cli: CliSandbox;
const FP = `SHA256:${'x'.repeat(40)}AB+`;
beforeAll(async () => {
  cli = createSandbox();
  await cli.ok(['repo', 'create', 'photos']);
});
afterAll(() => cli.cleanup());

const withStore = async <T>(work: (store: Store) => Promise<T>): Promise<T> => {
  const store = await openStore({ dataDir: cli.dataDir });
  try {
    return await work(store);
  } finally {
    await store.close();
  }
};
/** This process says, as serve's pull service does, that it runs on the data directory. */
const playServer = (beat: boolean) => withStore((s) => (beat ? s.beatPullServer({ kind: 'serve', pid: process.pid, host: hostname() }) : s.clearPullServer({ kind: 'serve', pid: process.pid, host: hostname() })));
const add = (name: string, ...extra: string[]) => cli.run(['host', 'add', name, '--address', '127.0.0.1:1', '--user', 'backup', '--repo', 'photos', '--paths', '/etc', ...extra]);

describe('borgkeep pull-key', () => {
  it("prints the restricted authorized_keys line, the same each time, and one sentence as a comment line", async () => {
    const out = await cli.ok(['pull-key']);
    const [line, comment, ...rest] = out.trimEnd().split('\n');
    expect(rest).toEqual([]);
    expect(line).toMatch(/^restrict,port-forwarding,permitlisten="127\.0\.0\.1:\*" ssh-ed25519 AAAA[A-Za-z0-9+/]+=* borgkeep-pull$/);
    expect(comment).toMatch(/^# Add the line above to ~\/\.ssh\/authorized_keys of the user borgkeep logs in as on each client host .*\(key SHA256:[A-Za-z0-9+/]{43}\)\.$/);
    expect(await cli.ok(['pull-key'])).toBe(out);
  });
});

describe('borgkeep host', () => {
  it('adds a host with every setting and shows it, as text and JSON', async () => {
    const out = await cli.ok(['host', 'add', 'web1', '--address', 'client.example.org:2222', '--user', 'backup', '--repo', 'photos', '--paths', '/etc,/home', '--exclude', '*.tmp', '--exclude', 'sh:/home/*/.cache', '--schedule', '0 2 * * *', '--compression', 'zstd,3', '--archive', 'web-{now}', '--accept-host-key', FP, '--timeout', '90m', '--retries', '3']);
    expect(out).toMatch(/^added host 'web1': backup@client\.example\.org:2222, \/etc, \/home into repository 'photos'\.\n  schedule '0 2 \* \* \*' \(next \d{4}-\d\d-\d\dT02:00:00Z, server time\)/);
    const shown = await cli.json(['host', 'show', 'web1']);
    expect(shown).toEqual({
      id: 1,
      name: 'web1',
      address: 'client.example.org',
      port: 2222,
      user: 'backup',
      repository: 'photos',
      paths: ['/etc', '/home'],
      excludes: ['*.tmp', 'sh:/home/*/.cache'],
      compression: 'zstd,3',
      archiveTemplate: 'web-{now}',
      schedule: '0 2 * * *',
      nextRunAt: expect.stringMatching(/T02:00:00\.000Z$/),
      timeoutSeconds: 5400,
      retries: 3,
      hostKeyFingerprint: FP,
      sendChunkIndex: true,
      keepFilesCache: false,
      createdAt: expect.any(String),
      lastJob: null,
      offeredHostKey: null,
    });
    // 'photos' has no key in the vault: the add says every job fails until it has one.
    expect(out).toContain("\n  repository 'photos' has no key in the vault yet: jobs fail until 'borgkeep repo key photos --passphrase-file FILE' hands it over\n");
    const text = await cli.ok(['host', 'show', 'web1']);
    expect(text).toContain(`  host key:    ${FP}\n`);
    expect(text).toContain('  last job:    none yet\n');
    expect(text).toContain('  chunk index: given to the client at each job');

    // Defaults, and a host whose key is not accepted yet.
    expect((await add('db1')).code).toBe(0);
    expect(await cli.json(['host', 'show', 'db1'])).toMatchObject({ port: 1, compression: 'lz4', archiveTemplate: '{host}-{now}', schedule: null, nextRunAt: null, timeoutSeconds: 21_600, retries: 2, hostKeyFingerprint: null });
    expect(await cli.ok(['host', 'show', 'db1'])).toContain('  host key:    not accepted yet\n');
    expect((await cli.json(['host', 'list'])).hosts.map((h: { name: string }) => h.name)).toEqual(['db1', 'web1']);
    expect(await cli.ok(['host', 'list'])).toMatch(/^NAME +ADDRESS +REPOSITORY +SCHEDULE +HOST KEY +LAST JOB\ndb1 +backup@127\.0\.0\.1:1 +photos +manual +not accepted yet +never\nweb1 /);
    // The runner notes the key the host offered: shown for comparison, not trusted.
    const offered = `SHA256:${'o'.repeat(43)}`;
    await withStore(async (s) => s.notePullHostKeyOffered((await s.getPullHost('db1')).id, offered));
    expect(await cli.ok(['host', 'show', 'db1'])).toMatch(new RegExp(`  host key:    not accepted yet\n               the host offered ${offered} at \\S+; compare it with 'ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub' on the client, then 'borgkeep host accept-key db1 ${offered}'\n`));
    await cli.ok(['host', 'accept-key', 'db1', FP]);
    expect(await cli.json(['host', 'show', 'db1'])).toMatchObject({ hostKeyFingerprint: FP, offeredHostKey: null });
  });

  it('refuses every bad value with one sentence and writes nothing', async () => {
    const before = await cli.json(['host', 'list']);
    const cases: Array<[string[], string | RegExp]> = [
      [['--address', 'h:70000'], "the port '70000' in the address 'h:70000' is not a port from 1 to 65535"],
      [['--address', 'bad host'], /^borgkeep: the address 'bad host' is not a host name or IP address; use /],
      [['--paths', '/etc,home'], "the path 'home' is not absolute; paths on the client start with '/', e.g. /home"],
      [['--schedule', 'daily'], "the schedule 'daily' is not a cron pattern like '0 2 * * *' (minute hour day month weekday)"],
      [['--compression', 'zstd,30'], /^borgkeep: the compression 'zstd,30' is not one borg accepts; use none, lz4, zstd\[,1-22\]/],
      [['--accept-host-key', 'SHA256:short'], /^borgkeep: the host key fingerprint 'SHA256:short' is not an OpenSSH SHA-256 fingerprint/],
      [['--archive', '{host}/{now}'], "an archive name cannot contain '/', which borg refuses (the archive template '{host}/{now}')"],
      [['--archive', '{host}'], "the archive template '{host}' must contain {now}, or every job after the first would reuse one archive name"],
      [['--timeout', '6'], "--timeout '6' is not a duration; use a whole number of days, hours, minutes or seconds, e.g. 30d, 12h or 90m"],
      [['--retries', '11'], "--retries must be a whole number from 0 to 10, not '11'"],
      [['--user', '-oops'], /^borgkeep: the user '-oops' is not a user name/],
      [['--repo', 'nope'], "there is no repository named 'nope'"],
    ];
    for (const [opts, message] of cases) {
      const args = ['host', 'add', 'bad1', '--address', '127.0.0.1', '--user', 'backup', '--repo', 'photos', '--paths', '/etc'];
      for (let i = 0; i < opts.length; i += 2) {
        const at = args.indexOf(opts[i]!);
        if (at >= 0) args[at + 1] = opts[i + 1]!;
        else args.push(opts[i]!, opts[i + 1]!);
      }
      expectOneSentence(await cli.run(args), message);
    }
    expectOneSentence(await add('web1'), "a host named 'web1' already exists");
    expectOneSentence(await add('../x'), "the host name '../x' may only contain letters, digits, '.', '_' and '-'");
    expectOneSentence(await cli.run(['host', 'show', 'nope']), "there is no host named 'nope' ('borgkeep host list' shows them)");
    expectOneSentence(await cli.run(['host', 'accept-key', 'db1', 'MD5:aa']), /^borgkeep: the host key fingerprint 'MD5:aa' is not an OpenSSH SHA-256 fingerprint/);
    expect(await cli.json(['host', 'list'])).toEqual(before);
  });
});

describe('borgkeep pull', () => {
  it('with a server running, run queues the job (once) and leaves it to the server; list shows it newest first', async () => {
    await playServer(true);
    try {
      const out = await cli.ok(['pull', 'run', 'web1']);
      expect(out).toBe(`queued job 1 of host 'web1'.\nborgkeep serve (pid ${process.pid}) runs it; follow it with 'borgkeep pull list --host web1'.\n`);
      expect(await cli.ok(['pull', 'run', 'web1'])).toMatch(/^job 1 of host 'web1' was already queued\.\n/);
      await cli.ok(['pull', 'run', 'db1']);
      const { jobs } = await cli.json(['pull', 'list']);
      expect(jobs.map((j: { id: number; host: string; state: string; trigger: string }) => [j.id, j.host, j.state, j.trigger])).toEqual([
        [2, 'db1', 'queued', 'manual'],
        [1, 'web1', 'queued', 'manual'],
      ]);
      expect(jobs[1]).toMatchObject({ archive: null, startedAt: null, endedAt: null, durationSeconds: null, bytes: 0, files: 0, reason: null, attempt: 0 });
      expect((await cli.json(['pull', 'list', '--host', 'web1'])).jobs.map((j: { id: number }) => j.id)).toEqual([1]);
      expect(await cli.ok(['pull', 'list', '--host', 'web1'])).toMatch(/^JOB +HOST +STATE +TRIGGER +QUEUED +ARCHIVE +DURATION +BYTES +FILES +REASON\n1 +web1 +queued +manual /);
      expectOneSentence(await cli.run(['pull', 'run', 'nope']), "there is no host named 'nope' ('borgkeep host list' shows them)");
      expectOneSentence(await cli.run(['pull', 'list', '--host', 'nope']), "there is no host named 'nope' ('borgkeep host list' shows them)");
    } finally {
      await playServer(false);
    }
  });

  it('--wait follows the job the server runs: exit 0 when it is done, the reason and exit 1 when it failed', async () => {
    await playServer(true);
    try {
      const server = { kind: 'serve', pid: process.pid, host: hostname() } as const;
      // The server (this process) takes the queued jobs 1 and 2 first, as serve would have.
      await withStore(async (s) => {
        for (const id of [1, 2]) {
          await s.claimNextPullJob(server, { jobId: id });
          await s.setPullJobState(id, 'done', { archiveName: `a-${id}` });
        }
      });
      const waiting = cli.run(['pull', 'run', 'web1', '--wait']);
      await withStore(async (s) => {
        let job = null;
        while (!job) job = await s.claimNextPullJob(server);
        await s.setPullJobState(job.id, 'running', { archiveName: 'web-2026-12-06T10:00:00' });
        await s.appendPullJobLog(job.id, 'borg create started');
        await s.setPullJobProgress(job.id, { bytes: 2_500_000, files: 12, path: '/etc/hosts' });
        await new Promise((r) => setTimeout(r, 700));
        await s.setPullJobState(job.id, 'done');
      });
      const done = await waiting;
      expect(done.stderr).toBe('');
      expect(done.code).toBe(0);
      expect(done.stdout).toMatch(/^queued job 3 of host 'web1'\.\n(job 3: .*\n)*job 3 done: archive web-2026-12-06T10:00:00, 2\.5 MB, 12 files in \d+ s\.\n$/);
      expect(done.stdout).toContain('job 3: running (archive web-2026-12-06T10:00:00)\n');
      expect(await cli.ok(['pull', 'log', '3'])).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ borg create started\n$/);

      const failing = cli.run(['pull', 'run', 'web1', '--wait']);
      await withStore(async (s) => {
        let job = null;
        while (!job) job = await s.claimNextPullJob(server);
        await s.setPullJobState(job.id, 'failed', { reason: 'the client host could not be reached: connection refused' });
      });
      const failed = await failing;
      expect(failed.code).toBe(1);
      expect(failed.stderr).toBe("borgkeep: job 4 of host 'web1' failed: the client host could not be reached: connection refused\n");
      expect((await cli.json(['pull', 'list', '--host', 'web1'])).jobs[0]).toMatchObject({ id: 4, state: 'failed', reason: 'the client host could not be reached: connection refused' });
    } finally {
      await playServer(false);
    }
  });

  it('--wait ends with the reason when the server running the job dies', async () => {
    // A process that plays the server, and is killed mid-job (as kill -9 would).
    const fake = spawn('sleep', ['60']);
    const server = { kind: 'serve', pid: fake.pid!, host: hostname() } as const;
    try {
      await withStore((s) => s.beatPullServer(server));
      const waiting = cli.run(['pull', 'run', 'db1', '--wait']);
      await withStore(async (s) => {
        let job = null;
        while (!job) job = await s.claimNextPullJob(server);
        await s.setPullJobState(job.id, 'running', { archiveName: 'db1-x' });
      });
      fake.kill('SIGKILL');
      const r = await waiting;
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^borgkeep: job \d+ of host 'db1' failed: the server stopped during the job\n$/);
    } finally {
      fake.kill('SIGKILL');
      await playServer(false);
      await withStore((s) => s.clearPullServer(server));
    }
  });

  it('without a server, run takes the job in this process and exits by how it ended', async () => {
    // A stale heartbeat of a server that is gone does not count.
    await withStore((s) => s.beatPullServer({ kind: 'serve', pid: 999_999_999, host: hostname() }));
    const r = await cli.run(['pull', 'run', 'db1']);
    const job = await withStore(async (s) => (await s.listPullJobs({ hostName: 'db1', limit: 1 }))[0]!);
    expect(job.startedAt).not.toBeNull();
    expect(['done', 'failed']).toContain(job.state);
    expect(r.stdout.startsWith(`queued job ${job.id} of host 'db1'.\n`)).toBe(true);
    if (job.state === 'failed') expect(r.stderr).toBe(`borgkeep: job ${job.id} of host 'db1' failed: ${job.reason}\n`);
    expect(r.code).toBe(job.state === 'done' ? 0 : 1);
  });

  it('host remove is refused while a job runs; then the host goes, its queued jobs end and its history stays', async () => {
    await playServer(true);
    try {
      await cli.ok(['pull', 'run', 'web1']);
      const server = { kind: 'serve', pid: process.pid, host: hostname() } as const;
      const running = await withStore((s) => s.claimNextPullJob(server));
      await cli.ok(['pull', 'run', 'web1']); // queued behind it
      expectOneSentence(await cli.run(['host', 'remove', 'web1']), `host 'web1' has job ${running!.id} running; remove the host when it has ended`, 1);
      await withStore((s) => s.setPullJobState(running!.id, 'done'));
      expect(await cli.ok(['host', 'remove', 'web1'])).toBe("removed host 'web1'; 1 queued job will not run. Its job history stays ('borgkeep pull list'); its archives stay in the repository.\n");
      expect((await cli.json(['host', 'list'])).hosts.map((h: { name: string }) => h.name)).toEqual(['db1']);
      const { jobs } = await cli.json(['pull', 'list']);
      expect(jobs.filter((j: { host: string }) => j.host === 'web1').map((j: { state: string; reason: string | null }) => [j.state, j.reason])[0]).toEqual(['failed', 'the host was removed before the job started']);
      expect(jobs.filter((j: { host: string }) => j.host === 'web1')).toHaveLength(5); // its three before, the running one and the queued one
    } finally {
      await playServer(false);
    }
  });
});

describe('borgkeep pull with borgkeep serve running', () => {
  let sandbox: CliSandbox;
  let child: ChildProcess | null = null;
  afterAll(() => {
    child?.kill('SIGKILL');
    sandbox?.cleanup();
  });

  const startServe = async (): Promise<ChildProcess> => {
    const c = spawn(process.execPath, [BORGKEEP, '--data-dir', sandbox.dataDir, 'serve', '--ssh-listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0'], { env: { ...process.env, BORGKEEP_DATA_DIR: undefined }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr!.on('data', () => undefined);
    await until(async () => /HTTP API listening on/.test(out), 30_000);
    return c;
  };
  const job = (id: number) => withDir(sandbox.dataDir, async (s) => (await s.getPullJob(id))!);

  it('serve fails the jobs a stopped server left running, runs queued jobs, queues scheduled ones; stopped, the CLI runs them itself', async () => {
    sandbox = createSandbox();
    await sandbox.ok(['repo', 'create', 'photos']);
    await sandbox.ok(['host', 'add', 'h1', '--address', '127.0.0.1:1', '--user', 'backup', '--repo', 'photos', '--paths', '/etc']);
    // A job a server that died (kill -9) left running.
    await withDir(sandbox.dataDir, async (s) => {
      await s.queuePullJob('h1', { trigger: 'manual' });
      await s.claimNextPullJob({ kind: 'serve', pid: 999_999_999, host: hostname() });
      await s.setPullJobState(1, 'running', { archiveName: 'h1-x' });
    });
    child = await startServe();
    expect(await job(1)).toMatchObject({ state: 'failed', reason: 'the server stopped during the job' });

    const queued = await sandbox.ok(['pull', 'run', 'h1']);
    expect(queued).toBe(`queued job 2 of host 'h1'.\nborgkeep serve (pid ${child.pid}) runs it; follow it with 'borgkeep pull list --host h1'.\n`);
    await until(async () => (await job(2)).state !== 'queued', 15_000);
    await until(async () => ['done', 'failed'].includes((await job(2)).state), 15_000);
    const waited = await sandbox.run(['pull', 'run', 'h1', '--wait']);
    const third = await job(3);
    expect(waited.code).toBe(third.state === 'done' ? 0 : 1);
    expect(waited.stdout).toMatch(/^queued job 3 of host 'h1'\.\n/);

    // A schedule every second: serve queues a job of its own (trigger 'schedule').
    await sandbox.ok(['host', 'add', 'h2', '--address', '127.0.0.1:1', '--user', 'backup', '--repo', 'photos', '--paths', '/etc', '--schedule', '* * * * * *']);
    await until(async () => (await withDir(sandbox.dataDir, (s) => s.listPullJobs({ hostName: 'h2' }))).some((j) => j.trigger === 'schedule'), 15_000);

    const code = await new Promise<number | null>((resolve) => {
      child!.on('exit', (c) => resolve(c));
      child!.kill('SIGTERM');
    });
    child = null;
    expect(code).toBe(0);
    // No server: this process runs the job (and says nothing about a server).
    const alone = await sandbox.run(['pull', 'run', 'h1']);
    expect(alone.stdout).not.toContain('borgkeep serve');
    expect(['done', 'failed']).toContain((await withDir(sandbox.dataDir, (s) => s.listPullJobs({ hostName: 'h1', limit: 1 })))[0]!.state);
  }, 90_000);
});

async function withDir<T>(dataDir: string, work: (store: Store) => Promise<T>): Promise<T> {
  const store = await openStore({ dataDir });
  try {
    return await work(store);
  } finally {
    await store.close();
  }
}

async function until(check: () => Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 100));
  }
}
