import { afterEach, beforeEach, expect, it } from 'vitest';
import { openTempStore, type TempStore } from '../../test/support/temp-store.js';
import { createPasswordHasher } from './auth/passwords.js';
import { ensureFirstAdmin } from './first-run.js';

let t: TempStore;
beforeEach(async () => {
  t = await openTempStore();
});
afterEach(() => t.cleanup());

it('creates admin with a random password once, and nothing when users exist', async () => {
  const passwords = await createPasswordHasher({ memoryCost: 64, timeCost: 1, parallelism: 1 });
  const first = await ensureFirstAdmin(t.store, passwords);
  expect(first).toEqual({ name: 'admin', password: expect.stringMatching(/^[A-Za-z0-9_-]{20}$/) });
  const stored = await t.store.findUserCredentials('admin');
  expect(stored?.user.role).toBe('admin');
  expect(stored?.passwordHash).toMatch(/^\$argon2id\$/);
  expect(await passwords.verify(stored!.passwordHash!, first!.password)).toBe(true);
  expect(await ensureFirstAdmin(t.store, passwords)).toBeNull();
  expect(await t.store.countUsers()).toBe(1);
});

it('leaves a store that already has users alone', async () => {
  await t.store.addUser({ name: 'ann', role: 'operator' });
  expect(await ensureFirstAdmin(t.store, { hash: async () => 'unused' })).toBeNull();
  expect((await t.store.listUsers()).map((u) => u.name)).toEqual(['ann']);
});
