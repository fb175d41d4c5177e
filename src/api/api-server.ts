// The HTTP API server: Fastify with the routes of src/api/routes under /api/v1, the OpenAPI
// document at /api/v1/openapi.json, authentication and CSRF checks before every handler, and
// one error shape. createApiServer takes every I/O dependency (store, password hasher, clock,
// logger, TLS material, audit runner, disk sizing) so tests run it on a real store over loopback
// without the SSH gateway. This file wires; it holds no business logic.

import { parse as parseCookies } from 'cookie';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { BorgkeepError } from '../errors.js';
import type { Store } from '../store/database.js';
import { createAuthenticator, roleAtLeast, SESSION_COOKIE, CSRF_HEADER, type AuthSettings, type Authenticator, type Principal } from './auth/authenticator.js';
import type { PasswordHasher } from './auth/passwords.js';
import { toApiError, zodInputError, type InputPart } from './api-errors.js';
import { createAuditService, type AuditService, type AuditServiceDeps } from '../audit/audit-service.js';
import { registerConditionalGets } from './features/etag.js';
import { createLiveEvents } from './features/live-events.js';
import { createRepositorySizer, type SizeOf } from './features/repository-size.js';
import { registerConsole } from './console-static.js';
import { buildOpenApiDocument } from './openapi.js';
import { JsonText, type ApiRoute } from './route.js';
import { archiveRoutes } from './routes/archive-routes.js';
import { archiveCheckRoutes } from './routes/archive-check-routes.js';
import { browseAccessRoutes } from './routes/browse-access-routes.js';
import { browseRoutes } from './routes/browse-routes.js';
import { auditRoutes } from './routes/audit-routes.js';
import { createEventStreams } from './routes/event-routes.js';
import { grantRoutes } from './routes/grant-routes.js';
import { keyRoutes } from './routes/key-routes.js';
import { ledgerRoutes } from './routes/ledger-routes.js';
import { alertRoutes, type MonitoringApi } from './routes/alert-routes.js';
import { metricsAuthorized, type ServerMetrics } from './metrics.js';
import { repositoryRoutes } from './routes/repository-routes.js';
import { retentionRoutes } from './routes/retention-routes.js';
import { pullRoutes } from './routes/pull-routes.js';
import { createRetentionService, type RetentionService } from '../retention/retention-service.js';
import { serverRoutes, type SshEndpoint } from './routes/server-routes.js';
import { sessionRoutes } from './routes/session-routes.js';
import { tokenRoutes } from './routes/token-routes.js';
import { userRoutes } from './routes/user-routes.js';
import { verifyRoutes } from './routes/verify-routes.js';
import { accountRoutes } from './routes/account-routes.js';
import { ssoRoutes } from './routes/sso-routes.js';
import { createSsoService, type SsoRuntime } from './sso/sso-service.js';
import { openVault, type Vault } from '../vault/vault.js';
import { createVaultService, type VaultService } from '../vault/vault-service.js';
import { createRepositoryKeySource } from '../vault/repository-key.js';
import type { BorgKey } from '../repository/borg-key.js';

export const API_PREFIX = '/api/v1';
/** Bodies are small JSON documents; a key file for an audit is the biggest thing sent. */
export const BODY_LIMIT_BYTES = 256 * 1024;

export type ApiStore = Omit<Store, 'close'>;

export interface ApiDeps {
  store: ApiStore;
  passwords: PasswordHasher;
  now?: () => Date;
  auth?: Partial<AuthSettings>;
  /** Serve HTTPS with this certificate and key (PEM); session cookies are then Secure. */
  tls?: { cert: string | Buffer; key: string | Buffer } | null;
  /** Reverse proxies whose X-Forwarded-For/-Proto are believed (serve --trust-proxy); none or empty: no header is. */
  trustProxy?: readonly string[];
  logger?: FastifyBaseLogger | false;
  /** The audit runner and history reader (src/audit); tests may narrow them. */
  audit?: Partial<AuditServiceDeps>;
  /** Measures a repository directory's size; default walks it, cached for a minute. */
  sizeOf?: SizeOf;
  /** The running scheduler, notifier and metrics (serve); left out, those endpoints say monitoring does not run. */
  monitoring?: (MonitoringApi & { metrics: ServerMetrics; metricsToken: string | null }) | null;
  /** Validate every response against its documented schema (tests): a mismatch is a 500. */
  checkResponses?: boolean;
  /** Live events: how often the ledger is looked at, and the streams' heartbeat (tests shorten them). */
  live?: { pollMs?: number; heartbeatMs?: number };
  /** Serve the built console (dist/web) at `/`; null: `/` says it is not built; left out: no console. */
  consoleDir?: string | null;
  /** The embedded SSH gateway, for clients' instructions (GET /server). */
  ssh?: SshEndpoint | null;
  /** The key vault (serve opens it with the master passphrase when there is one); default: the data directory's, without one. */
  vault?: Vault;
  /** Retention policies (serve's service, which also runs them); left out: set and shown only, with the same vault. */
  retention?: RetentionService;
  /** Single sign-on (serve's config: the OpenID provider, the LDAP directory); left out: none. */
  sso?: SsoRuntime | null;
}

