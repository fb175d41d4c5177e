// Reads one OpenSSH public key line (`TYPE BASE64 [comment]`, as in a .pub file) and decodes the
// key blob's SSH wire format (RFC 4253 §6.6, RFC 5656 §3.1, RFC 8709 §4) far enough to know the
// key is what its line says it is, how many bits it has, and its fingerprint, computed exactly as
// `ssh-keygen -l` prints it. It only accepts keys an admin should grant backup rights to today;
// it never accepts an authorized_keys options prefix, a certificate or a private key.

import { createHash, createPublicKey } from 'node:crypto';
import { invalidInput } from '../errors.js';

export interface SshPublicKey {
  type: string;
  /** Base64 of the blob, canonical (what sshd hands to AuthorizedKeysCommand as %k). */
  blob: string;
  comment: string | null;
  bits: number;
  /** "SHA256:<base64 without padding>", as `ssh-keygen -l` prints it. */
  fingerprint: string;
}

export const MIN_RSA_BITS = 2048;
export const ACCEPTED_KEY_TYPES = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'ssh-rsa',
] as const;
/** A public key line is a few hundred bytes; RSA 16384 is about 2.8 KB. Anything much bigger is not a key. */
export const MAX_KEY_LINE_LENGTH = 16 * 1024;

const USE_INSTEAD = 'use ed25519, ecdsa or rsa ≥ 2048';
const LINE_FORMAT = "the key is not an OpenSSH public key line (expected 'TYPE BASE64 [comment]')";

const ECDSA_CURVES: Record<string, { bits: number; coordinateBytes: number; jwkCurve: string }> = {
  nistp256: { bits: 256, coordinateBytes: 32, jwkCurve: 'P-256' },
  nistp384: { bits: 384, coordinateBytes: 48, jwkCurve: 'P-384' },
  nistp521: { bits: 521, coordinateBytes: 66, jwkCurve: 'P-521' },
};

export function sshFingerprint(blob: Uint8Array): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/**
 * Parses the text of a .pub file (or stdin): exactly one key line; blank lines and `#` comment
 * lines are ignored. Throws BK_ERR_INVALID_INPUT with one sentence saying what is wrong.
 */
export function parseSshPublicKey(text: string): SshPublicKey {
  if (text.length > MAX_KEY_LINE_LENGTH) {
    throw invalidInput(`the input is ${text.length} bytes long; an OpenSSH public key line is at most ${MAX_KEY_LINE_LENGTH}`);
  }
  const lines = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  if (lines[0]?.startsWith('-----BEGIN') && lines[0].includes('PRIVATE KEY')) {
    throw invalidInput('this is a private key; give the public key (the .pub file next to it) instead');
  }
  if (lines[0]?.startsWith('---- BEGIN SSH2 PUBLIC KEY')) {
    throw invalidInput("the key is in RFC 4716 (SSH2) format; convert it with 'ssh-keygen -i -f FILE' first");
  }
  if (lines.length === 0) throw invalidInput('the input holds no public key (it is empty)');
  if (lines.length > 1) throw invalidInput(`the input holds ${lines.length} lines; give exactly one public key line`);
  return parseKeyLine(lines[0]!);
}

function parseKeyLine(line: string): SshPublicKey {
  const fields = /^(\S+)\s+(\S+)(?:\s+(.*))?$/.exec(line);
  if (!fields) throw invalidInput(LINE_FORMAT);
  const [, type, base64, rest] = fields as unknown as [string, string, string, string | undefined];

  if (!looksLikeKeyType(type)) {
    if (line.split(/\s+/).slice(1).some(looksLikeKeyType)) {
      throw invalidInput("the line starts with authorized_keys options; give only 'TYPE BASE64 [comment]'");
    }
    throw invalidInput(LINE_FORMAT);
  }
  checkAcceptedType(type);

  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64) || base64.length % 4 !== 0) {
    throw invalidInput("the key's base64 data is not valid base64");
  }
  const blob = Buffer.from(base64, 'base64');
  if (blob.toString('base64') !== base64) throw invalidInput("the key's base64 data is not valid base64");

  const reader = wireReader(blob);
  const innerType = reader.string().toString('latin1');
  if (innerType !== type) {
    throw invalidInput(`the key's data says it is '${printable(innerType)}' but the line says '${type}'`);
  }
  const bits = type === 'ssh-ed25519' ? readEd25519(reader) : type === 'ssh-rsa' ? readRsa(reader) : readEcdsa(type, reader);
  if (reader.remaining() !== 0) {
    throw invalidInput(`the key's data has ${reader.remaining()} unexpected bytes after the key`);
  }
  const comment = rest?.trim() || null;
  return { type, blob: base64, comment, bits, fingerprint: sshFingerprint(blob) };
}

