import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { openTempStore, type TempStore } from '../../test/support/temp-store.js';
import { createPasswordHasher } from './auth/passwords.js';
import { ensureFirstAdmin, handOverFirstAdmin } from './first-run.js';

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

it('hands the password to a terminal on stderr, and else to a file only its owner reads; the line for the log never holds it', () => {
  const admin = { name: 'admin', password: 'pw-0123456789abcdefgh' };
  let written = '';
  const tty = handOverFirstAdmin(admin, { dataDir: t.store.paths.root, stderr: { isTTY: true, write: (text: string) => (written += text) } });
  expect(written).toContain(`\n  ${admin.password}\n`);
  expect(tty.file).toBeNull();
  expect(tty.line).not.toContain(admin.password);
  expect(existsSync(join(t.store.paths.root, 'first-admin-password'))).toBe(false);

  // A file left by an earlier start with a wider mode is narrowed.
  const file = join(t.store.paths.root, 'first-admin-password');
  writeFileSync(file, 'old\n', { mode: 0o644 });
  const piped = handOverFirstAdmin(admin, { dataDir: t.store.paths.root, stderr: { isTTY: false, write: () => expect.fail('nothing on stderr when it is no terminal') } });
  expect(piped.file).toBe(file);
  expect(statSync(file).mode & 0o777).toBe(0o600);
  expect(readFileSync(file, 'utf8')).toBe(`${admin.password}\n`);
  expect(piped.line).toContain(file);
  expect(piped.line).not.toContain(admin.password);
});
