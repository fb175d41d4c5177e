// `borgkeep serve`: the long-running server. The embedded SSH gateway (borg clients connect to
// ssh://borg@HOST:2222/./REPO with no sshd set-up) and the HTTP API (src/api, on --http-listen,
// HTTPS with --tls-cert/--tls-key). Host keys are created on first start and their fingerprints
// printed, so users can check them. On a store without users, the first start creates `admin`
// and hands its one-time password to a person: on stderr when it is a terminal, else in a file of
// the data directory (mode 0600); never on stdout and never through the logger. Structured logs
// (pino, JSON lines) go to stdout after the start-up lines. SIGTERM or SIGINT: stop accepting,
// let running sessions finish for the grace period, then end them so borg rolls back what is not
// committed; the API closes its connections at once.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';

import type { ApiServer } from '../api/api-server.js';
import { BorgkeepError } from '../errors.js';
import { startStallWatch } from '../shared/stall-watch.js';
import type { ServeConfig } from '../gateway/serve-config.js';
import { isLocalProcessAlive, type CliContext } from './cli-context.js';
import { readConfigFile } from './config-file.js';

interface ServeFlags {
  sshListen?: string;
  sshUser?: string;
  publicHost?: string;
  maxSessions?: string;
  maxSessionsPerKey?: string;
  authFailuresPerMinute?: string;
  loginGrace?: string;
  idleTimeout?: string;
  shutdownGrace?: string;
  httpListen?: string;
  trustProxy?: string;
  tlsCert?: string;
  tlsKey?: string;
  vaultPassphraseFile?: string;
  database?: string;
  config?: string;
}

export function registerServeCommand(program: Command, ctx: CliContext): void {
  program
    .command('serve')
    .description('run the server: the embedded SSH gateway for borg clients and the HTTP API')
    .option('--ssh-listen <host:port>', 'address of the SSH gateway (env BORGKEEP_SSH_LISTEN, default 0.0.0.0:2222)')
    .option('--ssh-user <name>', 'SSH user name borg clients log in as (env BORGKEEP_SSH_USER, default borg)')
    .option('--public-host <host[:port]>', 'the SSH host (and port) clients are told to use, for NAT and port forwarding (env BORGKEEP_PUBLIC_HOST; default: the address the gateway listens on, or the host the console is opened with)')
    .option('--max-sessions <n>', 'guarded sessions at once over all keys (default 100)')
    .option('--max-sessions-per-key <n>', 'guarded sessions at once for one key (default 10)')
    .option('--auth-failures-per-minute <n>', 'failed logins per address and minute before it is throttled; 0: off (default 10)')
    .option('--login-grace <seconds>', 'time a connection has to authenticate (default 30)')
    .option('--idle-timeout <seconds>', 'a connection running no session is closed after this (default 60)')
    .option('--shutdown-grace <seconds>', 'on SIGTERM, how long running sessions may go on (default 30)')
    .option('--http-listen <host:port>', 'address of the HTTP API (env BORGKEEP_HTTP_LISTEN, default 127.0.0.1:8080)')
    .option('--trust-proxy <addresses>', "reverse proxies whose X-Forwarded-For the HTTP API believes, e.g. 127.0.0.1,10.0.0.0/8 (env BORGKEEP_TRUST_PROXY; default none: a request's address is its connection's)")
    .option('--tls-cert <file>', 'serve HTTPS with this PEM certificate (env BORGKEEP_TLS_CERT; needs --tls-key)')
    .option('--tls-key <file>', 'the PEM private key of --tls-cert (env BORGKEEP_TLS_KEY)')
    .option('--vault-passphrase-file <file>', "the key vault's master passphrase (env BORGKEEP_VAULT_PASSPHRASE_FILE, or the systemd credential borgkeep-vault-passphrase); without it the vault uses its master key file in the data directory")
    .option('--database <url>', 'keep keys, grants and the ledger in PostgreSQL, e.g. postgres://borgkeep@db.example.org/borgkeep (env BORGKEEP_DATABASE_URL; default: the SQLite file in the data directory)')
    .option('--config <file>', 'JSON settings: any of the above, alerts, metricsToken, auditPassphraseFiles, retention (env BORGKEEP_CONFIG; default DATA/borgkeep.json when it exists)')
    .action(async (flags: ServeFlags) => {
      const [{ parseServeConfig }, { databaseUrlFor }] = await Promise.all([import('../gateway/serve-config.js'), import('../store/database-location.js')]);
      const configFile = readConfigFile(flags.config ?? process.env.BORGKEEP_CONFIG ?? null, join(ctx.getDataDir(), 'borgkeep.json'));
      const config = parseServeConfig(
        {
          sshListen: flags.sshListen,
          sshUser: flags.sshUser,
          publicHost: flags.publicHost,
          maxSessions: flags.maxSessions,
          maxSessionsPerKey: flags.maxSessionsPerKey,
          authFailuresPerMinute: flags.authFailuresPerMinute,
          loginGraceSeconds: flags.loginGrace,
          idleSeconds: flags.idleTimeout,
          shutdownGraceSeconds: flags.shutdownGrace,
          httpListen: flags.httpListen,
          trustProxy: flags.trustProxy,
          tlsCert: flags.tlsCert,
          tlsKey: flags.tlsKey,
          vaultPassphraseFile: flags.vaultPassphraseFile,
        },
        process.env,
        configFile,
      );
      await serve(ctx, config, databaseUrlFor(ctx.getDataDir(), process.env, flags.database, configFile));
    });
}

