// Logging in and out of the console, and a user's own password and second factor (recovery
// codes: account-routes.ts). Never returns a password; a recovery code only at enrolment.

import { parse as parseCookies, serialize } from 'cookie';
import { z } from 'zod';
import { BorgkeepError, conflict, invalidInput } from '../../errors.js';
import type { ApiContext } from '../api-server.js';
import { SESSION_COOKIE } from '../auth/authenticator.js';
import { checkPassword, MAX_PASSWORD_LENGTH } from '../auth/passwords.js';
import { generateTotpSecret, otpauthUrl } from '../auth/totp.js';
import { newRecoveryCodes } from './account-routes.js';
import { userJson } from '../presenters.js';
import { defineRoute } from '../route.js';
import { name, time, userSchema } from '../schemas.js';

const tag = 'session';
const password = z.string().min(1).max(MAX_PASSWORD_LENGTH);
const code = z.string().max(32).describe('the 6-digit code of the authenticator app (at login also: a recovery code)');

export function sessionRoutes(ctx: ApiContext) {
  // Secure over our own TLS, or when a trusted proxy (--trust-proxy) says the browser used HTTPS:
  // request.protocol reads X-Forwarded-Proto from the listed proxies only.
  const cookie = (value: string, maxAgeSeconds: number, request: { protocol: string }) =>
    serialize(SESSION_COOKIE, value, { httpOnly: true, sameSite: 'strict', secure: ctx.secureCookies || request.protocol === 'https', path: '/api', maxAge: maxAgeSeconds });

  return [
    defineRoute({
      method: 'POST',
      url: '/session',
      tag,
      summary: 'log in: sets the session cookie, returns the CSRF token',
      access: 'public',
      allowedBeforePasswordChange: true,
      body: z.object({ name, password, totp: code.optional() }).strict(),
      response: z.object({ user: userSchema, csrfToken: z.string(), expiresAt: time }),
      async handler({ body, request, reply }) {
        const result = await ctx.authenticator.login({ name: body.name, password: body.password, totp: body.totp, address: request.ip });
        reply.header('set-cookie', cookie(result.sessionSecret, Math.floor(ctx.sessionMaxMs / 1000), request));
        return { user: userJson(result.user), csrfToken: result.csrfToken, expiresAt: result.expiresAt };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/session',
      tag,
      summary: 'who is signed in (and, for a console session, its CSRF token again)',
      access: 'signed-in',
      allowedBeforePasswordChange: true,
      response: z.object({ user: userSchema, role: userSchema.shape.role, via: z.enum(['session', 'token']), csrfToken: z.string().optional() }),
      async handler({ principal, request }) {
        const p = principal!;
        const secret = parseCookies(request.headers.cookie ?? '')[SESSION_COOKIE];
        return { user: userJson(p.user), role: p.role, via: p.via, ...(p.via === 'session' && secret && { csrfToken: ctx.authenticator.csrfTokenFor(secret) }) };
      },
    }),
    defineRoute({
      method: 'DELETE',
      url: '/session',
      tag,
      summary: 'log out',
      access: 'signed-in',
      allowedBeforePasswordChange: true,
      sessionOnly: true,
      status: 204,
      async handler({ principal, request, reply }) {
        await ctx.authenticator.logout(principal!);
        reply.header('set-cookie', cookie('', 0, request));
        return undefined;
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/me/password',
      tag,
      summary: 'change your own password (ends your other console sessions too)',
      access: 'signed-in',
      sessionOnly: true,
      allowedBeforePasswordChange: true,
      status: 204,
      body: z.object({ currentPassword: password, newPassword: password }).strict(),
      async handler({ body, principal }) {
        const me = (await ctx.store.getUserCredentialsById(principal!.user.id))!;
        if (me.passwordHash === null || !(await ctx.passwords.verify(me.passwordHash, body.currentPassword))) {
          throw new BorgkeepError('BK_ERR_DENIED', 'the current password is wrong');
        }
        const hash = await ctx.passwords.hash(checkPassword(body.newPassword));
        // This session stays; the others end (a stolen cookie dies with the old password).
        await ctx.store.setPasswordHash(me.user.name, hash, { ...(principal!.sessionId !== undefined && { keepSessionId: principal!.sessionId }) });
        return undefined;
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/me/totp',
      tag,
      summary: 'start enrolling a second factor: returns the secret to put in an authenticator app',
      access: 'signed-in',
      sessionOnly: true,
      response: z.object({ secret: z.string(), otpauthUrl: z.string() }),
      async handler({ principal }) {
        const user = principal!.user;
        if (user.totpEnabled) throw conflict('a second factor is already on; turn it off first to enrol a new one');
        const secret = generateTotpSecret();
        await ctx.store.setTotp(user.id, { secret, enabled: false });
        return { secret, otpauthUrl: otpauthUrl(secret, user.name) };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/me/totp/confirm',
      tag,
      summary: 'turn the second factor on with a first code from the app; returns the recovery codes, shown this once',
      access: 'signed-in',
      sessionOnly: true,
      body: z.object({ code }).strict(),
      response: z.object({ user: userSchema, recoveryCodes: z.array(z.string()).describe('one-use codes for when the app is lost; shown this once') }),
      async handler({ body, principal }) {
        const me = (await ctx.store.getUserCredentialsById(principal!.user.id))!;
        if (me.user.totpEnabled) throw conflict('the second factor is already on');
        if (me.totpSecret === null) throw invalidInput('start the enrolment first (POST /api/v1/me/totp)');
        const step = await ctx.authenticator.verifyTotp(me.user.id, me.totpSecret, body.code);
        await ctx.store.setTotp(me.user.id, { secret: me.totpSecret, enabled: true });
        // Keep the step just used: the same code cannot log in right after.
        await ctx.store.claimTotpStep(me.user.id, step);
        const recoveryCodes = await newRecoveryCodes(ctx, me.user.id);
        return { user: userJson(await ctx.store.getUser(me.user.name)), recoveryCodes };
      },
    }),
    defineRoute({
      method: 'DELETE',
      url: '/me/totp',
      tag,
      summary: 'turn the second factor off (needs your password, or a current code)',
      access: 'signed-in',
      sessionOnly: true,
      status: 204,
      body: z.object({ password: password.optional(), code: code.optional() }).strict(),
      async handler({ body, principal }) {
        const me = (await ctx.store.getUserCredentialsById(principal!.user.id))!;
        if (!me.user.totpEnabled || me.totpSecret === null) throw conflict('the second factor is not on');
        if (body.password !== undefined) {
          if (me.passwordHash === null || !(await ctx.passwords.verify(me.passwordHash, body.password))) throw new BorgkeepError('BK_ERR_DENIED', 'the current password is wrong');
        } else if (body.code !== undefined) {
          await ctx.authenticator.verifyTotp(me.user.id, me.totpSecret, body.code);
        } else {
          throw invalidInput('give your password to turn the second factor off');
        }
        await ctx.store.setTotp(me.user.id, { secret: null, enabled: false });
        return undefined;
      },
    }),
  ];
}
