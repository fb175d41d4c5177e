// OpenID Connect sign-on with openid-client: the authorization-code flow with PKCE (S256), a
// state and a nonce, all three kept server-side for ten minutes under a random cookie value
// (`bk_sso`), never in the URL the provider sees beyond what the protocol sends. The provider's
// metadata is read at the first sign-on (not at start, so a provider that is down does not stop
// `borgkeep serve`), and read again after a failure.
//
// Never: logs or returns the client secret or a token; accepts a callback without the state,
// code verifier and nonce it started with; uses plain http except to a loopback provider.

import { randomBytes } from 'node:crypto';
import { BorgkeepError } from '../../errors.js';
import type { OidcConfig } from './sso-config.js';
import { claimValues } from './role-mapping.js';

export const SSO_STATE_COOKIE = 'bk_sso';
const PENDING_MS = 10 * 60_000;
/** Started sign-ons kept at once; the oldest goes first (a flood of starts cannot grow memory). */
const MAX_PENDING = 1000;

export interface OidcIdentity {
  subject: string;
  /** The value of the name claim (or the subject when the provider sends none). */
  name: string;
  /** The role claim's values. */
  values: string[];
}

export interface OidcLogin {
  readonly label: string;
  readonly redirectUri: string;
  /** Where to send the browser, and the cookie value that ties the callback to this start. */
  start(): Promise<{ authorizationUrl: string; cookie: string }>;
  /** The identity of a callback (its query string), checked against what `cookie` started. */
  finish(query: string, cookie: string | undefined): Promise<OidcIdentity>;
}

interface Pending {
  verifier: string;
  state: string;
  nonce: string;
  expires: number;
}

const failed = (message: string) => new BorgkeepError('BK_ERR_UNAUTHENTICATED', message);

export function createOidcLogin(config: OidcConfig & { clientSecret: string }, redirectUri: string, now: () => number = Date.now): OidcLogin {
  const pending = new Map<string, Pending>();
  let discovered: Promise<import('openid-client').Configuration> | null = null;
  const lib = () => import('openid-client');

  const configuration = () => {
    discovered ??= (async () => {
      const client = await lib();
      const issuer = new URL(config.issuer);
      return client.discovery(issuer, config.clientId, undefined, client.ClientSecretBasic(config.clientSecret), {
        ...(issuer.protocol === 'http:' && { execute: [client.allowInsecureRequests] }),
        timeout: 10,
      });
    })();
    // A provider that was down is asked again at the next sign-on.
    discovered.catch(() => (discovered = null));
    return discovered;
  };

  return {
    label: config.label,
    redirectUri,

    async start() {
      let server;
      try {
        server = await configuration();
      } catch (error) {
        throw new BorgkeepError('BK_ERR_INTERNAL', `the OpenID provider ${config.issuer} cannot be reached or sent no valid metadata: ${(error as Error).message}`);
      }
      const client = await lib();
      const verifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const nonce = client.randomNonce();
      const url = client.buildAuthorizationUrl(server, {
        redirect_uri: redirectUri,
        scope: config.scopes,
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state,
        nonce,
      });
      const at = now();
      for (const [key, p] of pending) if (p.expires <= at) pending.delete(key);
      while (pending.size >= MAX_PENDING) pending.delete(pending.keys().next().value!);
      const cookie = randomBytes(24).toString('base64url');
      pending.set(cookie, { verifier, state, nonce, expires: at + PENDING_MS });
      return { authorizationUrl: url.href, cookie };
    },

    async finish(query, cookie) {
      const started = cookie === undefined ? undefined : pending.get(cookie);
      if (cookie !== undefined) pending.delete(cookie);
      if (!started || started.expires <= now()) throw failed('this sign-on was not started here or took longer than ten minutes; start it again');
      const params = new URLSearchParams(query);
      if (params.has('error')) {
        throw failed(`the OpenID provider refused the sign-on: ${params.get('error_description') ?? params.get('error')}`);
      }
      const client = await lib();
      const server = await configuration();
      let tokens;
      try {
        tokens = await client.authorizationCodeGrant(server, new URL(`${redirectUri}?${params.toString()}`), {
          pkceCodeVerifier: started.verifier,
          expectedState: started.state,
          expectedNonce: started.nonce,
          idTokenExpected: true,
        });
      } catch (error) {
        throw failed(`the sign-on could not be completed with the OpenID provider: ${(error as Error).message}`);
      }
      const idClaims = tokens.claims()!;
      // Many providers put groups in the userinfo only; the ID token's subject must match it.
      let info: Record<string, unknown> = {};
      try {
        info = await client.fetchUserInfo(server, tokens.access_token, idClaims.sub);
      } catch {
        info = {};
      }
      const claims: Record<string, unknown> = { ...info, ...idClaims };
      const rawName = claims[config.nameClaim];
      return {
        subject: idClaims.sub,
        name: typeof rawName === 'string' && rawName !== '' ? rawName : idClaims.sub,
        values: claimValues(claims[config.claim] ?? info[config.claim]),
      };
    },
  };
}
