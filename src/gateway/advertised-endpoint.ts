// What `borgkeep serve` tells clients to connect to (the --public-host, else the address it
// listens on) and its host keys' public lines, kept in <data-dir>/ssh/ at each start so the CLI's
// hints and `borgkeep repo setup` print the same host, port and known_hosts lines as the serve
// banner and the console. It must never hold a private key: only the .pub files are read here.

import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { parseSshPublicKey } from '../store/ssh-public-key.js';
import type { HostKeyInfo } from './client-setup.js';

export interface AdvertisedEndpoint {
  user: string;
  /** Null: the gateway listens on every address and no --public-host was given. */
  host: string | null;
  port: number;
}

const FILE = 'advertised.json';

export function writeAdvertisedEndpoint(sshDir: string, endpoint: AdvertisedEndpoint): void {
  const path = join(sshDir, FILE);
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(endpoint)}\n`, { mode: 0o644 });
  renameSync(tmp, path);
}

/** The endpoint serve advertised when it last started, or null when it never did. */
export function readAdvertisedEndpoint(sshDir: string): AdvertisedEndpoint | null {
  const path = join(sshDir, FILE);
  if (!existsSync(path)) return null;
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as Partial<AdvertisedEndpoint>;
    if (typeof v.user !== 'string' || typeof v.port !== 'number' || !(typeof v.host === 'string' || v.host === null)) return null;
    return { user: v.user, host: v.host, port: v.port };
  } catch {
    return null;
  }
}

/** The host keys' public lines and fingerprints, from the .pub files serve wrote; [] before its first start. */
export function readHostPublicKeys(sshDir: string): HostKeyInfo[] {
  const keys: HostKeyInfo[] = [];
  for (const file of ['ssh_host_ed25519_key.pub', 'ssh_host_rsa_key.pub']) {
    const path = join(sshDir, file);
    if (!existsSync(path)) continue;
    const parsed = parseSshPublicKey(readFileSync(path, 'utf8').trim());
    keys.push({ type: parsed.type, publicKey: `${parsed.type} ${parsed.blob}`, fingerprint: parsed.fingerprint });
  }
  return keys;
}
