// borgkeep's own SSH identity for pull backups: one ed25519 key pair, made on first use in
// <data-dir>/pull/ (the private key 0600, written to a temp file and renamed, so a crash never
// leaves half a key). Client hosts put its public line into the pull user's authorized_keys, with
// the options printed by `borgkeep pull-key`. Also how a host key is named: OpenSSH's
// "SHA256:<base64>" fingerprint, the one `ssh-keygen -lf` prints and the admin compares.
//
// Must never print, log or return the private key anywhere but to the SSH client that uses it.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { generateEd25519KeyPair, writeKeyPair } from '../gateway/host-keys.js';
import { parseSshPublicKey } from '../store/ssh-public-key.js';

export interface PullIdentity {
  /** OpenSSH private key text, as ssh2's client takes it. */
  readonly privateKey: string;
  /** "ssh-ed25519 AAAA... borgkeep-pull" */
  readonly publicLine: string;
  readonly fingerprint: string;
}

/**
 * The authorized_keys options that restrict the pull identity on a client: no pty, no agent or
 * X11 forwarding, no ~/.ssh/rc; remote forwarding only to a listener on the client's own loopback
 * (the job's borg connection comes back through it). It still runs commands as the pull user (it
 * runs `borg create` and makes and removes the job's private directory).
 *
 * No `permitopen`: OpenSSH (9.2) accepts no "none" there ("bad key options: invalid permission
 * port", the key is then refused outright), and since the key runs commands anyway, refusing local
 * forwarding would add nothing. A client's admin who wants it off says `AllowTcpForwarding remote`
 * for the pull user in sshd_config.
 */
export const PULL_KEY_OPTIONS = 'restrict,port-forwarding,permitlisten="127.0.0.1:*"';

/** The pull directory of a data directory. */
export const pullDir = (dataDir: string): string => join(dataDir, 'pull');

/** Loads borgkeep's pull identity, making it on first use. */
export function loadOrCreatePullIdentity(dataDir: string): PullIdentity {
  const dir = pullDir(dataDir);
  const path = join(dir, 'id_ed25519');
  if (!existsSync(path) || !existsSync(`${path}.pub`)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeKeyPair(path, generateEd25519KeyPair(), 'borgkeep-pull');
  }
  const publicLine = readFileSync(`${path}.pub`, 'utf8').trim();
  const parsed = parseSshPublicKey(publicLine);
  return { privateKey: readFileSync(path, 'utf8'), publicLine: `${parsed.type} ${parsed.blob} borgkeep-pull`, fingerprint: parsed.fingerprint };
}

/** The line for a client's authorized_keys: the options, then the public key. */
export function authorizedKeysLine(identity: PullIdentity): string {
  return `${PULL_KEY_OPTIONS} ${identity.publicLine}`;
}

/** OpenSSH's fingerprint of a raw public key blob (what ssh2's hostVerifier is given). */
export function fingerprintOfBlob(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}
