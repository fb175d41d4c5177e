// `borgkeep node`: a storage node (issue 19). It holds repositories on this machine's disks, in its
// own data directory, and runs the guard next to them for the sessions gateways forward to it
// (gateway/node-router.ts). It shares its gateways' PostgreSQL database: there it registers itself
// (name, address, host key, the key it logs in to other nodes with, its disk) and renews a
// heartbeat every few seconds; a node that stops renewing it is shown down, and sessions of its
// repositories fail with one sentence while all others go on.
//
// Its SSH server lets in gateways and other nodes only (their registered keys), and runs only
// forwarded borg sessions. At start it closes, as aborted, the sessions a killed run of it left open.

import { statfsSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';

import { BorgkeepError, invalidInput } from '../errors.js';
import type { CliContext } from './cli-context.js';
import { isLocalProcessAlive } from './cli-context.js';
import { readConfigFile } from './config-file.js';

interface NodeFlags {
  name: string;
  sshListen?: string;
  advertise?: string;
  database?: string;
  shutdownGrace?: string;
  maxSessions?: string;
  config?: string;
}

export function registerNodeCommand(program: Command, ctx: CliContext): void {
  const node = program.command('node').description('storage nodes: machines that hold repositories on their own disks (needs PostgreSQL)');
  node
    .command('list')
    .description('the storage nodes, whether each is up, its disk and how many repositories it holds')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const [{ withStore }, { nodeOverview }, { formatBytes }] = await Promise.all([import('./cli-context.js'), import('../store/node-store.js'), import('../shared/size.js')]);
      const rows = await withStore(ctx, (store) => nodeOverview(store, ctx.now()));
      if (opts.json) return ctx.out.json({ nodes: rows });
      if (rows.length === 0) return ctx.out.line('no storage nodes: repositories live in the data directory (start one with borgkeep node run --name NAME --database postgres://...)');
      for (const r of rows) {
        ctx.out.line(`${r.name}  ${r.up ? 'up' : 'DOWN'}  ${r.address}  ${formatBytes(r.freeBytes)} free of ${formatBytes(r.capacityBytes)}  ${r.repositories} ${r.repositories === 1 ? 'repository' : 'repositories'}`);
      }
    });
  node
    .command('run')
    .description("run a storage node: holds repositories on this machine's disks and serves the borg sessions gateways forward to it")
    .requiredOption('--name <name>', 'the node\'s name, e.g. store-1 (letters, digits, "-" and "_")')
    .option('--ssh-listen <host:port>', "address of the node's SSH server, for gateways and other nodes only (default 0.0.0.0:2223)")
    .option('--advertise <host:port>', 'the address gateways connect to (default: the --ssh-listen address, with this host\'s name for 0.0.0.0)')
    .option('--database <url>', "the gateways' PostgreSQL database (env BORGKEEP_DATABASE_URL, or \"database\" in the config file)")
    .option('--max-sessions <n>', 'forwarded sessions at once (default 200)')
    .option('--shutdown-grace <seconds>', 'on SIGTERM, how long running sessions may go on (default 30)')
    .option('--config <file>', 'JSON settings, as for serve (a node uses "database" and "sshCiphers")')
    .action(async (flags: NodeFlags) => {
      if (!/^[A-Za-z0-9_-]{1,64}$/.test(flags.name)) throw invalidInput('--name: a node name is 1 to 64 letters, digits, "-" and "_"');
      const [{ parseListenAddress, parseServeConfig }, { databaseUrlFor }] = await Promise.all([import('../gateway/serve-config.js'), import('../store/database-location.js')]);
      const configFile = readConfigFile(flags.config ?? process.env.BORGKEEP_CONFIG ?? null, join(ctx.getDataDir(), 'borgkeep.json'));
      // The settings a node shares with serve, read as serve reads them (the same sentences); a node's own defaults as flags.
      const config = parseServeConfig(
        { sshListen: flags.sshListen ?? '0.0.0.0:2223', maxSessions: flags.maxSessions ?? '200', shutdownGraceSeconds: flags.shutdownGrace },
        process.env,
        configFile,
      );
      const database = databaseUrlFor(ctx.getDataDir(), process.env, flags.database, configFile);
      if (database === undefined) {
        throw invalidInput('a storage node shares its gateways\' PostgreSQL database: start it with --database postgres://... (or BORGKEEP_DATABASE_URL)');
      }
      await runNode(ctx, {
        name: flags.name,
        listen: config.sshListen,
        advertise: flags.advertise === undefined ? null : parseListenAddress(flags.advertise, '--advertise'),
        database,
        graceMs: config.shutdownGraceSeconds * 1000,
        maxSessions: config.maxSessions,
        ciphers: config.sshCiphers,
      });
    });
}

