// The per-job SSH endpoint of a pull backup (issue 16): the client's borg connects to the
// remote-forwarded port on its own loopback, and each such connection arrives here as a stream
// (a forwarded-tcpip channel of the job's SSH connection). On it runs an ssh2 server connection
// with borgkeep's ed25519 host key that accepts exactly one thing: public-key authentication of
// the job's one-time key as user `borgkeep`, then one exec of a `borg serve` command line, whose
// channel goes to the job's PullJobSession (the keyless proxy).
//
// Must never accept another key, a password, a shell, a pty, a subsystem, an environment
// variable, any forwarding or a second borg session, and never pass a word of the client's
// command line on (the proxy decides what is served).

import { timingSafeEqual } from 'node:crypto';
import type { Duplex } from 'node:stream';

import type { Connection, ParsedKey, Server as SshServer, ServerChannel } from 'ssh2';

import type { HostKey } from '../gateway/host-keys.js';
import { parseOriginalCommand } from '../gateway/original-command.js';
import { JOB_SSH_USER } from './client-command.js';
import type { PullJobSession, PullSessionOutcome } from './types.js';

export interface JobEndpointDeps {
  readonly ssh2: { Server: typeof SshServer; parseKey: (data: string | Buffer) => ParsedKey | ParsedKey[] | Error };
  /** borgkeep's ed25519 host key (the client pins it in the job's known_hosts). */
  readonly hostKey: HostKey;
  /** The job's one-time public key, "ssh-ed25519 AAAA...". */
  readonly jobPublicKey: string;
  readonly session: PullJobSession;
  /** One line for the job's log (never a secret). */
  readonly log: (line: string) => void;
  /** A connection must have authenticated within this time. */
  readonly loginGraceMs?: number;
}

export interface JobEndpoint {
  /** Runs an SSH server connection on one forwarded stream. */
  accept(stream: Duplex): void;
  /** The outcome of the job's borg session once it ended; null while none ran or it still runs. */
  outcome(): Promise<PullSessionOutcome | null>;
  /** Whether a borg session was started. */
  started(): boolean;
  /** Ends every connection and the running session (the job is over or stopped). */
  close(): void;
}

const REFUSED_COMMAND = "borgkeep: this pull job only runs 'borg serve' once; the command was refused.\n";
const REFUSED_SHELL = "borgkeep: this pull job has no shell; it only runs 'borg serve'.\n";

function sameBytes(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

function publicBlob(line: string): Buffer {
  const [type, blob] = line.trim().split(/\s+/);
  if (type !== 'ssh-ed25519' || !blob) throw new Error('the job key is not an ed25519 public key');
  return Buffer.from(blob, 'base64');
}

export function createJobEndpoint(deps: JobEndpointDeps): JobEndpoint {
  const jobBlob = publicBlob(deps.jobPublicKey);
  const parsed = deps.ssh2.parseKey(deps.jobPublicKey);
  const jobKey = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!jobKey || jobKey instanceof Error) throw new Error('the job key could not be read');
  const grace = deps.loginGraceMs ?? 30_000;
  const stop = new AbortController();
  const connections = new Set<Connection>();
  const streams = new Set<Duplex>();
  let served: Promise<PullSessionOutcome> | null = null;
  let closed = false;

  const refuse = (channel: ServerChannel, text: string): void => {
    channel.stderr.write(text);
    channel.exit(1);
    channel.end();
  };

  const server = new deps.ssh2.Server({ hostKeys: [deps.hostKey.privateKey], ident: 'borgkeep' }, (client: Connection) => {
    connections.add(client);
    let authenticated = false;
    const timer = setTimeout(() => {
      if (!authenticated) {
        deps.log('a connection to the job endpoint did not authenticate in time; closed');
        client.end();
      }
    }, grace);
    timer.unref();
    client.on('error', (error: Error) => deps.log(`job endpoint connection error: ${error.message}`));
    client.on('close', () => {
      clearTimeout(timer);
      connections.delete(client);
    });
    client.on('authentication', (ctx) => {
      if (ctx.method !== 'publickey') return ctx.reject(['publickey']);
      if (ctx.username !== JOB_SSH_USER || ctx.key.algo !== 'ssh-ed25519' || !sameBytes(ctx.key.data, jobBlob)) {
        deps.log(`the job endpoint refused a key other than the job's (user ${JSON.stringify(ctx.username.slice(0, 64))})`);
        return ctx.reject(['publickey']);
      }
      if (!ctx.signature) return ctx.accept(); // the client asks whether this key would do
      if (jobKey.verify(ctx.blob!, ctx.signature, ctx.hashAlgo) !== true) {
        deps.log('the job endpoint refused a bad signature for the job key');
        return ctx.reject(['publickey']);
      }
      authenticated = true;
      clearTimeout(timer);
      ctx.accept();
    });
    // Nothing but one session with one exec: no forwarding either way.
    client.on('tcpip', (_accept, reject) => reject());
    client.on('openssh.streamlocal', (_accept, reject) => reject());
    client.on('request', (_accept, reject) => reject?.());
    client.on('ready', () => {
      client.on('session', (acceptSession) => {
        const session = acceptSession();
        session.on('pty', (_a, reject) => reject?.());
        session.on('x11', (_a, reject) => reject?.());
        session.on('env', (_a, reject) => reject?.());
        session.on('auth-agent', (_a, reject) => reject?.());
        session.on('sftp', (_a, reject) => reject?.());
        session.on('subsystem', (_a, reject) => reject?.());
        session.on('shell', (accept) => refuse(accept(), REFUSED_SHELL));
        session.on('exec', (accept, _reject, info: { command: string }) => {
          const channel = accept();
          const command = parseOriginalCommand(info.command);
          if (closed || served || info.command.trim() === '' || !command.isBorgServe) {
            deps.log(served ? 'a second borg session of the job was refused' : 'a command other than borg serve was refused on the job endpoint');
            return refuse(channel, REFUSED_COMMAND);
          }
          deps.log('the client\'s borg connected through the forwarded port');
          served = deps.session.serve({ input: channel, output: channel, errOutput: channel.stderr, stop: stop.signal });
          served.then(
            (outcome) => {
              if (!channel.destroyed) {
                channel.exit(outcome.refusal ? 1 : 0);
                channel.end();
              }
            },
            (error: unknown) => {
              deps.log(`the job's borg session failed on the server: ${(error as Error).message}`);
              if (!channel.destroyed) {
                channel.stderr.write('borgkeep: the session failed on the server.\n');
                channel.exit(1);
                channel.end();
              }
            },
          );
        });
      });
    });
  });

  return {
    accept(stream) {
      if (closed) {
        stream.destroy();
        return;
      }
      streams.add(stream);
      stream.once('close', () => streams.delete(stream));
      // ssh2's server takes any duplex stream as its connection (it reads, writes, ends it).
      server.injectSocket(stream as unknown as import('node:net').Socket);
    },
    async outcome() {
      if (!served) return null;
      // A session that threw was logged where it failed; it committed nothing the job can count.
      return served.catch(() => ({ committed: false, refusal: null, sessionId: null }));
    },
    started: () => served !== null,
    close() {
      closed = true;
      stop.abort();
      for (const c of connections) c.end();
      for (const s of streams) s.destroy();
    },
  };
}
