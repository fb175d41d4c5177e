// Single sign-on: what the login page offers (public), the OpenID Connect redirect and callback,
// the LDAP login, and the admin setting that turns password logins off for all but a
// break-glass account. The callback ends in a redirect to the console (`/`), with the reason in
// `?signon_error=` when the sign-on was refused, since a browser follows it, not the console's code.

import { parse as parseCookies, serialize } from 'cookie';
import { z } from 'zod';
import { BorgkeepError, isBorgkeepError } from '../../errors.js';
import type { ApiContext } from '../api-server.js';
import { SESSION_COOKIE, type LoginResult } from '../auth/authenticator.js';
import { MAX_PASSWORD_LENGTH } from '../auth/passwords.js';
import { userJson } from '../presenters.js';
import { defineRoute } from '../route.js';
import { time, userSchema } from '../schemas.js';
import { SSO_STATE_COOKIE } from '../sso/oidc-login.js';
import type { SsoService } from '../sso/sso-service.js';

const tag = 'single sign-on';
const OIDC_PATH = '/api/v1/sso/oidc';

export function ssoRoutes(ctx: ApiContext, sso: SsoService) {
  // Secure over our own TLS or HTTPS at a trusted proxy (session-routes.ts says why).
  const secure = (request: { protocol: string }) => ctx.secureCookies || request.protocol === 'https';
  const sessionCookie = (result: LoginResult, request: { protocol: string }) =>
    serialize(SESSION_COOKIE, result.sessionSecret, { httpOnly: true, sameSite: 'strict', secure: secure(request), path: '/api', maxAge: Math.floor(ctx.sessionMaxMs / 1000) });
  // Lax: the provider sends the browser back with a cross-site redirect, which must carry it.
  const stateCookie = (value: string, maxAge: number, request: { protocol: string }) => serialize(SSO_STATE_COOKIE, value, { httpOnly: true, sameSite: 'lax', secure: secure(request), path: OIDC_PATH, maxAge });
  const oidc = () => {
    if (!sso.runtime.oidc) throw new BorgkeepError('BK_ERR_NOT_FOUND', 'OpenID Connect sign-on is not set up on this server (sso.oidc in the config file)');
    return sso.runtime.oidc;
  };
  const ldap = () => {
    if (!sso.runtime.ldap) throw new BorgkeepError('BK_ERR_NOT_FOUND', 'LDAP sign-on is not set up on this server (sso.ldap in the config file)');
    return sso.runtime.ldap;
  };

  return [
    defineRoute({
      method: 'GET',
      url: '/sso',
      tag,
      summary: 'the ways to log in that the login page offers',
      access: 'public',
      response: z.object({
        oidc: z.object({ label: z.string(), startUrl: z.string() }).nullable(),
        ldap: z.object({ label: z.string() }).nullable(),
        passwordLogins: z.enum(['all', 'break-glass']).describe('break-glass: password logins are off except for one account'),
      }),
      handler: async () => ({
        oidc: sso.runtime.oidc ? { label: sso.runtime.oidc.login.label, startUrl: `${OIDC_PATH}/start` } : null,
        ldap: sso.runtime.ldap ? { label: sso.runtime.ldap.login.label } : null,
        passwordLogins: (await sso.passwordLoginsOnlyFor()) === null ? ('all' as const) : ('break-glass' as const),
      }),
    }),
    defineRoute({
      method: 'GET',
      url: '/sso/oidc/start',
      tag,
      summary: 'start an OpenID Connect sign-on: redirects to the provider (PKCE, state and nonce)',
      access: 'public',
      async handler({ request, reply }) {
        const { authorizationUrl, cookie } = await oidc().login.start();
        reply.header('set-cookie', stateCookie(cookie, 600, request));
        return reply.redirect(authorizationUrl, 302);
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/sso/oidc/callback',
      tag,
      summary: "the provider's redirect back: logs in and redirects to the console (with ?signon_error= when refused)",
      access: 'public',
      async handler({ request, reply }) {
        const config = oidc();
        const query = request.url.includes('?') ? request.url.slice(request.url.indexOf('?') + 1) : '';
        const started = parseCookies(request.headers.cookie ?? '')[SSO_STATE_COOKIE];
        const cookies = [stateCookie('', 0, request)];
        try {
          const identity = await config.login.finish(query, started);
          const result = await ctx.authenticator.externalLogin({
            name: identity.name,
            address: request.ip,
            verify: () => sso.signOn({ source: 'oidc', externalId: identity.subject, name: identity.name, values: identity.values }),
          });
          request.log.info({ event: 'sign-on', source: 'oidc', user: result.user.name, role: result.user.role }, 'OpenID Connect sign-on');
          cookies.push(sessionCookie(result, request));
          reply.header('set-cookie', cookies);
          return reply.redirect('/', 302);
        } catch (error) {
          if (!isBorgkeepError(error) || error.code === 'BK_ERR_INTERNAL') request.log.error({ err: error }, 'OpenID Connect sign-on failed');
          const message = isBorgkeepError(error) ? error.message : 'the sign-on failed inside the server; the log says why';
          reply.header('set-cookie', cookies);
          return reply.redirect(`/?signon_error=${encodeURIComponent(message)}`, 302);
        }
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/sso/ldap/session',
      tag,
      summary: 'log in with the LDAP directory: sets the session cookie, returns the CSRF token',
      access: 'public',
      body: z.object({ name: z.string().max(256), password: z.string().max(MAX_PASSWORD_LENGTH) }).strict(),
      response: z.object({ user: userSchema, csrfToken: z.string(), expiresAt: time }),
      async handler({ body, request, reply }) {
        const config = ldap();
        const result = await ctx.authenticator.externalLogin({
          name: body.name,
          address: request.ip,
          async verify() {
            const identity = await config.login.authenticate(body.name, body.password);
            return sso.signOn({ source: 'ldap', externalId: identity.dn, name: identity.name, values: identity.groups });
          },
        });
        request.log.info({ event: 'sign-on', source: 'ldap', user: result.user.name, role: result.user.role }, 'LDAP sign-on');
        reply.header('set-cookie', sessionCookie(result, request));
        return { user: userJson(result.user), csrfToken: result.csrfToken, expiresAt: result.expiresAt };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/sso/password-logins',
      tag,
      summary: 'whether password logins are on, or off for all but a break-glass account',
      access: 'admin',
      response: z.object({ onlyFor: z.string().nullable().describe('the break-glass account; null: every local user may log in with a password') }),
      handler: async () => ({ onlyFor: await sso.passwordLoginsOnlyFor() }),
    }),
    defineRoute({
      method: 'PUT',
      url: '/sso/password-logins',
      tag,
      summary: 'turn password logins off for all but one local admin (break-glass), or on again; ends the other local users\' console sessions',
      access: 'admin',
      body: z.object({ onlyFor: z.string().max(64).nullable() }).strict(),
      response: z.object({ onlyFor: z.string().nullable(), endedSessions: z.number() }),
      async handler({ body }) {
        const endedSessions = await sso.setPasswordLogins(body.onlyFor);
        return { onlyFor: body.onlyFor, endedSessions };
      },
    }),
  ];
}
