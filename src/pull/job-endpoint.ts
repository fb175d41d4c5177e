// The per-job endpoint of a pull backup (issue 16): the client's borg connects to the
// remote-forwarded port on its own loopback, and each such connection arrives here as a stream
// (a forwarded-tcpip channel of the job's SSH connection, already encrypted and authenticated by
// that connection). A job lets in one of two ways, chosen by the runner:
//   direct  the job's connector (client-command.ts, CONNECTOR_SCRIPT) says one line
//           `BORGKEEP-PULL-1 <the job's one-time token>`, then the stream is borg's RPC: no
//           second encryption inside the first (the job's own SSH connection carries it);
//   ssh     for a client without python3: an ssh2 server connection with borgkeep's ed25519 host
//           key that accepts exactly one thing, public-key authentication of the job's one-time
//           key as user `borgkeep`, then one exec of a `borg serve` command line.
// Either way the borg stream goes to the job's PullJobSession (the keyless proxy), once.
//
// Must never accept another token or key, a password, a shell, a pty, a subsystem, an environment
// variable, any forwarding or a second borg session, and never pass a word of the client's
// command line on (the proxy decides what is served).

import { timingSafeEqual } from 'node:crypto';
import { Writable, type Duplex } from 'node:stream';

import type { Connection, ParsedKey, Server as SshServer, ServerChannel } from 'ssh2';

import type { HostKey } from '../gateway/host-keys.js';
import { parseOriginalCommand } from '../gateway/original-command.js';
import { DIRECT_HELLO, JOB_SSH_USER } from './client-command.js';
import type { PullJobSession, PullSessionOutcome } from './types.js';

export interface JobEndpointDeps {
  readonly ssh2: { Server: typeof SshServer; parseKey: (data: string | Buffer) => ParsedKey | ParsedKey[] | Error };
  /** borgkeep's ed25519 host key (the client pins it in the job's known_hosts). */
  readonly hostKey: HostKey;
  /**
   * How the job's borg gets in: its one-time token on a direct stream, or its one-time public
   * key ("ssh-ed25519 AAAA...") on an SSH connection. Only that way.
   */
  readonly access: { readonly kind: 'direct'; readonly token: Buffer } | { readonly kind: 'ssh'; readonly jobPublicKey: string };
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

/** A direct stream's first line is at most this long (the hello, a 32-byte token in hex, the newline). */
const DIRECT_LINE_MAX = DIRECT_HELLO.length + 64 + 1;

/** Where a direct session's messages for stderr go: nowhere (the proxy answers in the RPC stream). */
const discard = (): Writable => new Writable({ write: (_chunk, _enc, done) => done() });

function publicBlob(line: string): Buffer {
  const [type, blob] = line.trim().split(/\s+/);
  if (type !== 'ssh-ed25519' || !blob) throw new Error('the job key is not an ed25519 public key');
  return Buffer.from(blob, 'base64');
}

export function createJobEndpoint(deps: JobEndpointDeps): JobEndpoint {
  const access = deps.access;
  if (access.kind === 'direct' && access.token.length !== 32) throw new Error('the job token is not 32 bytes');
  const jobBlob = access.kind === 'ssh' ? publicBlob(access.jobPublicKey) : null;
  const parsed = access.kind === 'ssh' ? deps.ssh2.parseKey(access.jobPublicKey) : null;
  const jobKey = Array.isArray(parsed) ? parsed[0] : parsed;
  if (access.kind === 'ssh' && (!jobKey || jobKey instanceof Error)) throw new Error('the job key could not be read');
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
      if (ctx.username !== JOB_SSH_USER || ctx.key.algo !== 'ssh-ed25519' || !sameBytes(ctx.key.data, jobBlob!)) {
        deps.log(`the job endpoint refused a key other than the job's (user ${JSON.stringify(ctx.username.slice(0, 64))})`);
        return ctx.reject(['publickey']);
      }
      if (!ctx.signature) return ctx.accept(); // the client asks whether this key would do
      if ((jobKey as ParsedKey).verify(ctx.blob!, ctx.signature, ctx.hashAlgo) !== true) {
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

  /**
   * A direct stream: its first line must be the hello with the job's token, within the login
   * grace; then the rest of the stream is the borg session. Anything else (an SSH client, a wrong
   * or long line, a second session) is closed without a word: whoever sent it did not read the
   * job's 0700 directory.
   */
  const acceptDirect = (token: Buffer, stream: Duplex): void => {
    const expected = Buffer.from(`${DIRECT_HELLO}${token.toString('hex')}\n`);
    let got: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => {
      deps.log('a connection to the job endpoint did not present the job token in time; closed');
      stream.destroy();
    }, grace);
    timer.unref();
    stream.once('close', () => clearTimeout(timer));
    // A channel that fails before the session reads it (the connection dropped): closed, nothing to say.
    stream.on('error', () => undefined);
    const fail = (why: string): void => {
      clearTimeout(timer);
      stream.off('data', onData);
      deps.log(why);
      stream.destroy();
    };
    const onData = (chunk: Buffer): void => {
      got = got.length === 0 ? chunk : Buffer.concat([got, chunk]);
      const nl = got.indexOf(0x0a);
      if (nl < 0) {
        if (got.length >= DIRECT_LINE_MAX) fail('a connection to the job endpoint sent no job token; closed');
        return;
      }
      const line = got.subarray(0, nl + 1);
      if (!sameBytes(line, expected)) return fail('the job endpoint refused a connection without the job token');
      clearTimeout(timer);
      stream.off('data', onData);
      stream.pause();
      if (closed || served) return fail('a second borg session of the job was refused');
      const rest = got.subarray(nl + 1);
      if (rest.length > 0) stream.unshift(rest);
      deps.log("the client's borg connected through the forwarded port");
      served = deps.session.serve({ input: stream, output: stream, errOutput: discard(), stop: stop.signal });
      served.then(
        () => stream.end(),
        (error: unknown) => {
          deps.log(`the job's borg session failed on the server: ${(error as Error).message}`);
          stream.end();
        },
      );
    };
    stream.on('data', onData);
  };

  return {
    accept(stream) {
      if (closed) {
        stream.destroy();
        return;
      }
      streams.add(stream);
      stream.once('close', () => streams.delete(stream));
      if (access.kind === 'direct') return acceptDirect(access.token, stream);
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
