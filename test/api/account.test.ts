// The account page's API over real HTTP: recovery codes (shown once, each usable once, hashed,
// regenerated, voided when the factor goes), turning the factor off with the password, token
// names unique per user, an admin's reset that must be followed by the user's own password, and
// removing users (not oneself, not the last admin). A real store, a moved clock, no mocks.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { totpCode } from '../../src/api/auth/totp.js';
import { PASSWORD, startApi, type ApiClient, type ApiHarness } from './api-harness.js';

let h: ApiHarness;
beforeAll(async () => {
  h = await startApi();
});
afterAll(() => h.close());

async function enrol(client: ApiClient): Promise<{ secret: string; codes: string[] }> {
  const secret: string = (await client.call('POST', '/api/v1/me/totp')).body.secret;
  const confirmed = await client.call('POST', '/api/v1/me/totp/confirm', { code: totpCode(secret, h.temp.clock.now()) });
  expect(confirmed.status, JSON.stringify(confirmed.body)).toBe(200);
  h.temp.clock.advance(30_000); // the confirming code is used up
  return { secret, codes: confirmed.body.recoveryCodes };
}

describe('recovery codes', () => {
  it('come once with the enrolment, log in once each in place of a code, and are stored hashed', async () => {
    const rita = await h.userClient('rita', 'viewer');
    const { codes } = await enrol(rita);
    expect(codes).toHaveLength(10);
    expect(new Set(codes).size).toBe(10);
    expect((await rita.call('GET', '/api/v1/me/recovery-codes')).body).toEqual({ left: 10 });

    const first = await h.client().login('rita', PASSWORD, codes[0]!.toUpperCase());
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    const again = await h.client().login('rita', PASSWORD, codes[0]);
    expect(again.body).toEqual({ code: 'BK_ERR_UNAUTHENTICATED', message: 'this recovery code is wrong or was already used' });
    expect((await h.client().login('rita', PASSWORD, 'aaaa-bbbb-cccc-dddd')).body.message).toBe('this recovery code is wrong or was already used');
    expect((await h.client().login('rita', PASSWORD, 'not a code')).body.message).toBe('give the 6-digit code from the authenticator app or one of your recovery codes');
    expect((await rita.call('GET', '/api/v1/me/recovery-codes')).body).toEqual({ left: 9 });

    // Only hashes in the database: no code appears anywhere in it.
    const rows = await h.temp.store.countRecoveryCodes((await h.temp.store.getUser('rita')).id);
    expect(rows).toBe(9);
    const { readFileSync } = await import('node:fs');
    const dbBytes = readFileSync(h.temp.store.paths.database).toString('latin1') + readFileSync(`${h.temp.store.paths.database}-wal`).toString('latin1');
    for (const code of codes) expect(dbBytes).not.toContain(code.replace(/-/g, ''));
  });

  it('regenerate with the password (old ones stop working); turning the factor off needs the password and voids them', async () => {
    const sam = await h.userClient('sam', 'operator');
    const { codes } = await enrol(sam);
    expect((await sam.call('POST', '/api/v1/me/recovery-codes', { password: 'wrong password' })).body).toEqual({ code: 'BK_ERR_DENIED', message: 'the current password is wrong' });
    const fresh = await sam.call('POST', '/api/v1/me/recovery-codes', { password: PASSWORD });
    expect(fresh.body.recoveryCodes).toHaveLength(10);
    expect((await h.client().login('sam', PASSWORD, codes[1])).body.message).toBe('this recovery code is wrong or was already used');
    expect((await h.client().login('sam', PASSWORD, fresh.body.recoveryCodes[1])).status).toBe(200);

    expect((await sam.call('DELETE', '/api/v1/me/totp', { password: 'wrong password' })).body).toEqual({ code: 'BK_ERR_DENIED', message: 'the current password is wrong' });
    expect((await sam.call('DELETE', '/api/v1/me/totp', {})).body).toEqual({ code: 'BK_ERR_INVALID_INPUT', message: 'give your password to turn the second factor off' });
    expect((await sam.call('DELETE', '/api/v1/me/totp', { password: PASSWORD })).status).toBe(204);
    expect((await sam.call('GET', '/api/v1/me/recovery-codes')).body).toEqual({ left: 0 });
    expect((await h.client().login('sam')).status).toBe(200);
    expect((await sam.call('POST', '/api/v1/me/recovery-codes', { password: PASSWORD })).body).toEqual({
      code: 'BK_ERR_CONFLICT',
      message: 'the second factor is not on; turn it on first and its recovery codes come with it',
    });
  });
});

