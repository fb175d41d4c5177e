// Who is calling the HTTP API, and with which role. Two ways in:
//  - a console session: POST /api/v1/session with name, password (and TOTP code) sets the
//    HttpOnly cookie `bk_session`; its CSRF token is derived from the session id, so it needs no
//    storage and is returned at login. State-changing requests with the cookie must carry it in
//    X-CSRF-Token.
//  - an API token: `Authorization: Bearer bk_...`, scoped to a role no higher than its user's,
//    optionally expiring. No CSRF token (browsers never send it by themselves).
// Session ids and tokens are stored as SHA-256 hashes only. Failed logins are counted per user
// name and per address (auth-throttle.ts, the SSH gateway's): over either limit, logins are
// refused before the password is even checked.
//
// Never: says whether a user exists, keeps a password or a token, accepts a code twice.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { BorgkeepError } from '../../errors.js';
import { createAuthThrottle, type AuthThrottle } from '../../gateway/auth-throttle.js';
import type { AuthStore } from '../../store/auth-store.js';
import type { RecoveryCodeStore } from '../../store/recovery-code-store.js';
import type { User, UserRole, UserStore } from '../../store/user-store.js';
import type { PasswordHasher } from './passwords.js';
import { hashRecoveryCode, isTotpCode, normaliseRecoveryCode } from './recovery-codes.js';
import { matchTotp } from './totp.js';

export const SESSION_COOKIE = 'bk_session';
export const CSRF_HEADER = 'x-csrf-token';
export const TOKEN_PREFIX = 'bk_';
const ROLE_RANK: Record<UserRole, number> = { viewer: 1, operator: 2, admin: 3 };

export interface AuthSettings {
  /** A console session ends this long after login, used or not. */
  sessionMaxMs: number;
  /** ... or after this long without a request. */
  sessionIdleMs: number;
  /** Failed logins per user name, and per address, within the window before logins are refused. */
  failuresPerUser: number;
  failuresPerAddress: number;
  failureWindowMs: number;
}

export const DEFAULT_AUTH_SETTINGS: AuthSettings = {
  sessionMaxMs: 12 * 3600_000,
  sessionIdleMs: 30 * 60_000,
  failuresPerUser: 5,
  failuresPerAddress: 20,
  failureWindowMs: 15 * 60_000,
};

/** The last-seen time and a token's last use are written at most this often (saves writes per request). */
const TOUCH_EVERY_MS = 60_000;

export interface Principal {
  user: User;
  /** The role this request acts with: the user's, or the lesser of token's and user's. */
  role: UserRole;
  via: 'session' | 'token';
  sessionId?: number;
  tokenId?: number;
  tokenName?: string;
}

export interface LoginResult {
  user: User;
  /** The cookie value; only the client keeps it. */
  sessionSecret: string;
  csrfToken: string;
  expiresAt: Date;
}

export interface Authenticator {
  login(input: { name: string; password: string; totp?: string | undefined; address: string }): Promise<LoginResult>;
  logout(principal: Principal): Promise<void>;
  /** The caller of a request, or null when it carries no credentials; throws on bad ones. */
  authenticate(input: { cookie?: string | undefined; authorization?: string | undefined }): Promise<{ principal: Principal; csrfToken?: string } | null>;
  /** The CSRF token of a session secret (what login returned). */
  csrfTokenFor(sessionSecret: string): string;
  checkCsrf(expected: string, given: string | undefined): void;
  /**
   * A console session for a user another source vouched for (single sign-on), counted against the
   * same failed-login limits: `verify` throws BK_ERR_UNAUTHENTICATED for a wrong login.
   */
  externalLogin(input: { name: string; address: string; verify: () => Promise<User> }): Promise<LoginResult>;
  /** A new API token (the secret, shown once) and what to store. */
  newToken(): { token: string; hash: string; prefix: string };
  /** Checks a TOTP code against a secret and claims its step (returned); throws one sentence when wrong. */
  verifyTotp(userId: number, secret: string, code: string | undefined): Promise<number>;
  /** A 6-digit code as verifyTotp, or else one of the user's recovery codes (used up by this call); throws one sentence when wrong. */
  verifySecondFactor(userId: number, secret: string, code: string | undefined): Promise<void>;
}