interface NodeSettings {
  readonly name: string;
  readonly listen: { host: string; port: number };
  readonly advertise: { host: string; port: number } | null;
  readonly database: string;
  readonly graceMs: number;
  readonly maxSessions: number;
  readonly ciphers: readonly string[] | undefined;
}

/** This machine's disk under the data directory. */
function diskOf(dir: string): { capacityBytes: number; freeBytes: number } {
  const s = statfsSync(dir);
  return { capacityBytes: s.blocks * s.bsize, freeBytes: s.bavail * s.bsize };
}

async function runNode(ctx: CliContext, settings: NodeSettings): Promise<void> {
  const [{ openStore }, { runGuardSession }, { createGuardDeps, borgCommand }, { createSshGateway }, { createAuthThrottle }, { loadOrCreateHostKeys, generateEd25519KeyPair }, { dataDirPaths }, connector, { NODE_HEARTBEAT_MS }] =
    await Promise.all([
      import('../store/database.js'),
      import('../guard/guard.js'),
      import('../gateway/guard-runtime.js'),
      import('../gateway/ssh-gateway.js'),
      import('../gateway/auth-throttle.js'),
      import('../gateway/host-keys.js'),
      import('../store/data-dir.js'),
      import('../gateway/node-connector.js'),
      import('../store/node-store.js'),
    ]);
  const move = await import('../gateway/repository-move.js');
  const [{ default: ssh2 }, { default: pino }] = await Promise.all([import('ssh2'), import('pino')]);
  const dataDir = ctx.getDataDir();
  const paths = dataDirPaths(dataDir);
  const store = await openStore({ dataDir, database: settings.database });
  const { recordDatabaseUrl } = await import('../store/database-location.js');
  recordDatabaseUrl(dataDir, settings.database);
  try {
    const stale = await store.closeStaleSessions(isLocalProcessAlive);
    const log = pino({ base: { pid: process.pid, node: settings.name }, timestamp: pino.stdTimeFunctions.isoTime });
    const hostKeys = loadOrCreateHostKeys(join(paths.root, 'ssh'), (type) => (type === 'rsa' ? ssh2.utils.generateKeyPairSync('rsa', { bits: 3072 }) : generateEd25519KeyPair()));
    const fleetKey = connector.loadOrCreateFleetKey(paths.root);
    const guardDeps = { ...createGuardDeps(dataDir, store, process.env), ledgerRetryMs: 60 * 60 * 1000 };
    const server = createSshGateway({
      hostKeys,
      user: connector.NODE_USER,
      // Only gateways and nodes of this installation log in here, with their registered keys.
      findKeyByBlob: async (type, blob) =>
        (await store.isFleetKey(`${type} ${blob}`))
          ? { id: 0, name: 'fleet', type, blob, fingerprint: '', comment: null, bits: 0, createdAt: new Date(0), revokedAt: null }
          : undefined,
      sessionFor: (command) => {
        const forwarded = connector.decodeForward(command);
        if (!forwarded) return null;
        return { keyRef: String(forwarded.keyId), keyId: forwarded.keyId, clientAddress: forwarded.clientAddress, logLevel: forwarded.logLevel, negotiated: true, maxSessionsPerKey: forwarded.maxSessionsPerKey };
      },
      runSession: (session) => runGuardSession(guardDeps, session),
      // A repository moving off or onto this node (borgkeep repo move).
      command: (command, channel) => {
        const end = (code: number, text?: string): void => {
          if (text) channel.stderr.write(`borgkeep: ${text}\n`);
          channel.exit(code);
          channel.end();
        };
        const failed = (what: string) => (error: unknown): void => {
          log.warn({ event: what, error: (error as Error).message }, `a repository ${what} failed`);
          end(1, error instanceof BorgkeepError ? error.message : 'the node could not do it (its log says why)');
        };
        const exporting = move.moveCommandTarget(command, move.EXPORT_COMMAND);
        if (exporting) {
          log.info({ event: 'move-export', repository: exporting }, 'sending a repository to another node');
          move.exportRepository(paths.root, exporting, channel, channel, { lockWaitMs: 60_000, now: () => new Date() }).then((r) => {
            log.info({ event: 'move-export', repository: exporting, result: r }, r === 'moved' ? 'the repository moved away; its files are in the trash' : 'the move was called off; the repository stays');
            end(0);
          }, failed('move-export'));
          return true;
        }
        const importing = move.moveCommandTarget(command, move.IMPORT_COMMAND);
        if (importing) {
          log.info({ event: 'move-import', repository: importing }, 'receiving a repository from another node');
          move.importRepository(paths.root, importing, channel, { borg: borgCommand(process.env), env: process.env }).then((r) => {
            channel.write(`${JSON.stringify(r)}\n`);
            end(0);
          }, failed('move-import'));
          return true;
        }
        return false;
      },
      throttle: createAuthThrottle({ limit: 10, windowMs: 60_000, now: () => Date.now() }),
      limits: { maxSessions: settings.maxSessions, maxSessionsPerKey: 1_000_000 },
      log,
      ssh2: { Server: ssh2.Server, parseKey: ssh2.utils.parseKey },
      ...(settings.ciphers && { ciphers: settings.ciphers }),
    });
    const bound = await server.listen(settings.listen.host, settings.listen.port).catch((error: NodeJS.ErrnoException) => {
      throw invalidInput(`cannot listen on ${settings.listen.host}:${settings.listen.port}: ${error.code === 'EADDRINUSE' ? 'the address is in use; choose another with --ssh-listen' : error.message}`);
    });
    const wildcard = bound.host === '0.0.0.0' || bound.host === '::';
    const address = settings.advertise ?? { host: wildcard ? hostname() : bound.host, port: bound.port };
    const shownAddress = `${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}`;
    const ed25519 = hostKeys.find((k) => k.type === 'ssh-ed25519')!;
    const { borgVersion } = guardDeps;
    // A failure from here on must close the SSH server, or the process would never exit.
    await store.registerNode({
      name: settings.name,
      address: shownAddress,
      hostKey: ed25519.publicLine,
      clientKey: fleetKey.publicKey,
      borgVersion: borgVersion()?.join('.') ?? null,
      host: hostname(),
      pid: process.pid,
      ...diskOf(paths.root),
    }).catch(async (error: unknown) => {
      await server.close(0);
      throw error;
    });
    // Its repositories' statistics, audits and verification run here, next to the files.
    const [{ startNodeJobs }, { directorySize }, { openVault }] = await Promise.all([import('../jobs/monitoring-runtime.js'), import('../api/features/repository-size.js'), import('../vault/vault.js')]);
    const jobs = await startNodeJobs({ store, log, selfNode: settings.name, vault: openVault(paths.root), directorySize }).catch(async (error: unknown) => {
      await server.close(0);
      throw error;
    });
    const beat = setInterval(() => {
      store.nodeHeartbeat(settings.name, diskOf(paths.root)).catch((error: unknown) => log.warn({ event: 'node-heartbeat', error: (error as Error).message }, 'the heartbeat could not be written'));
    }, NODE_HEARTBEAT_MS);
    ctx.out.line(
      [
        `borgkeep node ${settings.name}: data directory ${paths.root}`,
        ...(stale > 0 ? [`closed ${stale} ${stale === 1 ? 'session' : 'sessions'} left open by a process that died, as aborted`] : []),
        `node SSH server listening on ${bound.host}:${bound.port}; gateways connect to ${shownAddress}`,
        `host key ${ed25519.fingerprint} (ed25519), registered in the database`,
      ].join('\n'),
    );
    await new Promise<void>((resolve) => {
      const onSignal = (signal: NodeJS.Signals): void => {
        for (const s of ['SIGTERM', 'SIGINT'] as const) process.off(s, onSignal);
        log.info({ event: 'shutdown', signal, sessions: server.sessionCount() }, 'stopping');
        clearInterval(beat);
        void Promise.allSettled([server.close(settings.graceMs), jobs.stop()]).then(() => resolve());
      };
      for (const s of ['SIGTERM', 'SIGINT'] as const) process.on(s, onSignal);
    });
    await store.nodeStopped(settings.name).catch(() => undefined);
    log.info({ event: 'stopped' }, 'borgkeep node stopped');
  } finally {
    await store.close();
  }
}
