// The embedded gateway's host keys: ed25519, plus rsa for old clients. Created on first start in
// <data-dir>/ssh/ (mode 0600, written to a temp file and renamed, so a crash never leaves half a
// key) and reused afterwards, so clients' known_hosts stay valid across restarts.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { parseSshPublicKey } from '../store/ssh-public-key.js';

export interface HostKey {
  readonly type: string;
  /** OpenSSH private key (PEM-like text), as ssh2 takes it. */
  readonly privateKey: string;
  /** "ssh-ed25519 AAAA..." */
  readonly publicLine: string;
  /** "SHA256:..." as `ssh-keygen -l` prints it. */
  readonly fingerprint: string;
}

export type GenerateKeyPair = (type: 'ed25519' | 'rsa') => { private: string; public: string };

const KINDS = [
  { type: 'ed25519', file: 'ssh_host_ed25519_key' },
  { type: 'rsa', file: 'ssh_host_rsa_key' },
] as const;

export function loadOrCreateHostKeys(sshDir: string, generate: GenerateKeyPair): HostKey[] {
  mkdirSync(sshDir, { recursive: true, mode: 0o700 });
  return KINDS.map(({ type, file }) => {
    const path = join(sshDir, file);
    if (!existsSync(path) || !existsSync(`${path}.pub`)) writeKeyPair(path, generate(type), 'borgkeep-host');
    const publicLine = readFileSync(`${path}.pub`, 'utf8').trim();
    const parsed = parseSshPublicKey(publicLine);
    return { type: parsed.type, privateKey: readFileSync(path, 'utf8'), publicLine: `${parsed.type} ${parsed.blob}`, fingerprint: parsed.fingerprint };
  });
}

/**
 * Writes a key pair as OpenSSH keeps one: PATH (the private key, 0600) and PATH.pub (the public
 * line with `comment`, 0644), each to a temp file renamed into place, so a crash never leaves half
 * a key.
 */
export function writeKeyPair(path: string, pair: { private: string; public: string }, comment: string): void {
  for (const [p, text, mode] of [
    [`${path}.pub`, `${pair.public.trim()} ${comment}\n`, 0o644],
    [path, pair.private, 0o600],
  ] as const) {
    const tmp = `${p}.tmp-${process.pid}`;
    writeFileSync(tmp, text, { mode });
    chmodSync(tmp, mode);
    renameSync(tmp, p);
  }
}

/**
 * A new ed25519 key pair in OpenSSH's own formats ("openssh-key-v1" private key, unencrypted).
 * Written here rather than taken from ssh2's generator, which strips every leading zero byte of
 * the public key and so produces a broken 31-byte key once in 256.
 */
export function generateEd25519KeyPair(): { private: string; public: string } {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const x = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
  const d = Buffer.from(privateKey.export({ format: 'jwk' }).d!, 'base64url');
  return openSshEd25519Pair(d, x, randomBytes(4));
}

/** The OpenSSH texts of the ed25519 key with 32-byte seed `seed` and public key `pub`. */
export function openSshEd25519Pair(seed: Buffer, pub: Buffer, check: Buffer): { private: string; public: string } {
  if (seed.length !== 32 || pub.length !== 32 || check.length !== 4) throw new Error('an ed25519 key has a 32-byte seed and public key');
  const str = (b: Buffer | string): Buffer => {
    const data = typeof b === 'string' ? Buffer.from(b, 'latin1') : b;
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    return Buffer.concat([len, data]);
  };
  const u32 = (n: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  const blob = Buffer.concat([str('ssh-ed25519'), str(pub)]);
  const secret = Buffer.concat([check, check, blob, str(Buffer.concat([seed, pub])), str('')]);
  const padding = Buffer.from(Array.from({ length: (8 - (secret.length % 8)) % 8 }, (_, i) => i + 1));
  const body = Buffer.concat([
    Buffer.from('openssh-key-v1\0', 'latin1'),
    str('none'),
    str('none'),
    str(''),
    u32(1),
    str(blob),
    str(Buffer.concat([secret, padding])),
  ]);
  const lines = body.toString('base64').match(/.{1,70}/g)!;
  return {
    private: `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join('\n')}\n-----END OPENSSH PRIVATE KEY-----\n`,
    public: `ssh-ed25519 ${blob.toString('base64')}`,
  };
}
