import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openTempStore, ed25519Key, type TempStore } from '../../test/support/temp-store.js';

let t: TempStore;
beforeEach(async () => {
  t = await openTempStore();
});
afterEach(() => t.cleanup());

const outcome = (promise: Promise<unknown>) =>
  promise.then(
    () => 'resolved',
    (e: { code?: string; message: string }) => `${e.code}: ${e.message}`,
  );
const noLimits = { writesPerDay: null, fromCidrs: null, expiresAt: null };

describe('key store', () => {
  it('adds a key and finds it by name, by id and by blob', async () => {
    const publicKey = ed25519Key('me@laptop');
    const { key, grant } = await t.store.addKey({ name: 'laptop', publicKey });
    expect(grant).toBeNull();
    expect(key).toMatchObject({
      name: 'laptop',
      type: 'ssh-ed25519',
      blob: publicKey.blob,
      fingerprint: publicKey.fingerprint,
      comment: 'me@laptop',
      bits: 256,
      revokedAt: null,
    });
    expect(await t.store.findKey('laptop')).toEqual(key);
    expect(await t.store.findKey(String(key.id))).toEqual(key);
    expect(await t.store.findKeyByBlob('ssh-ed25519', publicKey.blob)).toEqual(key);
    expect(await t.store.findKey('nope')).toBeUndefined();
    expect(await t.store.findKey('999')).toBeUndefined();
    expect(await outcome(t.store.getKey('999'))).toBe('BK_ERR_NOT_FOUND: no key with id 999');
    expect(await outcome(t.store.getKey('nope'))).toBe("BK_ERR_NOT_FOUND: no key named 'nope'");
  });

  it('refuses a duplicate name, a duplicate key and an all-digit name', async () => {
    const publicKey = ed25519Key();
    await t.store.addKey({ name: 'laptop', publicKey });
    expect(await outcome(t.store.addKey({ name: 'laptop', publicKey: ed25519Key() }))).toBe(
      "BK_ERR_CONFLICT: a key named 'laptop' already exists",
    );
    expect(await outcome(t.store.addKey({ name: 'other', publicKey }))).toBe(
      "BK_ERR_CONFLICT: this key is already registered as 'laptop' (id 1)",
    );
    expect(await outcome(t.store.addKey({ name: '42', publicKey: ed25519Key() }))).toMatch(
      /^BK_ERR_INVALID_INPUT: a key name cannot be only digits/,
    );
    expect((await t.store.listKeys()).map((k) => k.name)).toEqual(['laptop']);
  });

  it('adds the key and its grant together, or neither', async () => {
    await t.store.createRepository({ name: 'photos', quotaBytes: null });
    const { key, grant } = await t.store.addKey({
      name: 'laptop',
      publicKey: ed25519Key(),
      grant: { repositoryName: 'photos', role: 'append', ...noLimits },
    });
    expect(grant).toMatchObject({ keyId: key.id, role: 'append' });

    expect(
      await outcome(
        t.store.addKey({ name: 'desk', publicKey: ed25519Key(), grant: { repositoryName: 'nope', role: 'read', ...noLimits } }),
      ),
    ).toBe("BK_ERR_NOT_FOUND: no repository named 'nope'");
    expect(
      await outcome(
        t.store.addKey({
          name: 'desk',
          publicKey: ed25519Key(),
          grant: { repositoryName: 'photos', role: 'admin' as 'read', ...noLimits },
        }),
      ),
    ).toBe("BK_ERR_INVALID_INPUT: unknown role 'admin'; use read, append, prune or full");
    expect((await t.store.listKeys()).map((k) => k.name)).toEqual(['laptop']);
  });

  it('revokes a key: removes its grants, keeps it registered, refuses it again and new grants', async () => {
    await t.store.createRepository({ name: 'photos', quotaBytes: null });
    const publicKey = ed25519Key();
    await t.store.addKey({ name: 'laptop', publicKey, grant: { repositoryName: 'photos', role: 'full', ...noLimits } });
    t.clock.advance(60_000);
    const revoked = await t.store.revokeKey('laptop');
    expect(revoked.alreadyRevoked).toBe(false);
    expect(revoked.grantsRemoved).toBe(1);
    expect(revoked.key.revokedAt).toEqual(new Date('2025-01-01T00:01:00Z'));
    expect(await t.store.findGrant(revoked.key.id, 'photos')).toBeUndefined();

    const again = await t.store.revokeKey('1');
    expect(again).toMatchObject({ alreadyRevoked: true, grantsRemoved: 0 });
    expect(again.key.revokedAt).toEqual(new Date('2025-01-01T00:01:00Z'));

    expect(await outcome(t.store.addKey({ name: 'laptop2', publicKey }))).toBe(
      "BK_ERR_CONFLICT: this key was registered as 'laptop' (id 1) and revoked; a revoked key cannot be added again",
    );
    expect(await outcome(t.store.setGrant('laptop', 'photos', { role: 'read', ...noLimits }))).toBe(
      "BK_ERR_CONFLICT: key 'laptop' is revoked; a revoked key gets no grants",
    );
  });
});