function looksLikeKeyType(token: string): boolean {
  return /^(ssh-[a-z0-9]+|ecdsa-sha2-[a-z0-9]+|sk-[a-z0-9-]+@openssh\.com|[a-z0-9-]+-cert-v01@openssh\.com)$/.test(token);
}

function checkAcceptedType(type: string): void {
  if ((ACCEPTED_KEY_TYPES as readonly string[]).includes(type)) return;
  if (type.endsWith('-cert-v01@openssh.com')) {
    throw invalidInput('SSH certificates are not accepted; give the plain public key');
  }
  if (type === 'ssh-dss') throw invalidInput(`dsa keys are not accepted; ${USE_INSTEAD}`);
  if (type.startsWith('sk-')) throw invalidInput(`security-key (${type}) keys are not accepted yet; ${USE_INSTEAD}`);
  throw invalidInput(`'${type}' keys are not accepted; ${USE_INSTEAD}`);
}

function readEd25519(reader: WireReader): number {
  const key = reader.string();
  if (key.length !== 32) throw invalidInput(`the ed25519 key is ${key.length} bytes long; it must be 32`);
  return 256;
}

function readEcdsa(type: string, reader: WireReader): number {
  const expected = type.slice('ecdsa-sha2-'.length);
  const curve = ECDSA_CURVES[expected]!;
  const curveName = reader.string().toString('latin1');
  if (curveName !== expected) {
    throw invalidInput(`the ecdsa key's curve is '${printable(curveName)}' but its type says '${expected}'`);
  }
  const point = reader.string();
  // Uncompressed point only (0x04 || X || Y), as OpenSSH writes it.
  if (point.length !== 1 + 2 * curve.coordinateBytes || point[0] !== 0x04) {
    throw invalidInput(`the ecdsa key's point is not a valid uncompressed ${expected} point`);
  }
  try {
    // OpenSSL checks the point is on the curve.
    createPublicKey({
      format: 'jwk',
      key: {
        kty: 'EC',
        crv: curve.jwkCurve,
        x: point.subarray(1, 1 + curve.coordinateBytes).toString('base64url'),
        y: point.subarray(1 + curve.coordinateBytes).toString('base64url'),
      },
    });
  } catch {
    throw invalidInput(`the ecdsa key's point is not on the ${expected} curve`);
  }
  return curve.bits;
}

function readRsa(reader: WireReader): number {
  const exponent = reader.mpint();
  const modulus = reader.mpint();
  if (exponent.length === 0 || (exponent[exponent.length - 1]! & 1) === 0) {
    throw invalidInput("the rsa key's public exponent is not valid");
  }
  const bits = bitLength(modulus);
  if (bits < MIN_RSA_BITS) {
    throw invalidInput(`RSA keys must have at least ${MIN_RSA_BITS} bits; this one has ${bits}`);
  }
  return bits;
}

/** Bit length of an unsigned big-endian integer with no leading zero bytes. */
function bitLength(value: Buffer): number {
  if (value.length === 0) return 0;
  return (value.length - 1) * 8 + (32 - Math.clz32(value[0]!));
}

interface WireReader {
  string(): Buffer;
  /** A positive mpint's magnitude, leading zero bytes removed. */
  mpint(): Buffer;
  remaining(): number;
}

function wireReader(buffer: Buffer): WireReader {
  let offset = 0;
  const malformed = () => invalidInput("the key's data is truncated or malformed");
  const string = (): Buffer => {
    if (buffer.length - offset < 4) throw malformed();
    const length = buffer.readUInt32BE(offset);
    offset += 4;
    if (buffer.length - offset < length) throw malformed();
    const value = buffer.subarray(offset, offset + length);
    offset += length;
    return value;
  };
  return {
    string,
    mpint() {
      const value = string();
      if (value.length > 0 && (value[0]! & 0x80) !== 0) throw invalidInput("the key's data holds a negative number");
      let start = 0;
      while (start < value.length && value[start] === 0) start += 1;
      return value.subarray(start);
    },
    remaining: () => buffer.length - offset,
  };
}

function printable(text: string): string {
  const clean = text.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > 40 ? `${clean.slice(0, 40)}…` : clean;
}
