// Console passwords: argon2id hashes (@node-rs/argon2, a native addon), a strength floor, and
// generated passwords for first runs and resets. The cost parameters are OWASP's argon2id
// recommendation (19 MiB, 2 passes); tests inject cheaper ones through createPasswordHasher.
// Never logs or returns a password; the store only ever sees the hash.

import { randomBytes } from 'node:crypto';
import { invalidInput } from '../../errors.js';

export interface PasswordHasher {
  hash(password: string): Promise<string>;
  /** False for a wrong password and for a hash that is not argon2 (never throws on bad input). */
  verify(hash: string, password: string): Promise<boolean>;
}

export interface Argon2Cost {
  /** KiB. */
  memoryCost: number;
  timeCost: number;
  parallelism: number;
}

export const DEFAULT_ARGON2_COST: Argon2Cost = { memoryCost: 19_456, timeCost: 2, parallelism: 1 };
export const MIN_PASSWORD_LENGTH = 10;
export const MAX_PASSWORD_LENGTH = 1024;

/** Algorithm 2 is argon2id in @node-rs/argon2's const enum (not importable with isolated modules). */
const ARGON2ID = 2;

export async function createPasswordHasher(cost: Argon2Cost = DEFAULT_ARGON2_COST): Promise<PasswordHasher> {
  // Loaded on first use so commands that never hash (borg-serve) never load the addon.
  const argon2 = await import('@node-rs/argon2');
  return {
    hash: (password) => argon2.hash(password, { algorithm: ARGON2ID, ...cost }),
    async verify(hash, password) {
      try {
        return await argon2.verify(hash, password);
      } catch {
        return false;
      }
    },
  };
}

export function checkPassword(password: string): string {
  if (password.length < MIN_PASSWORD_LENGTH) throw invalidInput(`a password needs at least ${MIN_PASSWORD_LENGTH} characters`);
  if (password.length > MAX_PASSWORD_LENGTH) throw invalidInput(`a password may have at most ${MAX_PASSWORD_LENGTH} characters`);
  return password;
}

/** 20 characters of base64url: 120 bits, typeable, shown once. */
export function generatePassword(): string {
  return randomBytes(15).toString('base64url');
}
