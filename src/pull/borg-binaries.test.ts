import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, expect, test } from 'vitest';

import { checkBorgBinaries } from './borg-binaries.js';

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
});
