import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openTempStore, ed25519Key, type TempStore } from '../../test/support/temp-store.js';
import { normalizeCidr } from './grant-terms.js';

let t: TempStore;
beforeEach(async () => {
  t = await openTempStore();
  await t.store.createRepository({ name: 'photos', quotaBytes: null });
  await t.store.addKey({ name: 'laptop', publicKey: ed25519Key() });
});
afterEach(() => t.cleanup());

const outcome = (promise: Promise<unknown>) =>
  promise.then(
    () => 'resolved',
    (e: { code?: string; message: string }) => `${e.code}: ${e.message}`,
  );

describe('grant store', () => {
  it('grantStanding: the key\'s revocation and its grant on one repository, as a running session asks for them', async () => {
    const set = await t.store.setGrant('laptop', 'photos', { role: 'append', writesPerDay: null, fromCidrs: ['192.0.2.0/24'], expiresAt: null });
    const { keyId, repositoryId } = set.grant;
    expect(await t.store.grantStanding(keyId, repositoryId)).toEqual({ keyRevokedAt: null, grant: set.grant });
    const other = await t.store.createRepository({ name: 'other', quotaBytes: null });
    expect(await t.store.grantStanding(keyId, other.id)).toEqual({ keyRevokedAt: null, grant: null });
    await t.store.removeGrant('laptop', 'photos');
    expect(await t.store.grantStanding(keyId, repositoryId)).toEqual({ keyRevokedAt: null, grant: null });
    await t.store.setGrant('laptop', 'photos', { role: 'read', writesPerDay: null, fromCidrs: null, expiresAt: null });
    const revoked = await t.store.revokeKey('laptop');
    expect(await t.store.grantStanding(keyId, repositoryId)).toEqual({ keyRevokedAt: revoked.key.revokedAt, grant: null });
    expect(await t.store.grantStanding(keyId + 1000, repositoryId)).toBeUndefined();
  });

  it('creates, then replaces a grant, which findGrant returns with its repository', async () => {
    const first = await t.store.setGrant('laptop', 'photos', {
      role: 'append',
      writesPerDay: 1,
      fromCidrs: ['192.0.2.0/24', '2001:DB8::1'],
      expiresAt: new Date('2026-01-01T00:00:00Z'),
    });
    expect(first.replaced).toBe(false);
    expect(first.keyName).toBe('laptop');
    expect(first.grant).toMatchObject({
      role: 'append',
      writesPerDay: 1,
      fromCidrs: ['192.0.2.0/24', '2001:db8::1/128'],
      expiresAt: new Date('2026-01-01T00:00:00Z'),
    });
    const found = await t.store.findGrant(first.grant.keyId, 'photos');
    expect(found?.grant).toEqual(first.grant);
    expect(found?.repository.name).toBe('photos');

    const second = await t.store.setGrant('laptop', 'photos', { role: 'read', writesPerDay: null, fromCidrs: null, expiresAt: null });
    expect(second.replaced).toBe(true);
    expect(second.grant).toMatchObject({ id: first.grant.id, role: 'read', writesPerDay: null, fromCidrs: null, expiresAt: null });
    const views = await t.store.listGrants();
    expect(views).toHaveLength(1);
    expect(views[0]).toMatchObject({ keyName: 'laptop', repositoryName: 'photos', keyRevokedAt: null });
  });

  it('findGrant returns undefined for an unknown repository or a missing grant', async () => {
    expect(await t.store.findGrant(1, 'nope')).toBeUndefined();
    expect(await t.store.findGrant(1, 'photos')).toBeUndefined();
  });

  it('refuses bad terms and unknown keys or repositories, writing nothing', async () => {
    const ok = { role: 'read', writesPerDay: null, fromCidrs: null, expiresAt: null } as const;
    expect(await outcome(t.store.setGrant('laptop', 'photos', { ...ok, expiresAt: new Date('2024-12-31T00:00:00Z') }))).toBe(
      'BK_ERR_INVALID_INPUT: the expiry time 2024-12-31T00:00:00.000Z has already passed',
    );
    expect(await outcome(t.store.setGrant('laptop', 'photos', { ...ok, writesPerDay: 0 }))).toBe(
      'BK_ERR_INVALID_INPUT: backups per day (writes per day) must be a whole number of at least 1, not 0',
    );
    expect(await outcome(t.store.setGrant('laptop', 'photos', { ...ok, fromCidrs: ['10.1.2.3/8'] }))).toBe(
      "BK_ERR_INVALID_INPUT: '10.1.2.3/8' has address bits set past its /8 prefix; did you mean 10.0.0.0/8?",
    );
    expect(await outcome(t.store.setGrant('ghost', 'photos', ok))).toBe("BK_ERR_NOT_FOUND: no key named 'ghost'");
    expect(await outcome(t.store.setGrant('laptop', 'ghost', ok))).toBe("BK_ERR_NOT_FOUND: no repository named 'ghost'");
    expect(await t.store.listGrants()).toEqual([]);
  });

  it('removes a grant, and says so when there is none', async () => {
    await t.store.setGrant('laptop', 'photos', { role: 'full', writesPerDay: null, fromCidrs: null, expiresAt: null });
    expect(await t.store.removeGrant('1', 'photos')).toMatchObject({ keyName: 'laptop', grant: { role: 'full' } });
    expect(await outcome(t.store.removeGrant('laptop', 'photos'))).toBe(
      "BK_ERR_NOT_FOUND: key 'laptop' has no grant on repository 'photos'",
    );
  });
});

describe('normalizeCidr', () => {
  it.each([
    ['192.0.2.7', '192.0.2.7/32'],
    ['10.0.0.0/8', '10.0.0.0/8'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['2001:DB8:0:0::/32', '2001:db8::/32'],
    ['::1', '::1/128'],
    ['::ffff:192.0.2.0/120', '::ffff:192.0.2.0/120'],
  ])('%s → %s', (input, expected) => {
    expect(normalizeCidr(input)).toBe(expected);
  });

  it.each([
    ['10.0.0.0/33', "'10.0.0.0/33' has an invalid prefix length; IPv4 ranges take /0 to /32"],
    ['10.0.0/8', "'10.0.0/8' is not an IPv4 or IPv6 address or CIDR range"],
    ['example.com', "'example.com' is not an IPv4 or IPv6 address or CIDR range"],
    ['10.0.0.0/', "'10.0.0.0/' has an invalid prefix length; IPv4 ranges take /0 to /32"],
    ['2001:db8::1/32', "'2001:db8::1/32' has address bits set past its /32 prefix; did you mean 2001:db8::/32?"],
    ['fe80::1%eth0', "'fe80::1%eth0' has a zone index; give the address without '%…'"],
  ])('refuses %s', (input, message) => {
    expect(() => normalizeCidr(input)).toThrow(message);
  });
});
