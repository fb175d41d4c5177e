import { createPrivateKey, createPublicKey, verify } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import ssh2 from 'ssh2';
import { describe, expect, test } from 'vitest';

import { parseSshPublicKey } from '../store/ssh-public-key.js';
import { generateEd25519KeyPair, openSshEd25519Pair } from './host-keys.js';

/** A key pair whose public key starts with a zero byte (one in 256 do): ssh2's generator breaks these. */
function keyWithLeadingZero(): { seed: Buffer; pub: Buffer } {
  for (let i = 0; ; i++) {
    const seed = Buffer.alloc(32);
    seed.writeUInt32BE(i);
    const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]);
    const pub = Buffer.from(createPublicKey(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })).export({ format: 'jwk' }).x!, 'base64url');
    if (pub[0] === 0) return { seed, pub };
  }
}

describe('generated ed25519 host keys', () => {
  test('a public key starting with a zero byte stays 32 bytes; ssh2 and ssh-keygen read the private key to the same public key', () => {
    const { seed, pub } = keyWithLeadingZero();
    const pair = openSshEd25519Pair(seed, pub, Buffer.from('abcd'));
    expect(parseSshPublicKey(pair.public).blob).toBe(pair.public.split(' ')[1]);

    const parsed = ssh2.utils.parseKey(pair.private);
    if (parsed instanceof Error) throw parsed;
    const key = Array.isArray(parsed) ? parsed[0]! : parsed;
    expect(key.getPublicSSH().toString('base64')).toBe(pair.public.split(' ')[1]);
    const signature = key.sign(Buffer.from('hello'));
    expect(key.verify(Buffer.from('hello'), signature as Buffer)).toBe(true);

    const dir = mkdtempSync(join(tmpdir(), 'hostkey-'));
    try {
      writeFileSync(join(dir, 'k'), pair.private, { mode: 0o600 });
      expect(execFileSync('ssh-keygen', ['-y', '-f', join(dir, 'k')], { encoding: 'utf8' }).trim().split(' ').slice(0, 2).join(' ')).toBe(pair.public);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a fresh pair signs with node:crypto as its public key says', () => {
    const pair = generateEd25519KeyPair();
    const parsed = ssh2.utils.parseKey(pair.private);
    if (parsed instanceof Error) throw parsed;
    const key = Array.isArray(parsed) ? parsed[0]! : parsed;
    const raw = Buffer.from(pair.public.split(' ')[1]!, 'base64').subarray(-32);
    const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' });
    const signature = key.sign(Buffer.from('data')) as Buffer;
    expect(verify(null, Buffer.from('data'), publicKey, signature)).toBe(true);
  });
});
