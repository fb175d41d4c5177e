// The embedded gateway's host keys: ed25519, plus rsa for old clients. Created on first start in
// <data-dir>/ssh/ (mode 0600, written to a temp file and renamed, so a crash never leaves half a
// key) and reused afterwards, so clients' known_hosts stay valid across restarts.

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
    if (!existsSync(path) || !existsSync(`${path}.pub`)) {
      const pair = generate(type);
      for (const [p, text, mode] of [
        [`${path}.pub`, `${pair.public.trim()} borgkeep-host\n`, 0o644],
        [path, pair.private, 0o600],
      ] as const) {
        const tmp = `${p}.tmp-${process.pid}`;
        writeFileSync(tmp, text, { mode });
        chmodSync(tmp, mode);
        renameSync(tmp, p);
      }
    }
    const publicLine = readFileSync(`${path}.pub`, 'utf8').trim();
    const parsed = parseSshPublicKey(publicLine);
    return { type: parsed.type, privateKey: readFileSync(path, 'utf8'), publicLine: `${parsed.type} ${parsed.blob}`, fingerprint: parsed.fingerprint };
  });
}