async function serve(ctx: CliContext, config: ServeConfig, database: string | undefined): Promise<void> {
  const [{ openStore }, { runGuardSession }, { createGuardDeps }, { createSshGateway }, { createAuthThrottle }, { loadOrCreateHostKeys, generateEd25519KeyPair }, { dataDirPaths }] =
    await Promise.all([
      import('../store/database.js'),
      import('../guard/guard.js'),
      import('../gateway/guard-runtime.js'),
      import('../gateway/ssh-gateway.js'),
      import('../gateway/auth-throttle.js'),
      import('../gateway/host-keys.js'),
      import('../store/data-dir.js'),
    ]);
  // Only the server needs these two; the forced command starts without them.
  const [{ default: ssh2 }, { default: pino }] = await Promise.all([import('ssh2'), import('pino')]);

  // Unreadable TLS files and standalone borg binaries are refused before anything listens.
  const { checkBorgBinaries } = await import('../pull/borg-binaries.js');
  checkBorgBinaries(config.pullBorgBinaries);
  const tls = config.tlsCert && config.tlsKey ? { cert: readPem(config.tlsCert, '--tls-cert'), key: readPem(config.tlsKey, '--tls-key') } : null;
  const dataDir = ctx.getDataDir();
  const paths = dataDirPaths(dataDir);
  // The key vault opens before anything listens: a wrong master passphrase stops serve here, in
  // one sentence. The passphrase stays in this process's memory only; borg-serve sessions under
  // sshd's forced command never get it and fail closed on repositories whose key is held.
  const [{ masterPassphrase }, { openVault, vaultMasterMode }] = await Promise.all([import('./vault-commands.js'), import('../vault/vault.js')]);
  const master = masterPassphrase(config.vaultPassphraseFile, process.env);
  if (master === undefined && vaultMasterMode(dataDir) === 'passphrase') {
    throw new BorgkeepError('BK_ERR_INVALID_INPUT', "this data directory's key vault is sealed with a master passphrase: start serve with --vault-passphrase-file FILE (or the systemd credential borgkeep-vault-passphrase)");
  }
  const vault = openVault(dataDir, master === undefined ? {} : { masterPassphrase: master });
  const vaultMode = vaultMasterMode(dataDir);
  const store = await openStore({ dataDir, ...(database !== undefined && { database }) });
  // sshd's forced command and the CLI get neither this flag nor this environment: they read it here.
  if (database !== undefined) (await import('../store/database-location.js')).recordDatabaseUrl(dataDir, database);
  try {
    const stale = await store.closeStaleSessions(isLocalProcessAlive);
    const hostKeys = loadOrCreateHostKeys(join(paths.root, 'ssh'), (type) =>
      type === 'rsa' ? ssh2.utils.generateKeyPairSync('rsa', { bits: 3072 }) : generateEd25519KeyPair(),
    );
    const log = pino({ base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime });
    // Every request and session waits while the one thread is held: say for how long, and by what.
    const stopStallWatch = startStallWatch({
      // BORGKEEP_STALL_MS: a lower threshold, to find what holds the server in a benchmark.
      ...(Number(process.env.BORGKEEP_STALL_MS) > 0 && { thresholdMs: Number(process.env.BORGKEEP_STALL_MS) }),
      onStall: (stall) =>
        log.warn(
          { event: 'event-loop-stall', ms: stall.ms, gcMs: stall.gcMs, slowWork: stall.slowWork },
          `the server was held for ${stall.ms} ms (garbage collection ${stall.gcMs} ms${stall.slowWork.length > 0 ? `; longest work: ${stall.slowWork[0]!.what.slice(0, 80)}, ${stall.slowWork[0]!.ms} ms` : ''})`,
        ),
    });
    const { keepWarm } = await import('../store/keep-warm.js');
    const stopKeepingWarm = database !== undefined ? () => undefined : keepWarm({
      files: [store.paths.database, `${store.paths.database}-wal`],
      maxBytes: config.databaseKeepWarmMiB * 1024 * 1024,
      onTooLarge: (bytes) =>
        log.info({ event: 'database-keep-warm', bytes }, `the database (${Math.round(bytes / 1024 / 1024)} MiB) is larger than databaseKeepWarmMiB (${config.databaseKeepWarmMiB}), so serve does not keep it cached`),
    });
    const [{ startMonitoring }, { createRepositorySizer, directorySize }] = await Promise.all([import('../jobs/monitoring-runtime.js'), import('../api/features/repository-size.js')]);
    const { sizeOf } = createRepositorySizer({ now: () => new Date() });
    const retention = await startRetention(dataDir, store, config.retention, vault);
    // Pull backups (issue 16): queued jobs from the CLI, the API, the schedule and retries run here.
    const { startPullServer } = await import('../pull/pull-runtime.js');
    const pull = await startPullServer({
      dataDir,
      store,
      env: process.env,
      vault,
      isAlive: (r) => isLocalProcessAlive(r.pid, r.host),
      log,
      concurrency: config.pullConcurrency,
      perRepository: config.pullConcurrencyPerRepository,
      jitterMaxMs: config.pullScheduleJitterSeconds * 1000,
      borgBinaries: config.pullBorgBinaries,
    });
    const monitoring = await startMonitoring({ store, log, sizeOf, directorySize, config: config.alerts, auditPassphraseFiles: config.auditPassphraseFiles, retention, pull: pull.service, vault }).catch(async (error: unknown) => {
      await pull.stop();
      throw error;
    });
    const guardDeps = {
      // This process's vault, opened with the master passphrase when there is one.
      ...createGuardDeps(dataDir, store, process.env, { vault }),
      onFrame: (method: string) => monitoring.metrics.frame(method),
      // The server lives on: a session's end refused by the database is retried for an hour.
      ledgerRetryMs: 60 * 60 * 1000,
    };
    // On PostgreSQL several gateways may share the database: failed logins count over all of them.
    const localThrottle = createAuthThrottle({ limit: config.authFailuresPerMinute, windowMs: 60_000, now: () => Date.now() });
    const sharedThrottle = store.watchChanges
      ? (await import('../gateway/shared-throttle.js')).createSharedAuthThrottle({
          local: localThrottle,
          store,
          watchChanges: store.watchChanges,
          limit: config.authFailuresPerMinute,
          windowMs: 60_000,
          now: () => Date.now(),
          onError: (error) => log.warn({ event: 'shared-throttle', error: (error as Error).message }, 'the failed logins of the other gateways could not be read or written'),
        })
      : null;
    const throttle = sharedThrottle ?? localThrottle;
    // On PostgreSQL repositories may live on storage nodes: sessions of those go there (node-router.ts).
    const nodes = store.watchChanges ? await startNodeRouting(paths.root, store, guardDeps.borgVersion, ssh2.Client, config.sshCiphers, log) : null;
    const gateway = createSshGateway({
      hostKeys,
      user: config.sshUser,
      findKeyByBlob: (type, blob) => store.findKeyByBlob(type, blob),
      runSession: (session) => runGuardSession(guardDeps, session),
      throttle,
      limits: {
        maxSessions: config.maxSessions,
        maxSessionsPerKey: config.maxSessionsPerKey,
        loginGraceMs: config.loginGraceSeconds * 1000,
        idleMs: config.idleSeconds * 1000,
      },
      log,
      ssh2: { Server: ssh2.Server, parseKey: ssh2.utils.parseKey },
      events: monitoring.gatewayEvents,
      ciphers: config.sshCiphers,
      ...(nodes && { router: nodes.router }),
    });
    const bound = await gateway.listen(config.sshListen.host, config.sshListen.port).catch(async (error: NodeJS.ErrnoException) => {
      await monitoring.stop(); // its timers would keep the process alive
      await pull.stop();
      return listenError(config.sshListen, '--ssh-listen', 'sshd')(error);
    });
    // What every instruction tells clients: --public-host (NAT, port forwarding), else the
    // address the gateway listens on; on every address the console uses the host it is opened with.
    const wildcard = bound.host === '0.0.0.0' || bound.host === '::';
    const advertised = {
      user: config.sshUser,
      host: config.publicHost?.host ?? (wildcard ? null : bound.host),
      port: config.publicHost?.port ?? bound.port,
    };
    const { writeAdvertisedEndpoint } = await import('../gateway/advertised-endpoint.js');
    writeAdvertisedEndpoint(join(paths.root, 'ssh'), advertised);

    // Anything failing from here on must close the gateway, or the process would never exit.
    let api: ApiServer | undefined;
    let http: { url: string };
    let firstAdmin: { name: string; password: string } | null;
    try {
      const [{ createApiServer }, { createPasswordHasher }, { ensureFirstAdmin }, { findConsoleDir }] = await Promise.all([
        import('../api/api-server.js'),
        import('../api/auth/passwords.js'),
        import('../api/first-run.js'),
        import('../api/console-static.js'),
      ]);
      const passwords = await createPasswordHasher();
      const sso = await startSso(config);
      firstAdmin = await ensureFirstAdmin(store, passwords);
      api = createApiServer({
        store,
        passwords,
        tls,
        trustProxy: config.trustProxy,
        logger: log,
        consoleDir: findConsoleDir(),
        sizeOf,
        vault,
        retention,
        sso,
        monitoring: { notifier: monitoring.notifier, scheduler: monitoring.scheduler, metrics: monitoring.metrics, metricsToken: config.metricsToken ?? null },
        ssh: {
          ...advertised,
          fingerprints: hostKeys.map((k) => ({ type: k.type, fingerprint: k.fingerprint, publicKey: k.publicLine })),
        },
      });
      http = await api.listen(config.httpListen.host, config.httpListen.port).catch(listenError(config.httpListen, '--http-listen', 'web server'));
    } catch (error) {
      await api?.close().catch(() => undefined);
      await gateway.close(0);
      await monitoring.stop();
      await pull.stop();
      throw error;
    }
    const apiServer: ApiServer = api;

    const shownHost = bound.host.includes(':') ? `[${bound.host}]` : bound.host;
    const { RECOMMENDED_ENCRYPTION, repositoryUrl, knownHostsLines } = await import('../gateway/client-setup.js');
    const target = { user: advertised.user, host: advertised.host ?? 'HOST', port: advertised.port };
    const hostKeyInfo = hostKeys.map((k) => ({ type: k.type, publicKey: k.publicLine, fingerprint: k.fingerprint }));
    const lines = [
      `borgkeep serve: data directory ${paths.root}`,
      ...(stale > 0 ? [`closed ${stale} ${stale === 1 ? 'session' : 'sessions'} left open by a process that died, as aborted`] : []),
      'SSH host key fingerprints (clients can compare them on their first connection):',
      ...hostKeys.map((k) => `  ${k.fingerprint} (${k.type})`),
      `ssh gateway listening on ${shownHost}:${bound.port}`,
      `clients use: ${repositoryUrl(target, 'REPO')}${config.publicHost ? ' (--public-host)' : advertised.host === null ? ' (HOST: this server\'s name; set it with --public-host)' : ''}`,
      `  create a repository with a full key: borg init --encryption=${RECOMMENDED_ENCRYPTION} ${repositoryUrl(target, 'REPO')}`,
      '  known_hosts lines for clients (borgkeep repo setup REPO --key KEY prints the whole set-up):',
      ...knownHostsLines(target, hostKeyInfo).split('\n').map((l) => `    ${l}`),
      `HTTP API listening on ${http.url}/api/v1 (OpenAPI document: ${http.url}/api/v1/openapi.json)`,
      `web console: ${http.url}/`,
      `Prometheus metrics: ${http.url}/metrics${config.metricsToken ? ' (with the metrics token)' : ' (open to anyone who reaches it: set metricsToken in the config file or BORGKEEP_METRICS_TOKEN to ask for a token)'}`,
      ...(config.sso?.oidc ? [`single sign-on: OpenID Connect with ${config.sso.oidc.issuer} (redirect URL ${config.publicUrl}/api/v1/sso/oidc/callback)`] : []),
      ...(config.sso?.ldap ? [`single sign-on: LDAP with ${config.sso.ldap.url}`] : []),
      vaultMode === 'passphrase'
        ? "key vault: sealed with the master passphrase (sessions through sshd's forced command cannot open it; repositories whose key borgkeep holds are served through this gateway)"
        : 'key vault: sealed with the master key file in the data directory',
    ];
    if (firstAdmin) {
      // Before the start-up lines: whoever waits for them finds the password file written.
      const { handOverFirstAdmin } = await import('../api/first-run.js');
      const handover = handOverFirstAdmin(firstAdmin, { dataDir: paths.root, stderr: process.stderr });
      lines.push(handover.line);
      log.info({ event: 'first-admin', user: firstAdmin.name, passwordFile: handover.file }, handover.line);
    }
    ctx.out.line(lines.join('\n'));

    await new Promise<void>((resolve) => {
      const onSignal = (signal: NodeJS.Signals): void => {
        for (const s of ['SIGTERM', 'SIGINT'] as const) process.off(s, onSignal);
        log.info({ event: 'shutdown', signal, sessions: gateway.sessionCount(), graceSeconds: config.shutdownGraceSeconds }, 'stopping');
        void Promise.allSettled([gateway.close(config.shutdownGraceSeconds * 1000), apiServer.close(), monitoring.stop(), pull.stop()]).then(() => resolve());
      };
      for (const s of ['SIGTERM', 'SIGINT'] as const) process.on(s, onSignal);
    });
    stopStallWatch();
    stopKeepingWarm();
    sharedThrottle?.stop();
    nodes?.connector.close();
    log.info({ event: 'stopped' }, 'borgkeep serve stopped');
  } finally {
    await store.close();
  }
}

