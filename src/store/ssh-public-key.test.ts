import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BorgkeepError } from '../errors.js';
import { parseSshPublicKey } from './ssh-public-key.js';

let dir: string;

/** Generates a key with ssh-keygen and returns its .pub line and what `ssh-keygen -l` says of it. */
function generate(name: string, args: string[], comment = `${name}@test`) {
  const file = join(dir, name);
  execFileSync('ssh-keygen', ['-q', ...args, '-N', '', '-C', comment, '-f', file], { stdio: 'pipe' });
  const line = readFileSync(`${file}.pub`, 'utf8');
  const listed = execFileSync('ssh-keygen', ['-l', '-f', `${file}.pub`], { encoding: 'utf8' }).trim();
  const [, bits, fingerprint] = /^(\d+) (SHA256:\S+) /.exec(listed)!;
  return { file, line, bits: Number(bits), fingerprint: fingerprint! };
}

function refusal(text: string): string {
  try {
    parseSshPublicKey(text);
  } catch (error) {
    expect(error).toBeInstanceOf(BorgkeepError);
    expect((error as BorgkeepError).code).toBe('BK_ERR_INVALID_INPUT');
    const message = (error as Error).message;
    expect(message).not.toContain('\n');
    return message;
  }
  throw new Error(`accepted: ${text}`);
}

function sshString(value: Buffer | string): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value) : value;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'borgkeep-sshkey-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('parseSshPublicKey against ssh-keygen', () => {
  const cases: Array<[string, string[], string]> = [
    ['ed25519', ['-t', 'ed25519'], 'ssh-ed25519'],
    ['ecdsa256', ['-t', 'ecdsa', '-b', '256'], 'ecdsa-sha2-nistp256'],
    ['ecdsa384', ['-t', 'ecdsa', '-b', '384'], 'ecdsa-sha2-nistp384'],
    ['ecdsa521', ['-t', 'ecdsa', '-b', '521'], 'ecdsa-sha2-nistp521'],
    ['rsa2048', ['-t', 'rsa', '-b', '2048'], 'ssh-rsa'],
    ['rsa2050', ['-t', 'rsa', '-b', '2050'], 'ssh-rsa'], // modulus not a whole number of bytes
  ];
  it.each(cases)('%s: type, bits and fingerprint match ssh-keygen -l', (name, args, type) => {
    const generated = generate(name, args, `${name} user@host with spaces`);
    const key = parseSshPublicKey(generated.line);
    expect(key.type).toBe(type);
    expect(key.bits).toBe(generated.bits);
    expect(key.fingerprint).toBe(generated.fingerprint);
    expect(key.comment).toBe(`${name} user@host with spaces`);
    expect(key.blob).toBe(generated.line.split(' ')[1]);
  });

  it('accepts a line without a comment, with CRLF and surrounding blank or # lines', () => {
    const generated = generate('nocomment', ['-t', 'ed25519'], '');
    const [type, blob] = generated.line.trim().split(' ');
    const key = parseSshPublicKey(`# my laptop\r\n\r\n${type} ${blob}\r\n\n`);
    expect(key.comment).toBeNull();
    expect(key.fingerprint).toBe(generated.fingerprint);
  });
});

