// The per-job endpoint, reached over loopback TCP standing in for the forwarded port. Over SSH
// (an ssh2 client): only the job's key as `borgkeep`, only one `borg serve`, nothing else. Direct
// (the job's own connector, run by the real python3, and hand-made connections): only the job's
// token, once, then the borg stream.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import * as ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { generateEd25519KeyPair, type HostKey } from '../gateway/host-keys.js';
import { parseSshPublicKey } from '../store/ssh-public-key.js';
import { CONNECTOR_SCRIPT, DIRECT_HELLO, JOB_FILES } from './client-command.js';
import { createJobEndpoint, type JobEndpoint } from './job-endpoint.js';
import { fingerprintOfBlob } from './pull-identity.js';
import type { PullJobSession, PullSessionOutcome } from './types.js';

const hostPair = generateEd25519KeyPair();
const hostParsed = parseSshPublicKey(hostPair.public);
const hostKey: HostKey = { type: 'ssh-ed25519', privateKey: hostPair.private, publicLine: `${hostParsed.type} ${hostParsed.blob}`, fingerprint: hostParsed.fingerprint };
const jobKey = generateEd25519KeyPair();
const otherKey = generateEd25519KeyPair();

let served = 0;
let serveStopped = false;
/** Echoes what the client sends, upper-cased, then reports a committed archive. */
const session: PullJobSession = {
  passphrase: 'unused',
  serve(io): Promise<PullSessionOutcome> {
    served++;
    return new Promise((resolve) => {
      io.stop?.addEventListener('abort', () => {
        serveStopped = true;
        resolve({ committed: false, refusal: null, sessionId: null });
      });
      io.input.on('data', (d: Buffer) => {
        io.output.write(d.toString().toUpperCase());
        if (d.toString().includes('bye')) resolve({ committed: true, refusal: null, sessionId: 7 });
      });
    });
  },
  dispose() {},
};

const lines: string[] = [];
let endpoint: JobEndpoint;
let tcp: Server;
let port: number;

beforeAll(async () => {
  endpoint = createJobEndpoint({
    ssh2: { Server: ssh2.Server, parseKey: ssh2.utils.parseKey },
    hostKey,
    access: { kind: 'ssh', jobPublicKey: jobKey.public },
    session,
    log: (l) => lines.push(l),
  });
  tcp = createServer((socket) => endpoint.accept(socket));
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
  port = (tcp.address() as { port: number }).port;
});

afterAll(() => {
  endpoint.close();
  tcp.close();
});

function connect(opts: { key?: string; user?: string; port?: number } = {}): Promise<ssh2.Client> {
  return new Promise((resolve, reject) => {
    const c = new ssh2.Client();
    c.once('ready', () => resolve(c));
    c.once('error', reject);
    c.connect({
      host: '127.0.0.1',
      port: opts.port ?? port,
      username: opts.user ?? 'borgkeep',
      privateKey: opts.key ?? jobKey.private,
      hostVerifier: (key: Buffer) => fingerprintOfBlob(key) === hostKey.fingerprint,
    });
  });
}

function execOn(c: ssh2.Client, command: string, input: string, opts: ssh2.ExecOptions = {}): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    c.exec(command, opts, (error, ch) => {
      if (error) return reject(error);
      let out = '';
      let err = '';
      let code: number | null = null;
      ch.on('data', (d: Buffer) => (out += d.toString()));
      ch.stderr.on('data', (d: Buffer) => (err += d.toString()));
      ch.on('exit', (c2: number | null) => (code = c2));
      ch.on('close', () => resolve({ code, out, err }));
      ch.end(input);
    });
  });
}

