// A real API server for tests: a fresh SQLite store in a temporary data directory, the real
// Fastify server listening on 127.0.0.1 with an OS-chosen port, argon2id at a low cost (tests
// only), a clock the test moves, and every response checked against its documented schema.
// Clients talk real HTTP (fetch) with a cookie jar of their own.

import type { FastifyBaseLogger } from 'fastify';
import type { AuditServiceDeps } from '../../src/audit/audit-service.js';
import { createApiServer, type ApiServer } from '../../src/api/api-server.js';
import { createPasswordHasher, type PasswordHasher } from '../../src/api/auth/passwords.js';
import type { AuthSettings } from '../../src/api/auth/authenticator.js';
import type { UserRole } from '../../src/store/user-store.js';
import { openTempStore, type TempStore } from '../support/temp-store.js';

export const TEST_ARGON2 = { memoryCost: 64, timeCost: 1, parallelism: 1 };
export const PASSWORD = 'correct horse battery';

export interface ApiResponse<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

export interface ApiClient {
  /** Sends JSON; adds the CSRF token and cookie this client holds. */
  call<T = any>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<ApiResponse<T>>;
  login(name: string, password?: string, totp?: string): Promise<ApiResponse>;
  cookie: string | null;
  csrf: string | null;
  bearer: string | null;
}

export interface ApiHarness {
  temp: TempStore;
  server: ApiServer;
  url: string;
  passwords: PasswordHasher;
  client(options?: { bearer?: string }): ApiClient;
  /** A user with a password, and a client logged in as them. */
  userClient(name: string, role: UserRole): Promise<ApiClient>;
  close(): Promise<void>;
}

export async function startApi(options: { auth?: Partial<AuthSettings>; audit?: Partial<AuditServiceDeps>; tls?: { cert: string; key: string }; logger?: FastifyBaseLogger } = {}): Promise<ApiHarness> {
  const temp = await openTempStore();
  temp.clock.set(new Date());
  const passwords = await createPasswordHasher(TEST_ARGON2);
  const server = createApiServer({
    store: temp.store,
    passwords,
    now: temp.clock.now,
    checkResponses: true,
    ...(options.auth && { auth: options.auth }),
    ...(options.audit && { audit: options.audit }),
    ...(options.tls && { tls: options.tls }),
    ...(options.logger && { logger: options.logger }),
  });
  const { url } = await server.listen('127.0.0.1', 0);

  const client = (opts: { bearer?: string } = {}): ApiClient => {
    const c: ApiClient = {
      cookie: null,
      csrf: null,
      bearer: opts.bearer ?? null,
      async call(method, path, body, headers = {}) {
        const h: Record<string, string> = { ...headers };
        if (body !== undefined) h['content-type'] = 'application/json';
        if (c.cookie) h.cookie = c.cookie;
        if (c.csrf && !('x-csrf-token' in headers)) h['x-csrf-token'] = c.csrf;
        if (c.bearer) h.authorization = `Bearer ${c.bearer}`;
        const response = await fetch(`${url}${path}`, { method, headers: h, ...(body !== undefined && { body: JSON.stringify(body) }) });
        const text = await response.text();
        const setCookie = response.headers.get('set-cookie');
        if (setCookie) {
          const value = /^bk_session=([^;]*)/.exec(setCookie)?.[1] ?? '';
          c.cookie = value === '' ? null : `bk_session=${value}`;
        }
        return { status: response.status, body: text === '' ? undefined : JSON.parse(text), headers: response.headers };
      },
      async login(name, password = PASSWORD, totp) {
        const r = await c.call('POST', '/api/v1/session', { name, password, ...(totp !== undefined && { totp }) });
        if (r.status === 200) c.csrf = r.body.csrfToken;
        return r;
      },
    };
    return c;
  };

  return {
    temp,
    server,
    url,
    passwords,
    client,
    async userClient(name, role) {
      await temp.store.addUser({ name, role, passwordHash: await passwords.hash(PASSWORD) });
      const c = client();
      const r = await c.login(name);
      if (r.status !== 200) throw new Error(`login of ${name} failed: ${JSON.stringify(r.body)}`);
      return c;
    },
    async close() {
      await server.close();
      await temp.cleanup();
    },
  };
}
