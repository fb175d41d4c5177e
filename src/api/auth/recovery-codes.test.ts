import { describe, expect, it } from 'vitest';
import { generateRecoveryCodes, hashRecoveryCode, isTotpCode, normaliseRecoveryCode, RECOVERY_CODE_COUNT } from './recovery-codes.js';

describe('recovery codes', () => {
  it('makes ten distinct codes in four groups of four base32 characters', () => {
    const codes = generateRecoveryCodes();
    expect(codes).toHaveLength(RECOVERY_CODE_COUNT);
    expect(new Set(codes).size).toBe(RECOVERY_CODE_COUNT);
    for (const code of codes) expect(code).toMatch(/^[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}$/);
  });

  it('reads a code however it was typed: case, spaces and dashes do not matter', () => {
    const [code] = generateRecoveryCodes(1, () => new Uint8Array(10).fill(0xab));
    const typed = ` ${code!.toUpperCase().replace(/-/g, ' ')} `;
    expect(normaliseRecoveryCode(typed)).toBe(code!.replace(/-/g, ''));
    expect(hashRecoveryCode(normaliseRecoveryCode(typed)!)).toBe(hashRecoveryCode(normaliseRecoveryCode(code!)!));
  });

  it('refuses what cannot be a code, and tells a 6-digit code from a recovery code', () => {
    expect(normaliseRecoveryCode('123456')).toBeNull();
    expect(normaliseRecoveryCode('abcd-efgh-ijkl-mno')).toBeNull();
    expect(normaliseRecoveryCode('abcd-efgh-ijkl-mno1')).toBeNull();
    expect(isTotpCode('123 456')).toBe(true);
    expect(isTotpCode('abcd-efgh-ijkl-mnop')).toBe(false);
  });

  it('hashes never equal the code and differ per code', () => {
    const [a, b] = generateRecoveryCodes(2);
    const ha = hashRecoveryCode(normaliseRecoveryCode(a!)!);
    expect(ha).toMatch(/^[0-9a-f]{64}$/);
    expect(ha).not.toContain(normaliseRecoveryCode(a!)!);
    expect(ha).not.toBe(hashRecoveryCode(normaliseRecoveryCode(b!)!));
  });
});
