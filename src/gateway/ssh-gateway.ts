// The embedded SSH gateway of `borgkeep serve`: an SSH server (ssh2) that authenticates public
// keys against the store, accepts one thing only, an exec of `borg serve`, and hands each such
// channel to the same guard that sshd's forced command runs, with the key and the client's
// address. Everything else a client may ask for (passwords, shells, ptys, sftp, scp, other
// subsystems, port, agent and X11 forwarding, environment variables) is refused.
//
// Operating limits: failed logins per source address (throttled before the handshake), sessions
// at once (in all and per key), a login grace time and an idle time for connections that run
// nothing. `close()` stops accepting, lets running sessions finish for a grace period, then ends
// them through the guard, so borg serve rolls back whatever is not committed.

import { timingSafeEqual } from 'node:crypto';
import { createServer, type AddressInfo, type Socket } from 'node:net';

import type { Connection, ServerChannel, Server as SshServer, ServerConfig, ParsedKey } from 'ssh2';

import type { GuardOutcome, GuardSession } from '../guard/guard.js';
import type { SshKey } from '../store/types.js';
import type { AuthThrottle } from './auth-throttle.js';
import type { HostKey } from './host-keys.js';
import { parseOriginalCommand } from './original-command.js';
import type { ForwardedSession, Route } from './node-router.js';
import type { LogLevel } from '../guard/borg-child.js';
import { plural } from '../shared/plural.js';

export interface GatewayLimits {
  /** Sessions (running borg serve channels) at once over all keys. */
  readonly maxSessions: number;
  /** Sessions at once for one key. */
  readonly maxSessionsPerKey: number;
  /** A connection must have authenticated within this time. */
  readonly loginGraceMs: number;
  /** A connection that runs no session is closed after this time. */
  readonly idleMs: number;
}

export const DEFAULT_LIMITS: GatewayLimits = {
  maxSessions: 100,
  maxSessionsPerKey: 10,
  loginGraceMs: 30_000,
  idleMs: 60_000,
};

export interface GatewayLog {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
}

export interface SshGatewayDeps {
  readonly hostKeys: readonly HostKey[];
  /** The SSH user name clients log in as (`borg` unless configured otherwise). */
  readonly user: string;
  readonly findKeyByBlob: (type: string, blob: string) => Promise<SshKey | undefined>;
  /** Runs one guarded session (runGuardSession with this installation's deps). */
  readonly runSession: (session: GuardSession) => Promise<GuardOutcome>;
  readonly throttle: AuthThrottle;
  readonly limits?: Partial<GatewayLimits>;
  readonly log: GatewayLog;
  /** ssh2's Server and key parser, loaded by the caller (only `serve` needs ssh2). */
  readonly ssh2: { Server: typeof SshServer; parseKey: (data: string | Buffer) => ParsedKey | Error };
  /** Told of each connection and each refused login (metrics; failures of known keys raise alerts). */
  readonly events?: GatewayEvents;
  /** The ciphers offered, in order (serve-config.ts sshCiphers); none: ssh2's defaults. */
  readonly ciphers?: readonly string[];
  /**
   * What an exec request runs, for the key that logged in; null refuses it. Default: `borg serve`
   * (original-command.ts) for the key itself, from the connection's address. A storage node's
   * server reads a gateway's forward request instead (cli/node-command.ts).
   */
  readonly sessionFor?: (command: string, key: SshKey, address: string) => SessionSpec | null;
  /**
   * Runs an exec request that is not a session, for a key that logged in; false when it is none
   * it knows (a storage node's part in moving a repository, repository-move.ts).
   */
  readonly command?: (command: string, channel: ServerChannel) => boolean;
  /** Sends sessions of repositories on other storage nodes there (node-router.ts). */
  readonly router?: { route(channel: ServerChannel, session: ForwardedSession, gone: AbortSignal, stop: AbortSignal): Promise<Route> };
}

/** The session an exec request asks for. */
export interface SessionSpec {
  readonly keyRef: string;
  readonly keyId: number;
  readonly clientAddress: string | null;
  readonly logLevel: LogLevel | null;
  /** The client already has its negotiate reply (a session a gateway forwards). */
  readonly negotiated?: boolean;
  /** The key's sessions at once, when not this server's own limit. */
  readonly maxSessionsPerKey?: number;
}