export interface AuthenticatorDeps {
  users: Pick<UserStore, 'findUserCredentials' | 'getUserCredentialsById' | 'claimTotpStep'> & Pick<RecoveryCodeStore, 'claimRecoveryCode'>;
  auth: Pick<AuthStore, 'createConsoleSession' | 'findConsoleSession' | 'touchConsoleSession' | 'deleteConsoleSession' | 'findApiToken' | 'touchApiToken'>;
  passwords: PasswordHasher;
  now: () => Date;
  settings?: Partial<AuthSettings>;
  /** When password logins are turned off: the one user (break-glass) who may still use one; null: all may. */
  passwordLoginsOnlyFor?: () => Promise<string | null>;
}

export const sha256Hex = (text: string): string => createHash('sha256').update(text).digest('hex');

export function roleAtLeast(role: UserRole, needed: UserRole): boolean {
  return ROLE_RANK[role] >= ROLE_RANK[needed];
}

export function lesserRole(a: UserRole, b: UserRole): UserRole {
  return ROLE_RANK[a] <= ROLE_RANK[b] ? a : b;
}

const unauthenticated = (message: string) => new BorgkeepError('BK_ERR_UNAUTHENTICATED', message);
const WRONG_LOGIN = 'wrong user name or password';

export function createAuthenticator(deps: AuthenticatorDeps): Authenticator {
  const settings = { ...DEFAULT_AUTH_SETTINGS, ...deps.settings };
  const clockMs = () => deps.now().getTime();
  const perUser: AuthThrottle = createAuthThrottle({ limit: settings.failuresPerUser, windowMs: settings.failureWindowMs, now: clockMs });
  const perAddress: AuthThrottle = createAuthThrottle({ limit: settings.failuresPerAddress, windowMs: settings.failureWindowMs, now: clockMs });
  // Unknown users get the same argon2 work as known ones, so timing does not tell them apart.
  let dummyHash: Promise<string> | undefined;
  const csrfTokenFor = (secret: string) => createHash('sha256').update(`csrf:${secret}`).digest('base64url');

  const verifyTotp = async (userId: number, secret: string, code: string | undefined): Promise<number> => {
    if (code === undefined || code === '') {
      throw new BorgkeepError('BK_ERR_TOTP_REQUIRED', 'this user has a second factor: give the 6-digit code from the authenticator app as totp');
    }
    const step = matchTotp(secret, code.trim(), deps.now());
    if (step === null) throw unauthenticated('the authenticator code is wrong or too old');
    if (!(await deps.users.claimTotpStep(userId, step))) throw unauthenticated('this authenticator code was already used; wait for the next one');
    return step;
  };

  const verifySecondFactor = async (userId: number, secret: string, code: string | undefined): Promise<void> => {
    if (code === undefined || code.trim() === '' || isTotpCode(code)) {
      await verifyTotp(userId, secret, code?.replace(/\s/g, ''));
      return;
    }
    const normalised = normaliseRecoveryCode(code);
    if (normalised === null) throw unauthenticated('give the 6-digit code from the authenticator app or one of your recovery codes');
    if (!(await deps.users.claimRecoveryCode(userId, hashRecoveryCode(normalised)))) {
      throw unauthenticated('this recovery code is wrong or was already used');
    }
  };

  const startSession = async (user: User, address: string): Promise<LoginResult> => {
    const sessionSecret = randomBytes(32).toString('base64url');
    const expiresAt = new Date(clockMs() + settings.sessionMaxMs);
    await deps.auth.createConsoleSession({ userId: user.id, idHash: sha256Hex(sessionSecret), address, expiresAt });
    return { user, sessionSecret, csrfToken: csrfTokenFor(sessionSecret), expiresAt };
  };

  return {
    async login({ name, password, totp, address }) {
      const userKey = name.toLowerCase();
      if (perUser.blocked(userKey) || perAddress.blocked(address)) {
        throw new BorgkeepError('BK_ERR_THROTTLED', 'too many failed logins for this user or from this address; try again in a few minutes');
      }
      // Decided on the name alone, before any password is looked at: it says nothing about who exists.
      const onlyFor = (await deps.passwordLoginsOnlyFor?.()) ?? null;
      if (onlyFor !== null && name !== onlyFor) {
        throw new BorgkeepError('BK_ERR_DENIED', 'password logins are turned off on this server; use single sign-on');
      }
      const fail = (error: BorgkeepError): never => {
        perUser.fail(userKey);
        perAddress.fail(address);
        throw error;
      };
      const found = await deps.users.findUserCredentials(name);
      if (!found || found.passwordHash === null) {
        dummyHash ??= deps.passwords.hash(randomBytes(16).toString('hex'));
        await deps.passwords.verify(await dummyHash, password);
        return fail(unauthenticated(WRONG_LOGIN));
      }
      if (!(await deps.passwords.verify(found.passwordHash, password))) return fail(unauthenticated(WRONG_LOGIN));
      if (found.user.totpEnabled && found.totpSecret !== null) {
        try {
          await verifySecondFactor(found.user.id, found.totpSecret, totp);
        } catch (error) {
          // Asking for the code is not a failure; a wrong code is.
          if (error instanceof BorgkeepError && error.code !== 'BK_ERR_TOTP_REQUIRED') fail(error);
          throw error;
        }
      }
      return startSession(found.user, address);
    },

    async externalLogin({ name, address, verify }) {
      const userKey = name.toLowerCase();
      if (perUser.blocked(userKey) || perAddress.blocked(address)) {
        throw new BorgkeepError('BK_ERR_THROTTLED', 'too many failed logins for this user or from this address; try again in a few minutes');
      }
      let user: User;
      try {
        user = await verify();
      } catch (error) {
        if (error instanceof BorgkeepError && error.code === 'BK_ERR_UNAUTHENTICATED') {
          perUser.fail(userKey);
          perAddress.fail(address);
        }
        throw error;
      }
      return startSession(user, address);
    },

    async logout(principal) {
      if (principal.sessionId !== undefined) await deps.auth.deleteConsoleSession(principal.sessionId);
    },

    async authenticate({ cookie, authorization }) {
      if (authorization !== undefined) {
        const m = /^Bearer\s+(\S+)$/i.exec(authorization.trim());
        if (!m || !m[1]!.startsWith(TOKEN_PREFIX)) throw unauthenticated("the Authorization header must be 'Bearer bk_...' with an API token");
        const token = await deps.auth.findApiToken(sha256Hex(m[1]!));
        if (!token) throw unauthenticated('this API token is not valid');
        if (token.revokedAt !== null) throw unauthenticated('this API token was revoked');
        const now = deps.now();
        if (token.expiresAt !== null && token.expiresAt.getTime() <= now.getTime()) {
          throw unauthenticated(`this API token expired at ${token.expiresAt.toISOString()}`);
        }
        const owner = await deps.users.getUserCredentialsById(token.userId);
        if (!owner) throw unauthenticated('this API token is not valid');
        if (token.lastUsedAt === null || now.getTime() - token.lastUsedAt.getTime() >= TOUCH_EVERY_MS) await deps.auth.touchApiToken(token.id, now);
        return {
          principal: { user: owner.user, role: lesserRole(token.role, owner.user.role), via: 'token', tokenId: token.id, tokenName: token.name },
        };
      }
      if (cookie === undefined || cookie === '') return null;
      const session = await deps.auth.findConsoleSession(sha256Hex(cookie));
      const now = deps.now();
      if (!session) throw unauthenticated('the console session has ended; log in again');
      const idle = now.getTime() - session.lastSeenAt.getTime() > settings.sessionIdleMs;
      if (idle || session.expiresAt.getTime() <= now.getTime()) {
        await deps.auth.deleteConsoleSession(session.id);
        throw unauthenticated(idle ? 'the console session ended after a time without use; log in again' : 'the console session has expired; log in again');
      }
      const owner = await deps.users.getUserCredentialsById(session.userId);
      if (!owner) throw unauthenticated('the console session has ended; log in again');
      if (now.getTime() - session.lastSeenAt.getTime() >= TOUCH_EVERY_MS) await deps.auth.touchConsoleSession(session.id, now);
      return { principal: { user: owner.user, role: owner.user.role, via: 'session', sessionId: session.id }, csrfToken: csrfTokenFor(cookie) };
    },

    csrfTokenFor,

    checkCsrf(expected, given) {
      const a = Buffer.from(expected);
      const b = Buffer.from(given ?? '');
      if (given === undefined || given === '') {
        throw new BorgkeepError('BK_ERR_CSRF', 'this request changes something and needs the X-CSRF-Token header that login returned');
      }
      if (a.length !== b.length || !timingSafeEqual(a, b)) throw new BorgkeepError('BK_ERR_CSRF', 'the X-CSRF-Token header does not match this console session');
    },

    newToken() {
      const token = `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
      return { token, hash: sha256Hex(token), prefix: token.slice(0, 10) };
    },

    verifyTotp,
    verifySecondFactor,
  };
}