describe('own password', () => {
  it('keeps the session that changed it and ends the others', async () => {
    const tom = await h.userClient('tom', 'viewer');
    const other = h.client();
    await other.login('tom');
    expect((await tom.call('POST', '/api/v1/me/password', { currentPassword: PASSWORD, newPassword: 'a new password' })).status).toBe(204);
    expect((await tom.call('GET', '/api/v1/session')).status).toBe(200);
    expect((await other.call('GET', '/api/v1/session')).status).toBe(401);
    expect((await h.client().login('tom', PASSWORD)).status).toBe(401);
    expect((await h.client().login('tom', 'a new password')).status).toBe(200);
  });
});

describe('API token names', () => {
  it('are unique per user among live tokens, in one sentence; another user or a revoked token frees the name', async () => {
    const uma = await h.userClient('uma', 'operator');
    const vera = await h.userClient('vera', 'operator');
    const first = await uma.call('POST', '/api/v1/tokens', { name: 'ci', role: 'viewer' });
    expect(first.status).toBe(201);
    const dup = await uma.call('POST', '/api/v1/tokens', { name: 'ci' });
    expect(dup.status).toBe(409);
    expect(dup.body).toEqual({ code: 'BK_ERR_CONFLICT', message: "you already have an API token named 'ci'; pick another name or revoke that one first" });
    expect((await vera.call('POST', '/api/v1/tokens', { name: 'ci' })).status).toBe(201);
    await uma.call('DELETE', `/api/v1/tokens/${first.body.apiToken.id}`);
    expect((await uma.call('POST', '/api/v1/tokens', { name: 'ci' })).status).toBe(201);
    expect((await uma.call('POST', '/api/v1/tokens', { name: 'big', role: 'admin' })).body).toEqual({ code: 'BK_ERR_DENIED', message: 'a token cannot have a higher role than its creator (operator)' });
  });
});

describe("an admin's reset and removal", () => {
  it('a reset password must be changed before anything else works, then the user is back to normal', async () => {
    const admin = await h.userClient('ada', 'admin');
    await h.userClient('wes', 'operator');
    const reset = await admin.call('POST', '/api/v1/users/wes/password', {});
    expect(reset.body.user.mustChangePassword).toBe(true);
    const wes = h.client();
    const login = await wes.login('wes', reset.body.password);
    expect(login.body.user.mustChangePassword).toBe(true);
    const refused = await wes.call('GET', '/api/v1/repositories');
    expect(refused.status).toBe(403);
    expect(refused.body).toEqual({ code: 'BK_ERR_DENIED', message: 'an admin reset your password: choose a new one first (POST /api/v1/me/password)' });
    expect((await wes.call('GET', '/api/v1/session')).body.user.mustChangePassword).toBe(true);
    expect((await wes.call('POST', '/api/v1/me/password', { currentPassword: reset.body.password, newPassword: 'my own password' })).status).toBe(204);
    expect((await wes.call('GET', '/api/v1/repositories')).status).toBe(200);
    expect((await wes.call('GET', '/api/v1/session')).body.user.mustChangePassword).toBe(false);
  });

  it('removes another user, never oneself nor the last admin, in one sentence', async () => {
    await h.temp.store.addUser({ name: 'xena', role: 'viewer', passwordHash: null });
    const boss = await h.userClient('boss', 'admin');
    expect((await boss.call('DELETE', '/api/v1/users/xena')).status).toBe(200);
    const self = await boss.call('DELETE', '/api/v1/users/boss');
    expect(self.status).toBe(409);
    expect(self.body).toEqual({ code: 'BK_ERR_CONFLICT', message: 'you cannot remove your own user; another admin can' });
    // With every other admin gone, the last one cannot be removed even by a second session of theirs... nor demoted.
    for (const u of await h.temp.store.listUsers()) if (u.role === 'admin' && u.name !== 'boss') await h.temp.store.removeUser(u.name);
    expect((await boss.call('PATCH', '/api/v1/users/boss', { role: 'viewer' })).body.message).toBe("'boss' is the only admin; make another user admin first");
    expect((await h.temp.store.listUsers()).some((u) => u.name === 'boss')).toBe(true);
  });
});
