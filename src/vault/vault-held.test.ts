// The vault's listing for many repositories at once (the dashboard asks whether the key of each of
// a thousand repositories is held): one listing, the entries only, and the same answers as `has`.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openVault, vaultPaths } from './vault.js';
import { createVaultService } from './vault-service.js';

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));
const dataDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'borgkeep-vault-held-'));
  dirs.push(d);
  return d;
};

describe('vault holdings', () => {
  it('lists the entries held, not temp files or the passphrase check, and agrees with has()', () => {
    const d = dataDir();
    const vault = openVault(d);
    expect(vault.held!()).toEqual(new Set()); // no vault directory yet
    vault.put('aaaaaaaaaaaaaaaa', { passphrase: 'p', keyFile: null });
    vault.put('bbbbbbbbbbbbbbbb', { passphrase: 'q', keyFile: null });
    // What a write under way or another file of the directory looks like.
    writeFileSync(join(vaultPaths(d).dir, 'cccccccccccccccc.tmp-0123456789ab'), 'x');
    writeFileSync(vaultPaths(d).passphraseCheckFile, '{}');
    expect(vault.held!()).toEqual(new Set(['aaaaaaaaaaaaaaaa', 'bbbbbbbbbbbbbbbb']));
    const service = createVaultService({ vault, repositoryPath: (x) => join(d, 'repos', x) });
    const holds = service.holdings();
    for (const dirName of ['aaaaaaaaaaaaaaaa', 'bbbbbbbbbbbbbbbb', 'cccccccccccccccc', 'dddddddddddddddd']) {
      expect(holds({ name: dirName, dirName }), dirName).toBe(vault.has(dirName));
    }
    // A listing is a snapshot: holdings() asked again sees a key forgotten since.
    vault.forget('aaaaaaaaaaaaaaaa');
    expect(service.holdings()({ name: 'a', dirName: 'aaaaaaaaaaaaaaaa' })).toBe(false);
  });
});
