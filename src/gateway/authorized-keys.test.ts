import { expect, test } from 'vitest';

import { NO_ARCHIVE_RULES, type Grant, type SshKey } from '../store/types.js';
import { authorizedKeyLine } from './authorized-keys.js';

const key: SshKey = {
  id: 7,
  name: 'laptop',
  type: 'ssh-ed25519',
  blob: 'AAAAC3NzaC1lZDI1NTE5AAAAIJctifGkUsMd5kuRl27E7RyCh0IzhnPZjMZUitxcJELy',
  fingerprint: 'SHA256:x',
  comment: null,
  bits: 256,
  createdAt: new Date(0),
  revokedAt: null,
};
const grant = (fromCidrs: string[] | null): Grant => ({
  id: 1,
  keyId: 7,
  repositoryId: 1,
  role: 'append',
  writesPerDay: null,
  fromCidrs,
  expiresAt: null,
  createdAt: new Date(0),
  ...NO_ARCHIVE_RULES,
});
const cmd = { node: '/usr/bin/node', borgkeep: '/opt/borgkeep/bin/borgkeep', dataDir: '/srv/borgkeep' };

test('a key line with restrict and the forced command for this key id', () => {
  expect(authorizedKeyLine(key, [grant(null)], cmd)).toBe(
    'restrict,command="/usr/bin/node /opt/borgkeep/bin/borgkeep --data-dir /srv/borgkeep borg-serve --key 7" ssh-ed25519 ' + key.blob,
  );
});

test('from="..." only when every grant is limited to address ranges', () => {
  expect(authorizedKeyLine(key, [grant(['192.0.2.0/24']), grant(['2001:db8::/32', '192.0.2.0/24'])], cmd)).toMatch(
    / borg-serve --key 7",from="192\.0\.2\.0\/24,2001:db8::\/32" ssh-ed25519 /,
  );
  expect(authorizedKeyLine(key, [grant(['192.0.2.0/24']), grant(null)], cmd)).not.toContain('from=');
  // No grants: nothing to narrow; the guard explains to the client that nothing is granted.
  expect(authorizedKeyLine(key, [], cmd)).not.toContain('from=');
});

test('a revoked key gets no line', () => {
  expect(authorizedKeyLine({ ...key, revokedAt: new Date() }, [grant(null)], cmd)).toBeNull();
});

test('paths that would break out of the quoted command are refused, not written', () => {
  expect(() => authorizedKeyLine(key, [], { ...cmd, dataDir: '/srv/a" ,command="sh' })).toThrow(/cannot be used in a forced command/);
  expect(() => authorizedKeyLine(key, [], { ...cmd, dataDir: '/srv/with space' })).toThrow(/cannot be used/);
});
