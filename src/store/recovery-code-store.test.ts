// Recovery codes and the account fields in the store: one use per code, a new set voids the old,
// turning the second factor off voids the set, an admin's reset sets "must change" and the
// user's own change clears it, live token names unique per user. Real SQLite, fixed clock.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openTempStore, type TempStore } from '../../test/support/temp-store.js';

let t: TempStore;
beforeEach(async () => {
  t = await openTempStore();
});
afterEach(() => t.cleanup());

describe('recovery codes', () => {
  it('each claims once; a new set voids the old; turning the factor off voids the set', async () => {
    const u = await t.store.addUser({ name: 'ann', role: 'admin', passwordHash: 'h' });
    await t.store.replaceRecoveryCodes(u.id, ['a', 'b', 'c']);
    expect(await t.store.countRecoveryCodes(u.id)).toBe(3);
    expect(await t.store.claimRecoveryCode(u.id, 'a')).toBe(true);
    expect(await t.store.claimRecoveryCode(u.id, 'a')).toBe(false);
    expect(await t.store.claimRecoveryCode(u.id, 'zz')).toBe(false);
    const other = await t.store.addUser({ name: 'bob', role: 'viewer', passwordHash: 'h' });
    expect(await t.store.claimRecoveryCode(other.id, 'b')).toBe(false); // another user's code
    expect(await t.store.countRecoveryCodes(u.id)).toBe(2);
    await t.store.replaceRecoveryCodes(u.id, ['d']);
    expect(await t.store.claimRecoveryCode(u.id, 'b')).toBe(false);
    expect(await t.store.countRecoveryCodes(u.id)).toBe(1);
    await t.store.setTotp(u.id, { secret: null, enabled: false });
    expect(await t.store.countRecoveryCodes(u.id)).toBe(0);
  });
});

describe('account fields', () => {
  it("an admin's reset asks for a new password; the user's own change keeps the given session and clears it", async () => {
    const u = await t.store.addUser({ name: 'ann', role: 'admin', passwordHash: 'h' });
    const keep = await t.store.createConsoleSession({ userId: u.id, idHash: 'x', address: null, expiresAt: new Date('2030-01-01') });
    await t.store.createConsoleSession({ userId: u.id, idHash: 'y', address: null, expiresAt: new Date('2030-01-01') });
    expect((await t.store.setPasswordHash('ann', 'h2', { mustChange: true })).mustChangePassword).toBe(true);
    expect(await t.store.findConsoleSession('x')).toBeUndefined();
    const again = await t.store.createConsoleSession({ userId: u.id, idHash: 'z', address: null, expiresAt: new Date('2030-01-01') });
    await t.store.createConsoleSession({ userId: u.id, idHash: 'w', address: null, expiresAt: new Date('2030-01-01') });
    expect((await t.store.setPasswordHash('ann', 'h3', { keepSessionId: again.id })).mustChangePassword).toBe(false);
    expect((await t.store.findConsoleSession('z'))?.id).toBe(again.id);
    expect(await t.store.findConsoleSession('w')).toBeUndefined();
    expect(keep.id).not.toBe(again.id);
  });

  it('refuses a second live token of the same name for one user, in one sentence', async () => {
    const u = await t.store.addUser({ name: 'ann', role: 'admin', passwordHash: 'h' });
    const token = (hash: string) => ({ userId: u.id, name: 'ci', tokenHash: hash, prefix: 'bk_x', role: 'viewer', expiresAt: null });
    const first = await t.store.createApiToken(token('h1'));
    await expect(t.store.createApiToken(token('h2'))).rejects.toMatchObject({ code: 'BK_ERR_CONFLICT', message: "you already have an API token named 'ci'; pick another name or revoke that one first" });
    await t.store.revokeApiToken(first.id);
    expect((await t.store.createApiToken(token('h3'))).name).toBe('ci');
  });
});