describe('parseSshPublicKey refusals', () => {
  it('refuses RSA keys under 2048 bits, naming the size', () => {
    const generated = generate('rsa1024', ['-t', 'rsa', '-b', '1024']);
    expect(refusal(generated.line)).toBe('RSA keys must have at least 2048 bits; this one has 1024');
  });

  it('refuses dsa keys', () => {
    const line = `ssh-dss ${Buffer.concat([sshString('ssh-dss'), sshString(Buffer.alloc(20, 1))]).toString('base64')} old`;
    expect(refusal(line)).toBe('dsa keys are not accepted; use ed25519, ecdsa or rsa ≥ 2048');
  });

  it('refuses a private key and says to give the .pub file', () => {
    const generated = generate('private', ['-t', 'ed25519']);
    expect(refusal(readFileSync(generated.file, 'utf8'))).toMatch(/^this is a private key; give the public key/);
  });

  it('refuses certificates', () => {
    const ca = generate('ca', ['-t', 'ed25519']);
    const user = generate('certified', ['-t', 'ed25519']);
    execFileSync('ssh-keygen', ['-q', '-s', ca.file, '-I', 'id', user.file], { stdio: 'pipe' });
    expect(refusal(readFileSync(`${user.file}-cert.pub`, 'utf8'))).toBe(
      'SSH certificates are not accepted; give the plain public key',
    );
  });

  it('refuses an authorized_keys options prefix', () => {
    const generated = generate('options', ['-t', 'ed25519']);
    expect(refusal(`restrict,command="borg serve" ${generated.line}`)).toBe(
      "the line starts with authorized_keys options; give only 'TYPE BASE64 [comment]'",
    );
  });

  it('refuses a line whose type differs from the type inside the blob', () => {
    const generated = generate('mismatch', ['-t', 'ed25519']);
    const blob = generated.line.split(' ')[1];
    expect(refusal(`ssh-rsa ${blob}`)).toBe("the key's data says it is 'ssh-ed25519' but the line says 'ssh-rsa'");
  });

  it('refuses an ecdsa key whose curve differs from its type', () => {
    const generated = generate('curve', ['-t', 'ecdsa', '-b', '384']);
    const blob = Buffer.from(generated.line.split(' ')[1]!, 'base64');
    // Relabel the whole blob as nistp256 in both places but keep the nistp384 curve field.
    const rest = blob.subarray(4 + 'ecdsa-sha2-nistp384'.length);
    const forged = Buffer.concat([sshString('ecdsa-sha2-nistp256'), rest]).toString('base64');
    expect(refusal(`ecdsa-sha2-nistp256 ${forged}`)).toBe(
      "the ecdsa key's curve is 'nistp384' but its type says 'nistp256'",
    );
  });

  it('refuses an ecdsa point that is not on the curve', () => {
    const point = Buffer.alloc(65, 7);
    point[0] = 4;
    const forged = Buffer.concat([sshString('ecdsa-sha2-nistp256'), sshString('nistp256'), sshString(point)]);
    expect(refusal(`ecdsa-sha2-nistp256 ${forged.toString('base64')}`)).toBe(
      "the ecdsa key's point is not on the nistp256 curve",
    );
  });

  it('refuses truncated data, trailing bytes, bad base64 and short ed25519 keys', () => {
    const generated = generate('broken', ['-t', 'ed25519']);
    const blob = Buffer.from(generated.line.split(' ')[1]!, 'base64');
    expect(refusal(`ssh-ed25519 ${blob.subarray(0, blob.length - 3).toString('base64')}`)).toBe(
      "the key's data is truncated or malformed",
    );
    expect(refusal(`ssh-ed25519 ${Buffer.concat([blob, Buffer.from([0, 0, 0, 0])]).toString('base64')}`)).toBe(
      "the key's data has 4 unexpected bytes after the key",
    );
    expect(refusal('ssh-ed25519 AAAA$$$')).toBe("the key's base64 data is not valid base64");
    const short = Buffer.concat([sshString('ssh-ed25519'), sshString(Buffer.alloc(31))]);
    expect(refusal(`ssh-ed25519 ${short.toString('base64')}`)).toBe('the ed25519 key is 31 bytes long; it must be 32');
  });

  it('refuses empty input, several keys, unknown types and non-key text', () => {
    const one = generate('one', ['-t', 'ed25519']).line;
    const two = generate('two', ['-t', 'ed25519']).line;
    expect(refusal('\n\n')).toBe('the input holds no public key (it is empty)');
    expect(refusal(one + two)).toBe('the input holds 2 lines; give exactly one public key line');
    expect(refusal('ssh-foo AAAA')).toBe("'ssh-foo' keys are not accepted; use ed25519, ecdsa or rsa ≥ 2048");
    expect(refusal('hello world')).toBe(
      "the key is not an OpenSSH public key line (expected 'TYPE BASE64 [comment]')",
    );
    expect(refusal('ssh-ed25519')).toBe(
      "the key is not an OpenSSH public key line (expected 'TYPE BASE64 [comment]')",
    );
  });
});
