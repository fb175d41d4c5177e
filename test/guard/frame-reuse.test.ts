// The guard reads a backup's large puts into buffers it has used before (src/rpc/frame-pool.ts).
// Reusing memory too early would hand borg serve bytes of a later frame in place of an earlier
// one, and borg's own repository check would not notice (its CRCs are computed by borg serve from
// what it received). So: real backups of random data through each way in, then borg check with
// --verify-data (every object decrypted and its id recomputed by the client) and an extract
// compared byte for byte.

import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { createBorgkeepEnv, type BorgkeepEnv } from '../helpers/borgkeep-env.js';

for (const transport of ['forced-command', 'embedded'] as const) {
  describe(`a backup's frames read into reused buffers (${transport})`, () => {
    let env: BorgkeepEnv;
    beforeAll(async () => {
      env = createBorgkeepEnv(`frame-reuse-${transport}`, transport);
      await env.repoWithKeys('main', { admin: 'full', laptop: 'append' });
      const init = await env.borg('admin', ['init', '-e', 'repokey', env.url('main')]);
      expect(init.code, init.stderr).toBe(0);
    });
    afterAll(() => env?.cleanup());

    test('borg check --verify-data passes and the files come back byte for byte', async () => {
      const src = join(env.root, 'src');
      mkdirSync(src);
      // 40 MiB in files of varying size: about twenty 2 MiB chunks, and small frames between them.
      for (let i = 0; i < 10; i++) writeFileSync(join(src, `f${i}.bin`), randomBytes((1 + (i % 4)) * 1024 * 1024 + i * 4099));
      const create = await env.borg('laptop', ['create', '--compression', 'none', `${env.url('main')}::one`, src]);
      expect(create.code, create.stderr).toBe(0);
      const check = await env.borg('admin', ['check', '--verify-data', env.url('main')]);
      expect(check.code, check.stderr).toBe(0);
      const out = join(env.root, 'out');
      mkdirSync(out);
      const extract = await env.borg('admin', ['extract', `${env.url('main')}::one`], { cwd: out });
      expect(extract.code, extract.stderr).toBe(0);
      for (let i = 0; i < 10; i++) {
        expect(readFileSync(join(out, src.slice(1), `f${i}.bin`)).equals(readFileSync(join(src, `f${i}.bin`))), `f${i}.bin`).toBe(true);
      }
    });
  });
}
