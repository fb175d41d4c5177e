// Where the vault's master passphrase comes from: the file given, else the systemd credential.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { VAULT_CREDENTIAL, masterPassphrase } from './vault-commands.js';

const dir = mkdtempSync(join(tmpdir(), 'bk-master-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('masterPassphrase', () => {
  it('reads the file given (one line end dropped), else the systemd credential, else none', () => {
    writeFileSync(join(dir, 'flag'), 'from the flag\n');
    writeFileSync(join(dir, VAULT_CREDENTIAL), 'from systemd\r\n');
    expect(masterPassphrase(join(dir, 'flag'), { CREDENTIALS_DIRECTORY: dir })).toBe('from the flag');
    expect(masterPassphrase(undefined, { CREDENTIALS_DIRECTORY: dir })).toBe('from systemd');
    expect(masterPassphrase(undefined, { CREDENTIALS_DIRECTORY: join(dir, 'none') })).toBeUndefined();
    expect(masterPassphrase(undefined, {})).toBeUndefined();
  });

  it('refuses an empty or missing file in one sentence', () => {
    writeFileSync(join(dir, 'empty'), '\n');
    expect(() => masterPassphrase(join(dir, 'empty'), {})).toThrow(`the vault passphrase file ${join(dir, 'empty')} is empty`);
    expect(() => masterPassphrase(join(dir, 'missing'), {})).toThrow(`cannot read the vault passphrase file ${join(dir, 'missing')}: there is no such file`);
  });
});