/** The gateway's way to storage nodes: its fleet key, registered so that nodes let it in, and the router. */
async function startNodeRouting(
  dataDir: string,
  store: import('../store/database.js').Store,
  borgVersion: () => import('../guard/borg-version.js').VersionTuple | null,
  Client: typeof import('ssh2').Client,
  ciphers: readonly string[] | undefined,
  log: import('../gateway/node-router.js').NodeRouterDeps['log'],
) {
  const [{ createNodeRouter }, { createNodeConnector, loadOrCreateFleetKey }, { hostname }] = await Promise.all([
    import('../gateway/node-router.js'),
    import('../gateway/node-connector.js'),
    import('node:os'),
  ]);
  const key = loadOrCreateFleetKey(dataDir);
  await store.registerFleetKey(key.publicKey, `gateway on ${hostname()}`);
  const connector = createNodeConnector({ Client, key, ...(ciphers && { ciphers }) });
  return { connector, router: createNodeRouter({ store, borgVersion, connector, log }) };
}

function listenError(address: { host: string; port: number }, flag: string, other: string) {
  return (error: NodeJS.ErrnoException): never => {
    const where = `${address.host}:${address.port}`;
    throw new BorgkeepError(
      'BK_ERR_INVALID_INPUT',
      error.code === 'EADDRINUSE'
        ? `cannot listen on ${where}: the address is in use (another borgkeep or ${other}?); choose another with ${flag}`
        : error.code === 'EACCES'
          ? `cannot listen on ${where}: permission denied (ports below 1024 need root); choose another with ${flag}`
          : `cannot listen on ${where}: ${error.message}`,
    );
  };
}

