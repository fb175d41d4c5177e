// Pull backups over the API, against the built `borgkeep serve` on a real SQLite store (hosts
// added with the built CLI's `host add`; a running job written through the store, as its runner
// in another process writes it): hosts
// with their repository, pinned host key, schedule and last job; the pull key line; "run now"
// queueing a manual job (202); jobs newest first with a running job's progress as its runner
// writes it from another process; the job's log as JSON lines (followed with ?after=) and as a
// plain-text download; adding and removing a host with the CLI's sentences; each refusal one
// sentence in the API's error shape.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../../src/store/database.js';
import { createBorgkeepEnv, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { firstAdminPassword } from '../helpers/first-admin.js';
import { arrangeRunningJob, openSideStore } from '../helpers/pull-fixture.js';

const FINGERPRINT = 'SHA256:' + 'A'.repeat(43);
const OFFERED = 'SHA256:' + 'B'.repeat(43);

interface Client {
  call(method: string, path: string, body?: unknown): Promise<{ status: number; body: any; text: string; headers: Headers }>;
}

async function login(url: string, name: string, password: string): Promise<Client> {
  const r = await fetch(`${url}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, password }) });
  expect(r.status).toBe(200);
  const cookie = /^bk_session=[^;]*/.exec(r.headers.get('set-cookie')!)![0];
  const { csrfToken } = (await r.json()) as { csrfToken: string };
  return {
    async call(method, path, body) {
      const headers: Record<string, string> = { cookie, 'x-csrf-token': csrfToken };
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch(`${url}/api/v1${path}`, { method, headers, ...(body !== undefined && { body: JSON.stringify(body) }) });
      const text = await res.text();
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      return { status: res.status, body: parsed, text, headers: res.headers };
    },
  };
}

describe('pull hosts and jobs over the API', () => {
  let env: BorgkeepEnv;
  let store: Store;
  let admin: Client;
  let viewer: Client;
  let operator: Client;

  beforeAll(async () => {
    env = createBorgkeepEnv('bk-pull-api', 'embedded');
    await env.cliOk(['repo', 'create', 'main']);
    const log = (await env.frontEnd()).log();
    const url = /HTTP API listening on (\S+)\/api\/v1/.exec(log)![1]!;
    store = await openSideStore(env.dataDir);
    await env.cliOk(['host', 'add', 'web1', '--address', '192.0.2.7', '--user', 'backup', '--repo', 'main', '--paths', '/etc,/home', '--schedule', '0 2 * * *']);
    await env.cliOk(['host', 'add', 'db1', '--address', 'db.example.org:2222', '--user', 'backup', '--repo', 'main', '--paths', '/etc,/home', '--accept-host-key', FINGERPRINT]);
    const passwordFile = join(env.root, 'pw');
    writeFileSync(passwordFile, 'a password for the test users');
    await env.cliOk(['user', 'add', 'vic', '--role', 'viewer', '--password-file', passwordFile]);
    await env.cliOk(['user', 'add', 'olga', '--role', 'operator', '--password-file', passwordFile]);
    admin = await login(url, 'admin', firstAdminPassword(env.dataDir));
    viewer = await login(url, 'vic', 'a password for the test users');
    operator = await login(url, 'olga', 'a password for the test users');
  }, 60_000);

  afterAll(async () => {
    await store?.close();
    await env?.cleanup();
  });

  it('lists the hosts with their repository, host key (and the one offered), schedule and next run, and the pull key line for every role', async () => {
    // A first contact the runner noted: the key the host offered, not accepted.
    await store.notePullHostKeyOffered((await store.getPullHost('web1')).id, OFFERED);
    const r = await viewer.call('GET', '/pull-hosts');
    expect(r.status).toBe(200);
    const [db1, web1] = r.body.hosts;
    expect(db1).toMatchObject({ name: 'db1', address: 'db.example.org', port: 2222, repository: 'main', hostKeyFingerprint: FINGERPRINT, offeredHostKey: null, schedule: null, nextRunAt: null, lastJob: null });
    expect(web1).toMatchObject({ name: 'web1', address: '192.0.2.7', port: 22, user: 'backup', paths: ['/etc', '/home'], repository: 'main', hostKeyFingerprint: null, offeredHostKey: { fingerprint: OFFERED }, schedule: '0 2 * * *' });
    const next = new Date(web1.nextRunAt);
    expect(next.getTime()).toBeGreaterThan(Date.now());
    expect(next.getTime() - Date.now()).toBeLessThanOrEqual(24 * 3600_000);
    expect((await viewer.call('GET', '/pull-hosts/web1')).body.host.name).toBe('web1');

    const key = await viewer.call('GET', '/pull-key');
    expect(key.status).toBe(200);
    expect(key.body.line).toMatch(/^restrict,port-forwarding,permitlisten="127\.0\.0\.1:\*" ssh-ed25519 AAAA\S+ borgkeep-pull$/);
    expect(key.body.fingerprint).toMatch(/^SHA256:/);
    expect(JSON.stringify(key.body)).not.toContain('PRIVATE');
    // The same key the second time (made once, on first use).
    expect((await admin.call('GET', '/pull-key')).body.line).toBe(key.body.line);
  });

  it("queues a manual job for operators (202), returns the queued one again, refuses viewers; the server's pull service takes it up", async () => {
    // A job of db1 under way: the new one waits in the queue until it ends.
    const before = await arrangeRunningJob(store, 'db1', 'db1-earlier');
    const refused = await viewer.call('POST', '/pull-hosts/db1/jobs');
    expect(refused.status).toBe(403);
    expect(refused.body).toEqual({ code: 'BK_ERR_DENIED', message: 'this needs the operator role; you are viewer' });
    const r = await operator.call('POST', '/pull-hosts/db1/jobs');
    expect(r.status).toBe(202);
    expect(r.body).toMatchObject({ existing: false, job: { host: 'db1', repository: 'main', trigger: 'manual', state: 'queued', archive: null, bytes: 0, files: 0 } });
    const again = await admin.call('POST', '/pull-hosts/db1/jobs');
    expect(again.status).toBe(202);
    expect(again.body).toMatchObject({ existing: true, job: { id: r.body.job.id } });
    const missing = await operator.call('POST', '/pull-hosts/nope/jobs');
    expect(missing.status).toBe(404);
    expect(missing.body).toEqual({ code: 'BK_ERR_NOT_FOUND', message: "there is no host named 'nope' ('borgkeep host list' shows them)" });
    // The host's last job, in the listing.
    expect((await viewer.call('GET', '/pull-hosts/db1')).body.host.lastJob).toMatchObject({ id: r.body.job.id, state: 'queued' });
    // The running server's pull service claims it once db1's job ended (and, with no way to reach db.example.org, fails it).
    await before.end('done');
    await expect.poll(async () => (await viewer.call('GET', `/pull-jobs/${r.body.job.id}`)).body.job.state, { timeout: 15_000, interval: 200 }).not.toBe('queued');
    expect((await viewer.call('GET', `/pull-jobs/${r.body.job.id}`)).body.job.startedAt).not.toBeNull();
  });

  it("shows a running job's progress as its runner writes it, newest first, and its log as lines and as a download", async () => {
    const job = await arrangeRunningJob(store, 'web1', 'web1-2026-12-06T14:00:00');
    await job.progress(5_000_000, 42, '/home/ann/notes.txt');
    await job.log('Creating archive at "ssh://borgkeep@127.0.0.1:40000/./job::web1-2026-12-06T14:00:00"');
    const one = await viewer.call('GET', `/pull-jobs/${job.id}`);
    expect(one.status).toBe(200);
    expect(one.body.job).toMatchObject({ id: job.id, host: 'web1', state: 'running', archive: 'web1-2026-12-06T14:00:00', bytes: 5_000_000, files: 42, currentPath: '/home/ann/notes.txt', endedAt: null });
    expect(one.body.job.startedAt).not.toBeNull();

    const list = await viewer.call('GET', '/pull-jobs');
    expect(list.body.jobs.map((j: { id: number }) => j.id)).toEqual([...list.body.jobs.map((j: { id: number }) => j.id)].sort((a, b) => b - a));
    expect(list.body.jobs[0].id).toBe(job.id);
    const ofWeb1 = await viewer.call('GET', '/pull-jobs?host=web1&limit=5');
    expect(ofWeb1.body.jobs.map((j: { host: string }) => j.host)).toEqual(['web1']);
    expect((await viewer.call('GET', '/pull-jobs?host=nope')).body).toEqual({ code: 'BK_ERR_NOT_FOUND', message: "there is no host named 'nope' ('borgkeep host list' shows them)" });

    const log = await viewer.call('GET', `/pull-jobs/${job.id}/log`);
    expect(log.status).toBe(200);
    expect(log.body.job).toEqual({ id: job.id, state: 'running' });
    expect(log.body.dropped).toBe(0);
    expect(log.body.lines.map((l: { seq: number }) => l.seq)).toEqual([1, 2]);
    expect(log.body.lines[1].line).toContain('Creating archive');
    await job.end('done');
    const after = await viewer.call('GET', `/pull-jobs/${job.id}/log?after=2`);
    expect(after.body.job.state).toBe('done');
    expect(after.body.lines).toEqual([{ seq: 3, at: expect.any(String), line: `job ${job.id} done: archive web1-2026-12-06T14:00:00` }]);

    const text = await viewer.call('GET', `/pull-jobs/${job.id}/log.txt`);
    expect(text.status).toBe(200);
    expect(text.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(text.headers.get('content-disposition')).toBe(`attachment; filename="borgkeep-pull-job-${job.id}.log"`);
    const lines = text.text.trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[2]).toMatch(new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z  job ${job.id} done: archive web1-2026-12-06T14:00:00$`));
    const ended = (await viewer.call('GET', `/pull-jobs/${job.id}`)).body.job;
    expect(ended).toMatchObject({ state: 'done', currentPath: null });
    expect(ended.endedAt).not.toBeNull();

    expect((await viewer.call('GET', '/pull-jobs/99999')).body).toEqual({ code: 'BK_ERR_NOT_FOUND', message: "there is no pull job 99999 ('borgkeep pull list' shows them)" });
    expect((await viewer.call('GET', '/pull-jobs/99999/log.txt')).status).toBe(404);
  });

  it("adds and removes a host (admins), with the CLI's sentences for bad settings and nothing written", async () => {
    const body = { name: 'files1', address: 'files.example.org', user: 'backup', repository: 'main', paths: ['/srv'], schedule: '30 3 * * *', acceptHostKey: FINGERPRINT };
    expect((await operator.call('POST', '/pull-hosts', body)).status).toBe(403);
    for (const [bad, sentence] of [
      [{ address: '-oProxyCommand=x' }, /^the address '-oProxyCommand=x' is not a host name or IP address/],
      [{ paths: ['srv'] }, /^the path 'srv' is not absolute/],
      [{ schedule: 'every day' }, /^the schedule 'every day' is not a cron pattern/],
      [{ compression: 'zstd,99' }, /^the compression 'zstd,99' is not one borg accepts/],
      [{ acceptHostKey: 'md5:aa' }, /^the host key fingerprint 'md5:aa' is not an OpenSSH SHA-256 fingerprint/],
      [{ repository: 'nope' }, /^there is no repository named 'nope'$/],
      [{ keepFilesCache: true, sendChunkIndex: false }, /^a host that gets no chunk index cannot keep a files cache/],
    ] as const) {
      const r = await admin.call('POST', '/pull-hosts', { ...body, ...bad });
      expect(r.status, JSON.stringify(r.body)).toBeGreaterThanOrEqual(400);
      expect(r.status).toBeLessThan(500);
      expect(Object.keys(r.body)).toEqual(['code', 'message']);
      expect(r.body.message).toMatch(sentence);
    }
    expect((await admin.call('GET', '/pull-hosts/files1')).status).toBe(404);
    const created = await admin.call('POST', '/pull-hosts', body);
    expect(created.status).toBe(201);
    expect(created.body.host).toMatchObject({ name: 'files1', repository: 'main', paths: ['/srv'], hostKeyFingerprint: FINGERPRINT, schedule: '30 3 * * *', sendChunkIndex: true, keepFilesCache: false });
    // The two deduplication settings, as host add's --keep-files-cache and --no-chunk-index.
    const kept = await admin.call('POST', '/pull-hosts', { ...body, name: 'files2', keepFilesCache: true });
    expect(kept.body.host).toMatchObject({ sendChunkIndex: true, keepFilesCache: true });
    const told = await admin.call('POST', '/pull-hosts', { ...body, name: 'files3', sendChunkIndex: false });
    expect(told.body.host).toMatchObject({ sendChunkIndex: false, keepFilesCache: false });
    for (const name of ['files2', 'files3']) expect((await admin.call('DELETE', `/pull-hosts/${name}`)).status).toBe(200);
    expect((await admin.call('POST', '/pull-hosts', body)).body).toEqual({ code: 'BK_ERR_CONFLICT', message: "a host named 'files1' already exists" });
    expect((await operator.call('DELETE', '/pull-hosts/files1')).status).toBe(403);
    const removed = await admin.call('DELETE', '/pull-hosts/files1');
    expect(removed.body).toEqual({ host: 'files1', cancelledJobs: 0 });
    expect((await viewer.call('GET', '/pull-hosts')).body.hosts.map((h: { name: string }) => h.name)).toEqual(['db1', 'web1']);
  });

  it("accepts a host's key (admins), in the CLI's sentence for a bad fingerprint", async () => {
    expect((await operator.call('POST', '/pull-hosts/web1/accept-key', { fingerprint: OFFERED })).status).toBe(403);
    const bad = await admin.call('POST', '/pull-hosts/web1/accept-key', { fingerprint: 'SHA256:short' });
    expect(bad.status).toBe(400);
    expect(bad.body.message).toMatch(/^the host key fingerprint 'SHA256:short' is not an OpenSSH SHA-256 fingerprint/);
    expect((await viewer.call('GET', '/pull-hosts/web1')).body.host.hostKeyFingerprint).toBeNull();
    const ok = await admin.call('POST', '/pull-hosts/web1/accept-key', { fingerprint: OFFERED });
    expect(ok.status).toBe(200);
    expect(ok.body.host).toMatchObject({ name: 'web1', hostKeyFingerprint: OFFERED, offeredHostKey: null });
    expect((await admin.call('POST', '/pull-hosts/nope/accept-key', { fingerprint: OFFERED })).status).toBe(404);
  });

  it('lists the pull endpoints in the OpenAPI document', async () => {
    const doc = (await viewer.call('GET', '/openapi.json')).body;
    for (const path of ['/pull-hosts', '/pull-hosts/{name}', '/pull-hosts/{name}/jobs', '/pull-hosts/{name}/accept-key', '/pull-key', '/pull-jobs', '/pull-jobs/{id}', '/pull-jobs/{id}/log', '/pull-jobs/{id}/log.txt']) {
      expect(Object.keys(doc.paths), path).toContain(`/api/v1${path}`);
    }
  });
});
