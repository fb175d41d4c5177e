// The per-job SSH endpoint, reached by an ssh2 client over loopback TCP standing in for the
// forwarded port: only the job's key as `borgkeep`, only one `borg serve`, nothing else.

import { createServer, type Server } from 'node:net';

import * as ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { generateEd25519KeyPair, type HostKey } from '../gateway/host-keys.js';
import { parseSshPublicKey } from '../store/ssh-public-key.js';
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
    jobPublicKey: jobKey.public,
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

function connect(opts: { key?: string; user?: string } = {}): Promise<ssh2.Client> {
  return new Promise((resolve, reject) => {
    const c = new ssh2.Client();
    c.once('ready', () => resolve(c));
    c.once('error', reject);
    c.connect({
      host: '127.0.0.1',
      port,
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