function readPem(file: string, flag: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new BorgkeepError('BK_ERR_INVALID_INPUT', `${flag}: cannot read ${file}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'there is no such file' : (error as Error).message}`);
  }
}

/**
 * The server's retention runs, with the config file's policies written into the store first (at
 * every start the file wins, as for alerts); a policy the file cannot set stops the start.
 */
async function startRetention(dataDir: string, store: import('../store/database.js').Store, policies: ServeConfig['retention'], vault: import('../vault/vault.js').Vault) {
  // serve's own vault: opened with the master passphrase when there is one.
  const [{ createRetentionService }, { createGuardDeps, borgCommand }] = await Promise.all([
    import('../retention/retention-service.js'),
    import('../gateway/guard-runtime.js'),
  ]);
  const service = createRetentionService({
    store,
    vault,
    runner: {
      guard: { ...createGuardDeps(dataDir, store, process.env, { vault }), ledgerRetryMs: 60 * 60 * 1000 },
      dataDir,
      borg: borgCommand(process.env),
      path: process.env.PATH ?? '/usr/bin:/bin',
    },
    now: () => new Date(),
  });
  for (const [name, policy] of Object.entries(policies)) await service.set(name, policy, 'config file', `config file, retention.${name}: `);
  return service;
}

/** A secret from a file named in the config: read once at start, its last line break dropped; never logged. */
function readSecretFile(file: string, setting: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new BorgkeepError('BK_ERR_INVALID_INPUT', `config file, ${setting}: cannot read ${file}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'there is no such file' : (error as Error).message}`);
  }
  const secret = text.replace(/\r?\n$/, '');
  if (secret === '') throw new BorgkeepError('BK_ERR_INVALID_INPUT', `config file, ${setting}: ${file} is empty`);
  return secret;
}

/** The OpenID provider and LDAP directory of the config file, their secrets read from their files. */
async function startSso(config: ServeConfig): Promise<import('../api/sso/sso-service.js').SsoRuntime> {
  const { oidc, ldap } = config.sso ?? {};
  const [{ createOidcLogin }, { createLdapLogin }] = await Promise.all([import('../api/sso/oidc-login.js'), import('../api/sso/ldap-login.js')]);
  return {
    oidc: oidc
      ? {
          login: createOidcLogin({ ...oidc, clientSecret: readSecretFile(oidc.clientSecretFile, 'sso.oidc.clientSecretFile') }, `${config.publicUrl}/api/v1/sso/oidc/callback`),
          roles: oidc.roles,
          claim: oidc.claim,
        }
      : null,
    ldap: ldap ? { login: createLdapLogin({ ...ldap, bindPassword: readSecretFile(ldap.bindPasswordFile, 'sso.ldap.bindPasswordFile') }), roles: ldap.roles } : null,
  };
}
