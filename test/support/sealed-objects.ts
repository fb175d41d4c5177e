// Objects as borg's client writes them, for tests that play a client holding the key: an
// envelope sealed with a valid MAC (C.4) and the id borg gives a plaintext (C.5).
import { createCipheriv, createHash, createHmac } from 'node:crypto';

import { MODE_TYPE_BYTE, blake2b256, isBlake2, isEncrypted, type BorgKey, type KeyMode } from '../../src/repository/borg-key.js';

/** TYPE | MAC | IV | AES-256-CTR(payload) at counter `counter` (TYPE | payload when not encrypted). */
export async function sealEnvelope(mode: KeyMode, key: BorgKey, payload: Buffer, counter: number): Promise<Buffer> {
  const type = Buffer.from([MODE_TYPE_BYTE[mode]]);
  if (!isEncrypted(mode)) return Buffer.concat([type, payload]);
  const iv8 = Buffer.alloc(8);
  iv8.writeBigUInt64BE(BigInt(counter));
  const ct = createCipheriv('aes-256-ctr', key.encKey, Buffer.concat([Buffer.alloc(8), iv8])).update(payload);
  const ivct = Buffer.concat([iv8, ct]);
  const mac = isBlake2(mode) ? await blake2b256(key.encHmacKey, ivct) : createHmac('sha256', key.encHmacKey).update(ivct).digest();
  return Buffer.concat([type, mac, ivct]);
}

/** The id borg gives `plain` in a `mode` repository (the key is not used for `none`). */
export async function plainId(mode: KeyMode, key: BorgKey | null, plain: Buffer): Promise<Buffer> {
  if (mode === 'none' || !key) return createHash('sha256').update(plain).digest();
  return isBlake2(mode) ? blake2b256(key.idKey, plain) : createHmac('sha256', key.idKey).update(plain).digest();
}
