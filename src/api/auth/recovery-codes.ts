// Second-factor recovery codes: ten one-use codes shown once at enrolment (and on regeneration),
// typed at login in place of the authenticator's 6-digit code. Each is 16 base32 characters
// (80 random bits) in groups of four; the store keeps only SHA-256 of the normalised code, which
// is enough for 80 bits and lets a login find the code without trying each one.
// Never logs a code or keeps one; pure apart from the random source.

import { createHash, randomBytes } from 'node:crypto';
import { base32Encode } from './totp.js';

export const RECOVERY_CODE_COUNT = 10;
const CODE_CHARS = 16;

/** New codes as the user sees them: "abcd-efgh-ijkl-mnop". */
export function generateRecoveryCodes(count = RECOVERY_CODE_COUNT, random: (n: number) => Uint8Array = randomBytes): string[] {
  return Array.from({ length: count }, () => {
    const text = base32Encode(random(10)).toLowerCase().slice(0, CODE_CHARS);
    return text.match(/.{4}/g)!.join('-');
  });
}

/** Lower case without spaces and dashes, or null when it cannot be a recovery code. */
export function normaliseRecoveryCode(input: string): string | null {
  const clean = input.replace(/[\s-]/g, '').toLowerCase();
  return /^[a-z2-7]{16}$/.test(clean) ? clean : null;
}

/** What the second-factor field holds: a 6-digit authenticator code, or anything else (tried as a recovery code). */
export function isTotpCode(input: string): boolean {
  return /^[0-9]{6}$/.test(input.replace(/\s/g, ''));
}

export function hashRecoveryCode(normalised: string): string {
  return createHash('sha256').update(`recovery:${normalised}`).digest('hex');
}
