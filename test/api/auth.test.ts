// Logging in over real HTTP: cookie attributes, CSRF, throttling, session expiry and idle time,
// API tokens (scope, expiry, revocation), TOTP. A real store, a moved clock, no mocks.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { totpCode } from '../../src/api/auth/totp.js';
import { PASSWORD, startApi, type ApiHarness } from './api-harness.js';

let h: ApiHarness;
beforeEach(async () => {
  h = await startApi({ auth: { failuresPerUser: 3, failuresPerAddress: 5, failureWindowMs: 60_000, sessionIdleMs: 10 * 60_000, sessionMaxMs: 3600_000 } });
});
afterEach(() => h.close());

const oneSentence = (body: { code: string; message: string }) => {
  expect(Object.keys(body).sort()).toEqual(['code', 'message']);
  expect(body.message).not.toMatch(/\n|at .*\.ts|\/tmp\//);
};

describe('console sessions', () => {
  it('logs in with an HttpOnly SameSite=Strict cookie (not Secure over plain HTTP), reads, logs out', async () => {
    const ann = await h.userClient('ann', 'admin');
    const login = await h.client().login('ann');
    const setCookie = login.headers.get('set-cookie')!;
    expect(setCookie).toMatch(/^bk_session=[A-Za-z0-9_-]{43}; Max-Age=3600; Path=\/api; HttpOnly; SameSite=Strict$/);
    expect(login.body).toMatchObject({ user: { name: 'ann', role: 'admin', hasPassword: true, totpEnabled: false }, csrfToken: expect.any(String) });

    const me = await ann.call('GET', '/api/v1/session');
    expect(me.body).toMatchObject({ user: { name: 'ann' }, role: 'admin', via: 'session', csrfToken: ann.csrf });
    expect((await ann.call('DELETE', '/api/v1/session')).status).toBe(204);
    expect(ann.cookie).toBeNull(); // the server cleared it
    const after = await ann.call('GET', '/api/v1/repositories');
    expect(after.status).toBe(401);
    expect(after.body.code).toBe('BK_ERR_UNAUTHENTICATED');
  });

  it('refuses without credentials and with a stolen-looking cookie, as one sentence', async () => {
    const anonymous = await h.client().call('GET', '/api/v1/repositories');
    expect(anonymous.status).toBe(401);
    oneSentence(anonymous.body);
    const forged = h.client();
    forged.cookie = 'bk_session=AAAA';
    expect((await forged.call('GET', '/api/v1/repositories')).body).toEqual({ code: 'BK_ERR_UNAUTHENTICATED', message: 'the console session has ended; log in again' });
  });

  it('says the same for an unknown user and a wrong password', async () => {
    await h.userClient('ann', 'admin');
    const unknown = await h.client().login('nobody', PASSWORD);
    const wrong = await h.client().login('ann', 'not the password');
    expect(unknown.status).toBe(401);
    expect(unknown.body).toEqual(wrong.body);
    expect(wrong.body).toEqual({ code: 'BK_ERR_UNAUTHENTICATED', message: 'wrong user name or password' });
  });

  it('ends a session after its idle time and after its maximum age', async () => {
    const ann = await h.userClient('ann', 'admin');
    h.temp.clock.advance(9 * 60_000);
    expect((await ann.call('GET', '/api/v1/repositories')).status).toBe(200); // use moves the idle clock
    h.temp.clock.advance(9 * 60_000);
    expect((await ann.call('GET', '/api/v1/repositories')).status).toBe(200);
    h.temp.clock.advance(11 * 60_000);
    expect((await ann.call('GET', '/api/v1/repositories')).body.message).toBe('the console session ended after a time without use; log in again');

    const again = h.client();
    await again.login('ann');
    for (let i = 0; i < 6; i++) {
      h.temp.clock.advance(9 * 60_000);
      expect((await again.call('GET', '/api/v1/repositories')).status).toBe(200);
    }
    h.temp.clock.advance(7 * 60_000); // 61 minutes after login, 7 idle
    expect((await again.call('GET', '/api/v1/repositories')).body.message).toBe('the console session has expired; log in again');
  });
});

describe('CSRF', () => {
  it('refuses a state change by cookie without the token, or with a wrong one; reads need none', async () => {
    const ann = await h.userClient('ann', 'admin');
    const missing = await ann.call('POST', '/api/v1/repositories', { name: 'web' }, { 'x-csrf-token': '' });
    expect(missing.status).toBe(403);
    expect(missing.body).toEqual({ code: 'BK_ERR_CSRF', message: 'this request changes something and needs the X-CSRF-Token header that login returned' });
    const wrong = await ann.call('POST', '/api/v1/repositories', { name: 'web' }, { 'x-csrf-token': 'x'.repeat(43) });
    expect(wrong.body.code).toBe('BK_ERR_CSRF');
    const otherSession = h.client();
    await otherSession.login('ann');
    expect((await ann.call('DELETE', '/api/v1/session', undefined, { 'x-csrf-token': otherSession.csrf! })).body.code).toBe('BK_ERR_CSRF');
    expect((await h.temp.store.listRepositories()).length).toBe(0);
    expect((await ann.call('GET', '/api/v1/repositories', undefined, { 'x-csrf-token': '' })).status).toBe(200);
    expect((await ann.call('POST', '/api/v1/repositories', { name: 'web' })).status).toBe(201);
  });

  it('needs no CSRF token with an API token', async () => {
    const ann = await h.userClient('ann', 'admin');
    const { token } = (await ann.call('POST', '/api/v1/tokens', { name: 'ci' })).body;
    expect((await h.client({ bearer: token }).call('POST', '/api/v1/repositories', { name: 'web' })).status).toBe(201);
  });
});

describe('login throttling', () => {
  it('refuses a user after 3 failures in the window, even with the right password, and lets them in after', async () => {
    await h.userClient('ann', 'admin');
    for (let i = 0; i < 3; i++) expect((await h.client().login('ann', 'wrong password')).status).toBe(401);
    const blocked = await h.client().login('ann');
    expect(blocked.status).toBe(429);
    expect(blocked.body).toEqual({ code: 'BK_ERR_THROTTLED', message: 'too many failed logins for this user or from this address; try again in a few minutes' });
    h.temp.clock.advance(61_000);
    expect((await h.client().login('ann')).status).toBe(200);
  });

  it('refuses an address after 5 failures over any user names', async () => {
    await h.userClient('ann', 'admin');
    for (const name of ['a1', 'a2', 'a3', 'a4', 'a5']) expect((await h.client().login(name, 'wrong password')).status).toBe(401);
    expect((await h.client().login('ann')).status).toBe(429);
  });
});

describe('API tokens', () => {
  it('is shown once, stored hashed, acts with its scope, expires and can be revoked', async () => {
    const op = await h.userClient('olga', 'operator');
    const created = await op.call('POST', '/api/v1/tokens', { name: 'ci', role: 'viewer', expiresAt: new Date(h.temp.clock.now().getTime() + 3600_000).toISOString() });
    expect(created.status).toBe(201);
    const token: string = created.body.token;
    expect(token).toMatch(/^bk_[A-Za-z0-9_-]{43}$/);
    expect(created.body.apiToken).toMatchObject({ name: 'ci', role: 'viewer', user: 'olga', prefix: token.slice(0, 10) });
    const listed = await op.call('GET', '/api/v1/tokens');
    expect(JSON.stringify(listed.body)).not.toContain(token);

    const bot = h.client({ bearer: token });
    expect((await bot.call('GET', '/api/v1/repositories')).status).toBe(200);
    const refused = await bot.call('POST', '/api/v1/repositories', { name: 'web' });
    expect(refused.status).toBe(403);
    expect(refused.body).toEqual({ code: 'BK_ERR_DENIED', message: 'this needs the operator role; this token acts as viewer' });
    expect((await bot.call('POST', '/api/v1/tokens', { name: 'more' })).body.message).toBe('an API token cannot do this; log in to the console instead');

    h.temp.clock.advance(3600_000);
    const expired = await bot.call('GET', '/api/v1/repositories');
    expect(expired.status).toBe(401);
    expect(expired.body.message).toMatch(/^this API token expired at \d{4}-/);
    await op.login('olga'); // the console session ended with the hour too

    const second = (await op.call('POST', '/api/v1/tokens', { name: 'ci2' })).body;
    expect(second.apiToken.role).toBe('operator');
    expect((await op.call('DELETE', `/api/v1/tokens/${second.apiToken.id}`)).body.apiToken.revokedAt).not.toBeNull();
    expect((await h.client({ bearer: second.token }).call('GET', '/api/v1/keys')).body.message).toBe('this API token was revoked');
  });

  it('cannot be scoped above its creator, and follows the creator down when the role is lowered', async () => {
    const admin = await h.userClient('ann', 'admin');
    const viewer = await h.userClient('vic', 'viewer');
    const above = await viewer.call('POST', '/api/v1/tokens', { name: 'x', role: 'operator' });
    expect(above.status).toBe(403);
    expect(above.body.message).toBe('a token cannot have a higher role than its creator (viewer)');
    await h.userClient('olga', 'operator');
    const olga = h.client();
    await olga.login('olga');
    const { token } = (await olga.call('POST', '/api/v1/tokens', { name: 'ops' })).body;
    expect((await h.client({ bearer: token }).call('POST', '/api/v1/repositories', { name: 'r1' })).status).toBe(201);
    await admin.call('PATCH', '/api/v1/users/olga', { role: 'viewer' });
    expect((await h.client({ bearer: token }).call('POST', '/api/v1/repositories', { name: 'r2' })).status).toBe(403);
  });

  it("lets users see and revoke only their own, admins everyone's; refuses malformed headers and past expiries", async () => {
    const admin = await h.userClient('ann', 'admin');
    const vic = await h.userClient('vic', 'viewer');
    const vicToken = (await vic.call('POST', '/api/v1/tokens', { name: 'mine' })).body.apiToken;
    const annToken = (await admin.call('POST', '/api/v1/tokens', { name: 'admins' })).body.apiToken;
    expect((await vic.call('GET', '/api/v1/tokens')).body.tokens.map((t: { name: string }) => t.name)).toEqual(['mine']);
    expect((await admin.call('GET', '/api/v1/tokens')).body.tokens.map((t: { name: string }) => t.name)).toEqual(['admins', 'mine']);
    expect((await vic.call('DELETE', `/api/v1/tokens/${annToken.id}`)).body).toEqual({ code: 'BK_ERR_NOT_FOUND', message: `no API token with id ${annToken.id}` });
    expect((await admin.call('DELETE', `/api/v1/tokens/${vicToken.id}`)).status).toBe(200);
    expect((await h.client().call('GET', '/api/v1/keys', undefined, { authorization: 'Basic abc' })).body.message).toBe(
      "the Authorization header must be 'Bearer bk_...' with an API token",
    );
    expect((await h.client({ bearer: 'bk_nope' }).call('GET', '/api/v1/keys')).body.message).toBe('this API token is not valid');
    const past = await vic.call('POST', '/api/v1/tokens', { name: 'old', expiresAt: '2000-01-01T00:00:00Z' });
    expect(past.body).toEqual({ code: 'BK_ERR_INVALID_INPUT', message: 'the expiry time 2000-01-01T00:00:00.000Z has already passed' });
  });
});

describe('TOTP second factor', () => {
  it('enrols, confirms, then asks for the code at login, refuses wrong and reused codes, turns off', async () => {
    const ann = await h.userClient('ann', 'admin');
    const enrol = await ann.call('POST', '/api/v1/me/totp');
    expect(enrol.body.otpauthUrl).toBe(`otpauth://totp/borgkeep%3Aann?secret=${enrol.body.secret}&issuer=borgkeep&algorithm=SHA1&digits=6&period=30`);
    const secret: string = enrol.body.secret;
    expect((await ann.call('POST', '/api/v1/me/totp/confirm', { code: '000000' === totpCode(secret, h.temp.clock.now()) ? '111111' : '000000' })).status).toBe(401);
    const confirmed = await ann.call('POST', '/api/v1/me/totp/confirm', { code: totpCode(secret, h.temp.clock.now()) });
    expect(confirmed.body.user.totpEnabled).toBe(true);

    const noCode = await h.client().login('ann');
    expect(noCode.status).toBe(401);
    expect(noCode.body).toEqual({ code: 'BK_ERR_TOTP_REQUIRED', message: 'this user has a second factor: give the 6-digit code from the authenticator app as totp' });
    // The code that confirmed is used up.
    expect((await h.client().login('ann', PASSWORD, totpCode(secret, h.temp.clock.now()))).body.message).toBe('this authenticator code was already used; wait for the next one');
    h.temp.clock.advance(30_000);
    const code = totpCode(secret, h.temp.clock.now());
    expect((await h.client().login('ann', 'wrong password', code)).status).toBe(401);
    const good = h.client();
    expect((await good.login('ann', PASSWORD, code)).status).toBe(200);
    expect((await h.client().login('ann', PASSWORD, code)).body.message).toBe('this authenticator code was already used; wait for the next one');

    h.temp.clock.advance(30_000);
    expect((await good.call('DELETE', '/api/v1/me/totp', { code: totpCode(secret, h.temp.clock.now()) })).status).toBe(204);
    expect((await h.client().login('ann')).status).toBe(200);
  });

  it('an admin can reset a password and turn off the second factor of a user who lost it', async () => {
    const admin = await h.userClient('ann', 'admin');
    const bob = await h.userClient('bob', 'operator');
    const secret = (await bob.call('POST', '/api/v1/me/totp')).body.secret;
    await bob.call('POST', '/api/v1/me/totp/confirm', { code: totpCode(secret, h.temp.clock.now()) });
    const reset = await admin.call('POST', '/api/v1/users/bob/password', { removeTotp: true });
    expect(reset.body.password).toMatch(/^[A-Za-z0-9_-]{20}$/);
    expect(reset.body.user.totpEnabled).toBe(false);
    expect((await bob.call('GET', '/api/v1/keys')).status).toBe(401); // the reset ended bob's sessions
    expect((await h.client().login('bob', reset.body.password)).status).toBe(200);
  });
});

describe('own password', () => {
  it('changes it with the current one, refuses a wrong current or a short new one', async () => {
    const ann = await h.userClient('ann', 'admin');
    expect((await ann.call('POST', '/api/v1/me/password', { currentPassword: 'nope', newPassword: 'long enough pw' })).body.message).toBe('the current password is wrong');
    expect((await ann.call('POST', '/api/v1/me/password', { currentPassword: PASSWORD, newPassword: 'short' })).body.message).toBe('a password needs at least 10 characters');
    expect((await ann.call('POST', '/api/v1/me/password', { currentPassword: PASSWORD, newPassword: 'long enough pw' })).status).toBe(204);
    expect((await h.client().login('ann', 'long enough pw')).status).toBe(200);
  });
});