/** What route factories get. */
export interface ApiContext {
  store: ApiStore;
  authenticator: Authenticator;
  passwords: PasswordHasher;
  now: () => Date;
  secureCookies: boolean;
  sessionMaxMs: number;
  sizeOf: SizeOf;
  audits: AuditService;
  vault: VaultService;
  retention: Pick<RetentionService, 'show' | 'set' | 'remove'>;
  /** The unlocked key of a repository whose key the vault holds (for reading its archive list), else null. */
  repositoryKey: (repository: { readonly dirName: string }, repositoryPath: string) => BorgKey | null;
}

export interface ApiServer {
  app: FastifyInstance;
  routes: readonly ApiRoute[];
  listen(host: string, port: number): Promise<{ host: string; port: number; url: string }>;
  close(): Promise<void>;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export function createApiServer(deps: ApiDeps): ApiServer {
  const now = deps.now ?? (() => new Date());
  const sso = createSsoService(deps.store, deps.sso ?? { oidc: null, ldap: null });
  const authenticator = createAuthenticator({
    users: deps.store,
    auth: deps.store,
    passwords: deps.passwords,
    now,
    settings: deps.auth ?? {},
    passwordLoginsOnlyFor: () => sso.passwordLoginsOnlyFor(),
  });
  const vault = deps.vault ?? openVault(deps.store.paths.root);
  const ctx: ApiContext = {
    store: deps.store,
    authenticator,
    passwords: deps.passwords,
    now,
    secureCookies: Boolean(deps.tls),
    sessionMaxMs: deps.auth?.sessionMaxMs ?? 12 * 3600_000,
    sizeOf: deps.sizeOf ?? createRepositorySizer({ now }).sizeOf,
    audits: createAuditService(deps.store, deps.audit ?? {}),
    vault: createVaultService({ vault, repositoryPath: (d) => deps.store.paths.repository(d) }),
    retention: deps.retention ?? createRetentionService({ store: deps.store, vault, now }),
    repositoryKey: createRepositoryKeySource(vault),
  };
  const routes: ApiRoute[] = [
    ...sessionRoutes(ctx),
    ...userRoutes(ctx),
    ...ssoRoutes(ctx, sso),
    ...tokenRoutes(ctx),
    ...accountRoutes(ctx),
    ...repositoryRoutes(ctx),
    ...retentionRoutes(ctx),
    ...archiveRoutes(ctx),
    ...archiveCheckRoutes(ctx),
    ...browseAccessRoutes(ctx),
    ...browseRoutes(ctx),
    ...keyRoutes(ctx),
    ...grantRoutes(ctx),
    ...ledgerRoutes(ctx),
    ...auditRoutes(ctx),
    ...alertRoutes(ctx, deps.monitoring ?? null),
    ...serverRoutes(ctx, deps.ssh ?? null),
    ...pullRoutes(ctx),
    ...verifyRoutes(ctx),
  ];
  const liveHub = createLiveEvents({ store: deps.store, ...(deps.live?.pollMs && { pollMs: deps.live.pollMs }), onError: (err) => app.log.error({ err }, 'live events: reading the ledger failed') });
  const eventStreams = createEventStreams(ctx, liveHub, { ...(deps.live?.heartbeatMs && { heartbeatMs: deps.live.heartbeatMs }) });
  routes.push(...eventStreams.routes);

  const app = Fastify({
    ...(deps.tls ? { https: { cert: deps.tls.cert, key: deps.tls.key } } : {}),
    ...(deps.logger ? { loggerInstance: deps.logger } : { logger: false }),
    bodyLimit: BODY_LIMIT_BYTES,
    // Only the listed proxies: request.ip (the login throttle, console sessions, logs) and
    // request.protocol follow X-Forwarded-* when the connection comes from one of them.
    ...(deps.trustProxy?.length ? { trustProxy: [...deps.trustProxy] } : {}),
    // Keep-alive connections must not hold up shutdown.
    forceCloseConnections: true,
    // Requests arriving while the server closes are answered below, in our own error shape.
    return503OnClosing: false,
  } as Parameters<typeof Fastify>[0]) as unknown as FastifyInstance;

  let closing = false;
  // Open event streams end first, so closing never waits on a browser.
  app.addHook('preClose', async () => {
    closing = true;
    eventStreams.close('the server is shutting down');
  });
  app.addHook('onRequest', async (_request, reply) => {
    if (closing) {
      reply.header('connection', 'close');
      throw new BorgkeepError('BK_ERR_BUSY', 'the server is shutting down; try again in a moment');
    }
  });
  app.setErrorHandler((error, request, reply) => {
    const { status, body, internal } = toApiError(error);
    if (internal) request.log.error({ err: error, url: request.url, method: request.method }, 'internal error in an API request');
    void reply.code(status).header('cache-control', 'no-store').send(body);
  });
  const apiNotFound = (request: FastifyRequest, reply: FastifyReply) => {
    const path = request.url.split('?')[0];
    return reply.code(404).send({ code: 'BK_ERR_NOT_FOUND', message: `there is no API endpoint ${request.method} ${path}` });
  };
  app.setNotFoundHandler((request, reply) => void apiNotFound(request, reply));
  if (deps.consoleDir !== undefined) registerConsole(app, deps.consoleDir, apiNotFound);
  // GET answers carry an ETag; the console's If-None-Match gets a 304 without the body.
  registerConditionalGets(app, API_PREFIX);
  // API answers are personal: never cached, never content-sniffed.
  app.addHook('onSend', async (_request, reply, payload) => {
    reply.header('x-content-type-options', 'nosniff');
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
    return payload;
  });

  // Prometheus scrapes /metrics (not under /api/v1: that is where scrapers look), with the
  // metrics token when one is configured.
  const monitoring = deps.monitoring;
  if (monitoring) {
    app.get('/metrics', async (request, reply) => {
      if (!metricsAuthorized(monitoring.metricsToken, request.headers.authorization)) {
        return reply.code(401).header('www-authenticate', 'Bearer').send({ code: 'BK_ERR_UNAUTHENTICATED', message: 'the metrics need the metrics token: Authorization: Bearer TOKEN' });
      }
      return reply.header('content-type', monitoring.metrics.contentType).send(await monitoring.metrics.render());
    });
  }

  const openApi = buildOpenApiDocument(routes, API_PREFIX);
  app.get(`${API_PREFIX}/openapi.json`, async () => openApi);

  for (const route of routes) {
    app.route({
      method: route.method,
      url: `${API_PREFIX}${route.url}`,
      handler: async (request, reply) => {
        const principal = await authorize(route, request);
        const input = {
          params: parse('path', route.params, request.params, route.url),
          query: parse('query', route.query, request.query, route.url),
          body: route.body ? parse('body', route.body, request.body ?? undefined, route.url) : undefined,
        };
        const result = await route.handler({ ...input, principal, request, reply });
        if (reply.sent) return reply;
        const status = route.status ?? 200;
        if (status === 204 || result === undefined) return reply.code(204).send();
        if (deps.checkResponses && route.response) {
          const checked = route.response.safeParse(JSON.parse(result instanceof JsonText ? result.text : JSON.stringify(result)));
          if (!checked.success) {
            throw new Error(`response of ${route.method} ${route.url} does not match its schema: ${JSON.stringify(checked.error.issues[0])}`);
          }
        }
        if (result instanceof JsonText) return reply.code(status).type('application/json; charset=utf-8').send(result.text);
        return reply.code(status).send(result);
      },
    });
  }

  async function authorize(route: ApiRoute, request: FastifyRequest): Promise<Principal | null> {
    const header = request.headers.authorization;
    const cookieHeader = request.headers.cookie;
    const cookie = cookieHeader ? parseCookies(cookieHeader)[SESSION_COOKIE] : undefined;
    if (route.access === 'public') return null;
    const found = await authenticator.authenticate({ cookie, authorization: header });
    if (!found) throw new BorgkeepError('BK_ERR_UNAUTHENTICATED', 'log in first (POST /api/v1/session) or send an API token as Authorization: Bearer bk_...');
    const { principal } = found;
    if (principal.via === 'session' && !SAFE_METHODS.has(request.method)) {
      authenticator.checkCsrf(found.csrfToken!, header1(request.headers[CSRF_HEADER]));
    }
    if (principal.via === 'session' && principal.user.mustChangePassword && !route.allowedBeforePasswordChange) {
      throw new BorgkeepError('BK_ERR_DENIED', 'an admin reset your password: choose a new one first (POST /api/v1/me/password)');
    }
    if (route.sessionOnly && principal.via === 'token') {
      throw new BorgkeepError('BK_ERR_DENIED', 'an API token cannot do this; log in to the console instead');
    }
    if (route.access !== 'signed-in' && !roleAtLeast(principal.role, route.access)) {
      throw new BorgkeepError('BK_ERR_DENIED', `this needs the ${route.access} role; ${principal.via === 'token' ? 'this token acts as' : 'you are'} ${principal.role}`);
    }
    return principal;
  }

  return {
    app,
    routes,
    async listen(host, port) {
      await app.listen({ host, port });
      const address = app.server.address();
      const bound = typeof address === 'object' && address ? address.port : port;
      const shown = host.includes(':') ? `[${host}]` : host;
      return { host, port: bound, url: `${deps.tls ? 'https' : 'http'}://${shown}:${bound}` };
    },
    close: () => app.close(),
  };
}

function header1(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function parse<T>(part: InputPart, schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: any } } | undefined, value: unknown, url: string): T {
  if (!schema) return undefined as T;
  const result = schema.safeParse(value);
  if (!result.success) throw zodInputError(part, result.error, value, url);
  return result.data;
}

