// What the single sign-on tests share: a real OpenID provider (oidc-provider 8 on a loopback
// port, with one confidential client for borgkeep and accounts whose claims the test sets), a
// free port for `borgkeep serve` (the provider must know the redirect URL before serve starts),
// a borgkeep config file whose secrets are in files, and a cookie jar for following redirects
// with fetch. The provider's own login form (its dev interactions) accepts any account id as
// the login; consent is skipped (a first-party client), so a sign-on is one form.

import { createServer, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Provider from 'oidc-provider';

export const CLIENT_ID = 'borgkeep-console';
export const CLIENT_SECRET = 'client-secret-that-must-never-be-logged-7f3a';

export interface AccountClaims {
  preferred_username: string;
  groups: string[];
}

export interface OidcFixture {
  issuer: string;
  /** Claims per account id: the test changes them between sign-ons (a removed group). */
  accounts: Map<string, AccountClaims>;
  close(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export async function startOidcProvider(redirectUri: string): Promise<OidcFixture> {
  const accounts = new Map<string, AccountClaims>();
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        redirect_uris: [redirectUri],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    claims: { openid: ['sub'], profile: ['preferred_username'], groups: ['groups'] },
    scopes: ['openid', 'profile', 'groups'],
    pkce: { required: () => true },
    cookies: { keys: ['test-cookie-key-0123456789'] },
    ttl: { Interaction: 600, Grant: 600, Session: 600, AccessToken: 600, IdToken: 600, AuthorizationCode: 60 },
    features: { devInteractions: { enabled: true } },
    async findAccount(_ctx: unknown, id: string) {
      return { accountId: id, claims: async () => ({ sub: id, ...accounts.get(id) }) };
    },
    // A first-party client: the grant exists already, so no consent page.
    async loadExistingGrant(ctx: any) {
      const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
      grant.addOIDCScope('openid profile groups');
      await grant.save();
      return grant;
    },
  });
  // Its warnings about the development-only interactions and keys are expected here.
  provider.on('server_error', (_ctx: unknown, err: Error) => console.error('oidc-provider:', err));
  server.on('request', provider.callback());
  return {
    issuer,
    accounts,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export interface BorgkeepSsoConfig {
  dir: string;
  publicUrl: string;
  oidc?: { issuer: string; roles: Record<string, string> };
  ldap?: { url: string; bindDn: string; bindPassword: string; userBase: string; userFilter: string; groupBase: string; roles: Record<string, string> };
}

/** Writes the secrets into files and the config file; returns its path. */
export function writeSsoConfig(c: BorgkeepSsoConfig): string {
  const sso: Record<string, unknown> = {};
  if (c.oidc) {
    writeFileSync(join(c.dir, 'oidc-secret'), `${CLIENT_SECRET}\n`, { mode: 0o600 });
    sso.oidc = { issuer: c.oidc.issuer, clientId: CLIENT_ID, clientSecretFile: join(c.dir, 'oidc-secret'), label: 'Test IdP', scopes: 'openid profile groups', roles: c.oidc.roles };
  }
  if (c.ldap) {
    const { bindPassword, ...rest } = c.ldap;
    writeFileSync(join(c.dir, 'ldap-bind-password'), `${bindPassword}\n`, { mode: 0o600 });
    sso.ldap = { ...rest, bindPasswordFile: join(c.dir, 'ldap-bind-password'), label: 'Company directory' };
  }
  const file = join(c.dir, 'borgkeep-sso.json');
  writeFileSync(file, JSON.stringify({ publicUrl: c.publicUrl, sso }, null, 2));
  return file;
}

/** fetch with cookies kept per host:port and redirects followed by hand (so each hop's cookies count). */
export function cookieFetch() {
  const jar = new Map<string, Map<string, string>>();
  const hostOf = (url: string) => new URL(url).host;
  const cookieHeader = (url: string) => [...(jar.get(hostOf(url)) ?? new Map()).entries()].map(([k, v]) => `${k}=${v}`).join('; ');
  const keep = (url: string, response: Response) => {
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      const cookies = jar.get(hostOf(url)) ?? new Map<string, string>();
      if (value === '' || /max-age=0/i.test(line) || /expires=Thu, 01 Jan 1970/i.test(line)) cookies.delete(name);
      else cookies.set(name, value);
      jar.set(hostOf(url), cookies);
    }
  };
  /** One request (no redirect followed); returns the response and the absolute Location, if any. */
  const step = async (url: string, init: RequestInit = {}) => {
    const headers = new Headers(init.headers);
    const c = cookieHeader(url);
    if (c) headers.set('cookie', c);
    const response = await fetch(url, { ...init, headers, redirect: 'manual' });
    keep(url, response);
    const location = response.headers.get('location');
    return { response, location: location === null ? null : new URL(location, url).href };
  };
  /** Follows redirects (GET) until a page that is not one; returns every URL visited and the last response. */
  const follow = async (url: string, init: RequestInit = {}) => {
    const visited = [url];
    let r = await step(url, init);
    while (r.location !== null && visited.length < 20) {
      visited.push(r.location);
      r = await step(r.location);
    }
    return { response: r.response, visited };
  };
  return { step, follow, cookie: (url: string, name: string) => jar.get(hostOf(url))?.get(name) };
}