describe('the job endpoint', () => {
  it('refuses any key but the job key, and any user but borgkeep', async () => {
    await expect(connect({ key: otherKey.private })).rejects.toThrow(/authentication methods failed/);
    await expect(connect({ user: 'root' })).rejects.toThrow(/authentication methods failed/);
    expect(served).toBe(0);
  });

  it('refuses a shell, a pty, other commands and every kind of forwarding', { timeout: 10_000 }, async () => {
    const c = await connect();
    try {
      const shell = await new Promise<string>((resolve, reject) =>
        c.shell(false, (error, ch) => {
          if (error) return reject(error);
          let err = '';
          ch.stderr.on('data', (d: Buffer) => (err += d.toString()));
          ch.on('close', () => resolve(err));
          ch.resume();
          ch.end();
        }),
      );
      expect(shell).toMatch(/no shell/);
      await expect(execOn(c, 'borg serve', '', { pty: true })).rejects.toThrow();
      const other = await execOn(c, 'cat /etc/passwd', '');
      expect(other).toMatchObject({ code: 1, out: '' });
      expect(other.err).toMatch(/only runs 'borg serve'/);
      await expect(new Promise((resolve, reject) => c.forwardIn('127.0.0.1', 0, (e, p) => (e ? reject(e) : resolve(p))))).rejects.toThrow();
      await expect(new Promise((resolve, reject) => c.forwardOut('127.0.0.1', 1, '127.0.0.1', 22, (e, ch) => (e ? reject(e) : resolve(ch))))).rejects.toThrow();
      expect(served).toBe(0);
    } finally {
      c.end();
    }
  });

  it('hands one borg serve to the job session, and refuses a second', async () => {
    const c = await connect();
    try {
      const first = await execOn(c, 'borg serve --umask=077 --info', 'hello bye');
      expect(first).toEqual({ code: 0, out: 'HELLO BYE', err: '' });
      expect(await endpoint.outcome()).toEqual({ committed: true, refusal: null, sessionId: 7 });
      const second = await execOn(c, 'borg serve', 'again');
      expect(second.code).toBe(1);
      expect(second.err).toMatch(/only runs 'borg serve' once/);
      expect(served).toBe(1);
    } finally {
      c.end();
    }
    // Another connection gets no second session either.
    const d = await connect();
    try {
      expect((await execOn(d, 'borg serve', 'x')).code).toBe(1);
      expect(served).toBe(1);
    } finally {
      d.end();
    }
    expect(lines.join('\n')).toMatch(/a second borg session of the job was refused/);
    expect(serveStopped).toBe(false);
  });
});

