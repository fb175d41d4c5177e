// The in-place object crypto (decryptPayloadInto, sealObjectInto; decryptPayload and sealObject
// are made of them) at every size around the 64 KiB slice boundary: what is sealed opens again,
// nothing is written outside its range, and every damaged or foreign envelope is refused. That
// the envelopes are borg's own is shown against real borg elsewhere (the audit reads objects
// borg wrote; test/pull/proxy.test.ts has borg read objects sealed here).
import { randomBytes } from 'node:crypto';

import { expect, test } from 'vitest';

import { ObjectError, decryptPayload, decryptPayloadInto, sealObject, sealObjectInto, sealedLength, type BorgKey, type KeyMode } from './borg-key.js';

const key = (idKeyLength: number): BorgKey => ({
  repositoryId: randomBytes(32),
  encKey: randomBytes(32),
  encHmacKey: randomBytes(32),
  idKey: randomBytes(idKeyLength),
  tamRequired: true,
});
const SIZES = [0, 1, 15, 16, 17, 65535, 65536, 65537, 3 * 65536 + 5, 2 * 1024 * 1024 + 3];

test.each<KeyMode>(['repokey', 'repokey-blake2', 'keyfile'])('%s: sealObjectInto writes what sealObject returns, and decryptPayloadInto opens it', async (mode) => {
  const k = key(mode.endsWith('blake2') ? 128 : 32);
  for (const size of SIZES) {
    const payload = randomBytes(size);
    const iv = BigInt(size) * 1000n + 7n;
    const whole = await sealObject(payload, mode, k, iv);
    const out = Buffer.alloc(sealedLength(size) + 9, 0xee);
    await sealObjectInto(payload, mode, k, iv, out, 5);
    expect(out.subarray(5, 5 + sealedLength(size)).equals(whole), `${size} bytes`).toBe(true);
    expect(out.subarray(0, 5).equals(Buffer.alloc(5, 0xee)) && out.subarray(5 + sealedLength(size)).equals(Buffer.alloc(4, 0xee)), 'nothing written outside').toBe(true);
    const dst = Buffer.alloc(size + 100);
    const n = await decryptPayloadInto(whole, mode, k, dst);
    expect(n).toBe(size);
    expect(dst.subarray(0, n).equals(payload)).toBe(true);
    expect((await decryptPayload(whole, mode, k)).equals(payload)).toBe(true);
  }
});

test('decryptPayloadInto refuses what decryptPayload refuses', async () => {
  const k = key(32);
  const sealed = await sealObject(randomBytes(200_000), 'repokey', k, 0n);
  const dst = Buffer.alloc(sealed.length);
  for (const at of [1, 20, 33, 40, 41, 100_000, sealed.length - 1]) {
    const bad = Buffer.from(sealed);
    bad[at] ^= 1;
    await expect(decryptPayloadInto(bad, 'repokey', k, dst), `byte ${at} flipped`).rejects.toThrow(/MAC does not verify/);
    await expect(decryptPayload(bad, 'repokey', k)).rejects.toThrow(/MAC does not verify/);
  }
  await expect(decryptPayloadInto(sealed, 'repokey', key(32), dst), 'another key').rejects.toThrow(ObjectError);
  await expect(decryptPayloadInto(sealed, 'repokey-blake2', k, dst), 'another mode').rejects.toThrow(/type byte says repokey/);
  await expect(decryptPayloadInto(sealed.subarray(0, 40), 'repokey', k, dst)).rejects.toThrow(/shorter than its envelope header/);
  await expect(decryptPayloadInto(sealed, 'repokey', k, Buffer.alloc(10))).rejects.toThrow(RangeError);
});

test('sealObjectInto refuses a counter that would run past 2^64 and a buffer too small, writing nothing', async () => {
  const k = key(32);
  const out = Buffer.alloc(sealedLength(32), 0xee);
  await expect(sealObjectInto(randomBytes(32), 'repokey', k, 2n ** 64n - 2n, out, 0)).rejects.toThrow(/counter is out of range/);
  await expect(sealObjectInto(randomBytes(32), 'repokey', k, -1n, out, 0)).rejects.toThrow(/counter is out of range/);
  await expect(sealObjectInto(randomBytes(33), 'repokey', k, 0n, out, 0)).rejects.toThrow(RangeError);
  await expect(sealObjectInto(randomBytes(32), 'none', k, 0n, out, 0)).rejects.toThrow(/not encrypted/);
  expect(out.equals(Buffer.alloc(sealedLength(32), 0xee))).toBe(true);
});