/** An exec of `borg serve` by a borg client, for the key it logged in with. */
export function borgServeSession(command: string, key: SshKey, address: string): SessionSpec | null {
  const original = command.trim() === '' ? null : parseOriginalCommand(command);
  if (!original?.isBorgServe) return null;
  return { keyRef: String(key.id), keyId: key.id, clientAddress: address, logLevel: original.logLevel };
}

export interface GatewayEvents {
  connection(address: string): void;
  /** `key`: the registered key that was refused (revoked, bad signature), or null for an unknown one. */
  authFailure(address: string, key: SshKey | null, reason: string): void;
}

export interface SshGateway {
  listen(host: string, port: number): Promise<{ host: string; port: number }>;
  /** Sessions running now. */
  sessionCount(): number;
  /** Stops accepting; running sessions get `graceMs` to finish, then are ended (borg rolls back). */
  close(graceMs: number): Promise<void>;
}

interface RunningSession {
  readonly keyId: number;
  readonly stop: AbortController;
  readonly done: Promise<void>;
}

/** The key type named inside an SSH public key blob (string length, then the name). */
function blobType(blob: Buffer): string | null {
  if (blob.length < 4) return null;
  const n = blob.readUInt32BE(0);
  if (n === 0 || n > 64 || 4 + n > blob.length) return null;
  return blob.subarray(4, 4 + n).toString('latin1');
}


function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

const REFUSED_COMMAND = "borgkeep: this server only runs 'borg serve' for borg clients; the command was refused.\n";
const REFUSED_SHELL = "borgkeep: this server has no shell; it only runs 'borg serve' for borg clients.\n";
const REFUSED_SUBSYSTEM = "borgkeep: subsystems (sftp and others) are not available; this server only runs 'borg serve'.\n";

