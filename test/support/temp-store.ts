// A store on a real SQLite file in a fresh temporary data directory, with a clock the test
// moves, and synthetic (but well-formed) ed25519 public keys to register.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, type Store } from '../../src/store/database.js';
import { parseSshPublicKey, type SshPublicKey } from '../../src/store/ssh-public-key.js';

export interface TestClock {
  now: () => Date;
  set(date: Date | string): void;
  advance(ms: number): void;
}

export function createClock(start = '2025-01-01T00:00:00.000Z'): TestClock {
  let current = new Date(start).getTime();
  return {
    now: () => new Date(current),
    set: (date) => {
      current = new Date(date).getTime();
    },
    advance: (ms) => {
      current += ms;
    },
  };
}

export interface TempStore {
  root: string;
  dataDir: string;
  store: Store;
  clock: TestClock;
  reopen(): Promise<Store>;
  cleanup(): Promise<void>;
}

export async function openTempStore(): Promise<TempStore> {
  const root = mkdtempSync(join(tmpdir(), 'borgkeep-store-'));
  const dataDir = join(root, 'data');
  const clock = createClock();
  const temp: TempStore = {
    root,
    dataDir,
    clock,
    store: await openStore({ dataDir, now: clock.now }),
    async reopen() {
      await temp.store.close();
      temp.store = await openStore({ dataDir, now: clock.now });
      return temp.store;
    },
    async cleanup() {
      await temp.store.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
  return temp;
}

function sshString(value: Buffer | string): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value) : value;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

/** A random, well-formed ed25519 public key line. */
export function ed25519Line(comment = 'test@host'): string {
  const blob = Buffer.concat([sshString('ssh-ed25519'), sshString(randomBytes(32))]);
  return `ssh-ed25519 ${blob.toString('base64')} ${comment}`;
}

export function ed25519Key(comment?: string): SshPublicKey {
  return parseSshPublicKey(ed25519Line(comment));
}
