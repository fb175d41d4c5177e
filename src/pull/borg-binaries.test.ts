import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, expect, test } from 'vitest';

import { checkBorgBinaries, looksLikeProgram } from './borg-binaries.js';

const root = mkdtempSync(join(tmpdir(), 'bk-borg-binaries-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

test("serve's standalone borg binaries: a readable regular file passes; anything else is one sentence naming the entry and the file", () => {
  const good = join(root, 'borg-linux64');
  writeFileSync(good, '#!/bin/sh\nexec /usr/bin/borg "$@"\n', { mode: 0o755 });
  expect(() => checkBorgBinaries({})).not.toThrow();
  expect(() => checkBorgBinaries({ 'linux-x86_64': good })).not.toThrow();

  const missing = join(root, 'no-such-borg');
  expect(() => checkBorgBinaries({ 'linux-x86_64': good, 'linux-aarch64': missing })).toThrow(
    `config file, pullBorgBinaries.linux-aarch64: cannot read ${missing}: there is no such file`,
  );
  const directory = join(root, 'a-directory');
  mkdirSync(directory);
  expect(() => checkBorgBinaries({ 'linux-x86_64': directory })).toThrow(`config file, pullBorgBinaries.linux-x86_64: ${directory} is not a regular file`);
  const empty = join(root, 'empty');
  writeFileSync(empty, '');
  expect(() => checkBorgBinaries({ 'linux-x86_64': empty })).toThrow(`config file, pullBorgBinaries.linux-x86_64: ${empty} is empty`);
  expect(() => checkBorgBinaries({ 'linux-x86_64': join(good, 'below-a-file') })).toThrow(/^config file, pullBorgBinaries\.linux-x86_64: cannot read .*: ENOTDIR/);
  // A file no client can run as borg (a .tgz release, a key): never sent to a client.
  const tgz = join(root, 'borg-linux-glibc231-x86_64.tgz');
  writeFileSync(tgz, Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0]));
  expect(() => checkBorgBinaries({ 'linux-x86_64': tgz })).toThrow(
    `config file, pullBorgBinaries.linux-x86_64: ${tgz} is not a program (an ELF or Mach-O binary, or a #! script): give the single-file borg, e.g. borg-linux64`,
  );
  const key = join(root, 'id_ed25519');
  writeFileSync(key, '-----BEGIN OPENSSH PRIVATE KEY-----\n');
  expect(() => checkBorgBinaries({ 'linux-x86_64': key })).toThrow(/is not a program/);
});

test('a program is an ELF or Mach-O binary or a #! script, by its first bytes', () => {
  expect(looksLikeProgram(Buffer.from('\x7fELF\x02\x01', 'latin1'))).toBe(true);
  expect(looksLikeProgram(Buffer.from([0xcf, 0xfa, 0xed, 0xfe]))).toBe(true);
  expect(looksLikeProgram(Buffer.from([0xca, 0xfe, 0xba, 0xbe]))).toBe(true);
  expect(looksLikeProgram(Buffer.from('#!/bin/sh\n'))).toBe(true);
  expect(looksLikeProgram(Buffer.from('#!'))).toBe(true);
  expect(looksLikeProgram(Buffer.from('\x7fEL', 'latin1'))).toBe(false);
  expect(looksLikeProgram(Buffer.from([0x1f, 0x8b, 0x08, 0x00]))).toBe(false);
  expect(looksLikeProgram(Buffer.from('PK\x03\x04', 'latin1'))).toBe(false);
  expect(looksLikeProgram(Buffer.alloc(0))).toBe(false);
});