export function createSshGateway(deps: SshGatewayDeps): SshGateway {
  const limits: GatewayLimits = { ...DEFAULT_LIMITS, ...deps.limits };
  const log = deps.log;
  const sessions = new Set<RunningSession>();
  const refused = new Set<RunningSession>();
  // Ledger writes of ended sessions that the database refused, still being retried by the guard.
  const ledgerRetries = new Set<Promise<boolean>>();
  const connections = new Set<Connection>();
  const sockets = new Map<string, { socket: Socket; grace: NodeJS.Timeout }>();
  let closing = false;

  /** Writes a refusal on the channel's stderr and ends it with exit status 1. */
  const refuseOnChannel = (channel: ServerChannel, text: string): void => {
    channel.stderr.write(text);
    channel.exit(1);
    channel.end();
  };

  const server = new deps.ssh2.Server(
    {
      hostKeys: deps.hostKeys.map((k) => k.privateKey),
      ident: 'borgkeep',
      ...(deps.ciphers && { algorithms: { cipher: [...deps.ciphers] as NonNullable<NonNullable<ServerConfig['algorithms']>['cipher']> } }),
    },
    (client: Connection, info) => {
      const address = info.ip;
      // Each SSH connection is a TCP socket accepted (and counted) by our own server below.
      const accepted = sockets.get(`${info.ip}|${info.port}`);
      connections.add(client);
      let key: SshKey | null = null;
      let authFailed = false;
      let running = 0;
      let idleTimer: NodeJS.Timeout | null = null;
      // Tells this connection's sessions that their client is gone (see GuardSession.gone).
      const gone = new AbortController();
      const armIdle = (): void => {
        if (idleTimer) clearTimeout(idleTimer);
        idleTimer = running === 0 ? setTimeout(() => client.end(), limits.idleMs).unref() : null;
      };

      client.on('error', (error: Error) => log.warn({ event: 'connection-error', address, error: error.message }, 'connection error'));
      client.on('close', () => {
        gone.abort();
        if (idleTimer) clearTimeout(idleTimer);
        connections.delete(client);
      });

      client.on('authentication', (ctx) => {
        const reject = (reason: string, known: SshKey | null = null): void => {
          // One failure per connection, counted at once (a throttled peer's next connection is
          // checked before its first byte); taken back if the connection logs in after all.
          if (!authFailed) deps.throttle.fail(address);
          authFailed = true;
          log.warn({ event: 'auth-failed', address, user: ctx.username, method: ctx.method, reason }, 'authentication refused');
          deps.events?.authFailure(address, known, reason);
          ctx.reject(['publickey']);
        };
        if (ctx.method !== 'publickey') {
          // 'none' is how every client starts; it is not an attempt worth logging.
          if (ctx.method === 'none') return ctx.reject(['publickey']);
          return reject(`${ctx.method} authentication is not accepted`);
        }
        if (!sameText(ctx.username, deps.user)) return reject('unknown user');
        const type = blobType(ctx.key.data);
        if (!type) return reject('malformed key');
        void deps
          .findKeyByBlob(type, ctx.key.data.toString('base64'))
          .then((found) => {
            if (!found) return reject('unknown key');
            if (found.revokedAt) return reject(`key '${found.name}' is revoked`, found);
            if (!ctx.signature) return ctx.accept(); // the client asks whether this key would do
            const parsed = deps.ssh2.parseKey(`${found.type} ${found.blob}`);
            if (parsed instanceof Error || parsed.verify(ctx.blob!, ctx.signature, ctx.hashAlgo) !== true) {
              return reject(`bad signature for key '${found.name}'`, found);
            }
            key = found;
            if (accepted) clearTimeout(accepted.grace); // logged in within the grace time
            if (authFailed) deps.throttle.forgive(address); // it offered other keys first
            log.info({ event: 'auth', address, key: found.name, fingerprint: found.fingerprint }, 'authenticated');
            ctx.accept();
          })
          .catch((error: unknown) => reject(`key lookup failed: ${(error as Error).message}`));
      });

      client.on('ready', () => {
        armIdle();
        client.on('session', (acceptSession) => {
          const session = acceptSession();
          session.on('shell', (accept) => refuseOnChannel(accept(), REFUSED_SHELL));
          session.on('subsystem', (accept) => refuseOnChannel(accept(), REFUSED_SUBSYSTEM));
          session.on('exec', (accept, _reject, info) => {
            const channel = accept();
            const authKey = key;
            if (authKey && deps.command?.(info.command, channel)) return;
            const spec = authKey ? (deps.sessionFor ?? borgServeSession)(info.command, authKey, address) : null;
            if (!authKey || !spec) {
              log.warn({ event: 'exec-refused', address, key: authKey?.name }, 'a command other than borg serve was refused');
              return refuseOnChannel(channel, REFUSED_COMMAND);
            }
            // Refused sessions still go through the guard: borg prints the reason the guard gives
            // for its `open` (a message on stderr alone is lost behind "Connection closed"), and
            // the refusal is in the ledger.
            // The key's limit is counted by the guard in the ledger, over every gateway and the
            // forced command (GuardSession.maxSessionsPerKey); this server's own limit here.
            let refusal: GuardSession['refusal'];
            if (closing) refusal = { reason: 'BK_DENY_SHUTDOWN', why: 'the server is shutting down; try again shortly' };
            else if (sessions.size >= limits.maxSessions) {
              refusal = { reason: 'BK_DENY_SESSION_LIMIT', why: `the server runs at most ${plural(limits.maxSessions, 'session')} at once; try again later` };
            }
            if (refusal) log.warn({ event: 'session-refused', address, key: authKey.name, reason: refusal.reason }, refusal.why);
            running++;
            armIdle();
            const stop = new AbortController();
            const started = Date.now();
            const maxSessionsPerKey = spec.maxSessionsPerKey ?? limits.maxSessionsPerKey;
            log.info({ event: 'session-start', address, key: authKey.name }, 'session started');
            const runHere = (negotiated: boolean): Promise<number> =>
              deps
                .runSession({
                  keyRef: spec.keyRef,
                  clientAddress: spec.clientAddress,
                  logLevel: spec.logLevel,
                  input: channel,
                  output: channel,
                  errOutput: channel.stderr,
                  stop: stop.signal,
                  gone: gone.signal,
                  refusal,
                  maxSessionsPerKey,
                  negotiated,
                })
                .then((outcome) => {
                  log.info(
                    { event: 'session-end', address, key: authKey.name, session: outcome.sessionId, result: outcome.result, detail: outcome.detail, ms: Date.now() - started },
                    'session ended',
                  );
                  // The client is not kept waiting for a database that refuses writes.
                  const retry = outcome.ledgerWritten;
                  if (retry) ledgerRetries.add(retry);
                  void retry?.then((written) => {
                    ledgerRetries.delete(retry);
                    const fields = { event: 'ledger-retry', session: outcome.sessionId, result: outcome.result };
                    if (written) log.info(fields, 'the session end was written to the ledger');
                    else log.warn(fields, 'gave up writing the session end to the ledger; it stays open until the next start');
                  });
                  return outcome.result === 'error' ? 1 : 0;
                });
            const routed = async (): Promise<number> => {
              if (!deps.router || refusal) return runHere(spec.negotiated ?? false);
              const route = await deps.router.route(channel, { keyId: spec.keyId, clientAddress: spec.clientAddress, logLevel: spec.logLevel, maxSessionsPerKey }, gone.signal, stop.signal);
              if (route.kind === 'forwarded') {
                log.info({ event: 'session-end', address, key: authKey.name, forwarded: true, exitCode: route.exitCode, ms: Date.now() - started }, 'forwarded session ended');
                return route.exitCode;
              }
              if (route.refusal) refusal = route.refusal;
              return runHere(route.negotiated);
            };
            const done = routed()
              .catch((error: unknown) => {
                log.warn({ event: 'session-failed', address, key: authKey.name, error: (error as Error).message }, 'session failed');
                channel.stderr.write('borgkeep: the session failed on the server.\n');
                return 1;
              })
              .then((code) => {
                if (!channel.destroyed) {
                  channel.exit(code);
                  channel.end();
                }
              })
              .finally(() => {
                sessions.delete(entry);
                refused.delete(entry);
                running--;
                armIdle();
              });
            // A refused session does not count against the limits it was refused by.
            const entry: RunningSession = { keyId: authKey.id, stop, done };
            (refusal ? refused : sessions).add(entry);
          });
        });
      });
    },
  );

  // Our own TCP server hands sockets to ssh2 (injectSocket): throttled addresses are turned away
  // before a byte is read, and the login grace time also covers peers that never send their
  // SSH identification (ssh2 reports a connection only once that has arrived).
  const tcp = createServer((socket) => {
    const address = socket.remoteAddress ?? '';
    if (closing || deps.throttle.blocked(address)) {
      log.warn({ event: 'connection-refused', address, reason: closing ? 'shutting down' : 'throttled' }, 'connection refused');
      socket.destroy();
      return;
    }
    deps.events?.connection(address);
    const id = `${address}|${socket.remotePort}`;
    // Absolute, not an inactivity time-out: a peer trickling bytes must not stay for ever.
    const grace = setTimeout(() => {
      log.warn({ event: 'login-timeout', address }, 'no authentication within the login grace time');
      socket.destroy();
    }, limits.loginGraceMs).unref();
    sockets.set(id, { socket, grace });
    socket.once('close', () => {
      clearTimeout(grace);
      sockets.delete(id);
    });
    server.injectSocket(socket);
  });

  return {
    listen(host, port) {
      return new Promise((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen(port, host, () => {
          tcp.off('error', reject);
          const a = tcp.address() as AddressInfo;
          resolve({ host: a.address, port: a.port });
        });
      });
    },
    sessionCount: () => sessions.size,
    async close(graceMs) {
      closing = true;
      const stopped = new Promise<void>((resolve) => tcp.close(() => resolve()));
      const all = (): Promise<unknown> => Promise.all([...sessions].map((s) => s.done));
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), graceMs);
      });
      if ((await Promise.race([all(), graceOver])) === 'timeout') {
        log.warn({ event: 'shutdown', sessions: sessions.size }, 'grace period over: ending running sessions');
        for (const s of sessions) s.stop.abort();
        await all();
      }
      clearTimeout(timer);
      if (ledgerRetries.size > 0) {
        log.warn({ event: 'shutdown', ledgerRetries: ledgerRetries.size }, 'waiting for the ledger to take the end of ended sessions');
        await Promise.race([Promise.all(ledgerRetries), new Promise((r) => setTimeout(r, graceMs).unref())]);
      }
      for (const s of refused) s.stop.abort();
      await Promise.all([...refused].map((s) => s.done));
      // Say goodbye, and close what a client does not close itself soon after.
      for (const c of connections) c.end();
      const hardClose = setTimeout(() => {
        for (const { socket } of sockets.values()) socket.destroy();
      }, 2000).unref();
      await stopped;
      clearTimeout(hardClose);
    },
  };
}