describe('the job endpoint of a direct hop', () => {
  const token = randomBytes(32);
  const hello = `${DIRECT_HELLO}${token.toString('hex')}\n`;
  const dir = mkdtempSync(join(tmpdir(), 'bk-job-endpoint-'));
  let directServed = 0;
  const directLines: string[] = [];
  let direct: JobEndpoint;
  let directTcp: Server;
  let directPort: number;
  const echo: PullJobSession = {
    passphrase: 'unused',
    serve(io): Promise<PullSessionOutcome> {
      directServed++;
      return new Promise((resolve) => {
        let seen = '';
        io.input.on('data', (d: Buffer) => {
          io.output.write(d.toString().toUpperCase());
          seen += d.toString();
          if (seen.includes('bye')) resolve({ committed: true, refusal: null, sessionId: 9 });
        });
        // Handed over paused (the bytes after the token line put back): readers resume, as readFrames does.
        io.input.resume();
      });
    },
    dispose() {},
  };

  beforeAll(async () => {
    direct = createJobEndpoint({ ssh2: { Server: ssh2.Server, parseKey: ssh2.utils.parseKey }, hostKey, access: { kind: 'direct', token }, session: echo, log: (l) => directLines.push(l), loginGraceMs: 400 });
    directTcp = createServer((socket) => direct.accept(socket));
    await new Promise<void>((r) => directTcp.listen(0, '127.0.0.1', r));
    directPort = (directTcp.address() as { port: number }).port;
    writeFileSync(join(dir, JOB_FILES.connector), CONNECTOR_SCRIPT);
  });
  afterAll(() => {
    direct.close();
    directTcp.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Sends the given pieces (a pause between them), then reads until the endpoint closes. */
  function talk(pieces: Array<string | Buffer>): Promise<string> {
    return new Promise((resolve, reject) => {
      const sock = tcpConnect(directPort, '127.0.0.1');
      let out = '';
      sock.on('data', (d: Buffer) => (out += d.toString()));
      sock.on('error', () => undefined);
      sock.on('close', () => resolve(out));
      sock.on('connect', async () => {
        for (const p of pieces) {
          if (sock.destroyed) break;
          sock.write(p);
          await new Promise((r) => setTimeout(r, 20));
        }
      });
      setTimeout(() => reject(new Error('the endpoint did not close the connection')), 5000).unref();
    });
  }

  it('closes a connection without the job token, with a wrong one, with a line too long, and one that says nothing', async () => {
    const wrong = `${DIRECT_HELLO}${randomBytes(32).toString('hex')}\nhello bye`;
    expect(await talk([wrong])).toBe('');
    expect(await talk([`${hello.slice(0, -2)}X\nbye`])).toBe('');
    expect(await talk([`${hello.slice(0, -1)}0\nbye`])).toBe('');
    expect(await talk(['x'.repeat(200)])).toBe('');
    expect(await talk([])).toBe(''); // the login grace (400 ms here) ends it
    expect(directServed).toBe(0);
    expect(directLines.join('\n')).toMatch(/refused a connection without the job token/);
    expect(directLines.join('\n')).toMatch(/sent no job token/);
    expect(directLines.join('\n')).toMatch(/did not present the job token in time/);
  });

  it('logs no time-out for a connection that went away before its token', async () => {
    const timedOut = (): number => directLines.filter((l) => /in time/.test(l)).length;
    const before = timedOut();
    const sock = tcpConnect(directPort, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    sock.end(hello.slice(0, 10));
    await new Promise((r) => sock.once('close', r));
    await new Promise((r) => setTimeout(r, 700)); // past the login grace
    expect(timedOut()).toBe(before);
    expect(directServed).toBe(0);
  });

  it('takes no SSH client: the token is the only way in', async () => {
    await expect(connect({ port: directPort })).rejects.toThrow();
    expect(directServed).toBe(0);
  });

  it("runs the job's connector with borg's ssh arguments: one session, the bytes both ways, then no second", async () => {
    writeFileSync(join(dir, JOB_FILES.token), `${token.toString('hex')}\n`, { mode: 0o600 });
    const run = (input: string, port = directPort): Promise<{ code: number | null; out: string; err: string }> =>
      new Promise((resolve) => {
        // As borg runs BORG_RSH: its words, then -p PORT, user@host and the remote command.
        const child = spawn('python3', ['-I', join(dir, JOB_FILES.connector), '-p', String(port), 'borgkeep@127.0.0.1', 'borg', 'serve', '--umask=077'], { stdio: ['pipe', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.stderr.on('data', (d: Buffer) => (err += d.toString()));
        child.on('close', (code) => resolve({ code, out, err }));
        child.stdin.end(input);
      });
    // Big enough to take many reads each way.
    const big = `${'a'.repeat(3 * 1024 * 1024)} bye`;
    const first = await run(big);
    expect(first.err).toBe('');
    expect(first.out.length).toBe(big.length);
    expect(first.out).toBe(big.toUpperCase());
    expect(await direct.outcome()).toEqual({ committed: true, refusal: null, sessionId: 9 });
    expect(directServed).toBe(1);
    // The token again: the job had its session.
    expect((await run('again bye')).out).toBe('');
    expect(await talk([hello, 'hello bye'])).toBe('');
    expect(directServed).toBe(1);
    expect(directLines.join('\n')).toMatch(/a second borg session of the job was refused/);
    // Nothing listening: one sentence, no Python traceback, ssh's status.
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const unused = (closed.address() as { port: number }).port;
    await new Promise((r) => closed.close(r));
    const refused = await run('x', unused);
    expect(refused.code).toBe(255);
    expect(refused.err).toMatch(/^borgkeep: could not reach the pull job through the forwarded port: .+\n$/);
  });
});
