// Objects written by the real borg 1.2 client, for tests of what the guard does with a `put`:
// a local repository made with `borg init` and `borg create` (one archive per compressor, each
// of new content so that it adds objects of its own), read back from its segments with the
// repository's mode and unlocked key. Small chunks, so a few hundred KB make many objects.

import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { objectMode, unlockKey, type BorgKey, type KeyMode } from '../../src/repository/borg-key.js';
import { MANIFEST_ID } from '../../src/repository/manifest.js';
import { parseRepoConfig } from '../../src/repository/repo-config.js';
import { listSegments, readSegment } from '../../src/repository/segments.js';
import type { Prng } from './prng.js';

export const OBJECTS_PASSPHRASE = 'verify objects test passphrase';

export interface StoredObject {
  readonly id: Buffer;
  readonly envelope: Buffer;
}

export interface BorgObjects {
  readonly repoPath: string;
  readonly mode: KeyMode;
  /** Null for `none`. */
  readonly key: BorgKey | null;
  /** Every PUT in the segments, the manifests included, in write order. */
  readonly objects: StoredObject[];
}

/** Text-like bytes (words of a small vocabulary), which lz4 and zstd compress about 2:1. */
export function textLike(prng: Prng, n: number): Buffer {
  const words = Array.from({ length: 500 }, () => Buffer.from(prng.bytes(prng.range(2, 9)).map((b) => 97 + (b % 26))));
  const out = Buffer.allocUnsafe(n);
  let at = 0;
  while (at < n) {
    const w = words[prng.int(words.length)];
    at += w.copy(out, at);
    if (at < n) out[at++] = prng.int(10) === 0 ? 10 : 32;
  }
  return out;
}

export function borgEnv(baseDir: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: baseDir,
    LANG: 'C.UTF-8',
    BORG_BASE_DIR: baseDir,
    BORG_PASSPHRASE: OBJECTS_PASSPHRASE,
    BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes',
    BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes',
  };
}

function borg(args: string[], env: NodeJS.ProcessEnv, cwd: string): void {
  const r = spawnSync('borg', args, { env, cwd, stdio: 'pipe' });
  if (r.status !== 0) throw new Error(`borg ${args.join(' ')} failed (${r.status}): ${r.stderr.toString()}`);
}

/**
 * `borg init -e <encryption>` in `dir/<name>`, then one archive per compressor of `compressors`,
 * each of `bytes` of new content: half text-like, half random, plus a few tiny files.
 */
export function makeBorgRepository(dir: string, name: string, encryption: string, prng: Prng, compressors = ['none', 'lz4', 'zstd,3'], bytes = 300_000): string {
  const repoPath = join(dir, name);
  const env = borgEnv(join(dir, `${name}-base`));
  borg(['init', '-e', encryption, repoPath], env, dir);
  for (const [i, c] of compressors.entries()) {
    const data = join(dir, `${name}-data-${i}`);
    mkdirSync(data, { recursive: true });
    writeFileSync(join(data, 'text.txt'), textLike(prng, bytes / 2));
    writeFileSync(join(data, 'random.bin'), prng.bytes(bytes / 2));
    for (let j = 0; j < 3; j++) writeFileSync(join(data, `tiny-${j}`), prng.bytes(prng.range(1, 40)));
    // Small chunks (~4 KiB): many objects from little data.
    borg(['create', '-C', c, '--chunker-params', 'buzhash,10,14,12,4095', `${repoPath}::a${i}`, '.'], env, data);
  }
  return repoPath;
}

/** Every object of a repository as borg wrote it, with its mode and (for encrypted and authenticated modes) its key. */
export async function readBorgObjects(repoPath: string, passphrase = OBJECTS_PASSPHRASE): Promise<BorgObjects> {
  const config = parseRepoConfig(readFileSync(join(repoPath, 'config'), 'utf8'));
  const objects: StoredObject[] = [];
  for (const file of listSegments(repoPath)) {
    const seg = await readSegment(file, () => true);
    for (const e of seg.entries) if (e.tag === 'put' && e.data) objects.push({ id: e.id, envelope: e.data });
  }
  const manifest = objects.find((o) => o.id.equals(MANIFEST_ID));
  if (!manifest) throw new Error('the repository has no manifest');
  const mode = objectMode(manifest.envelope);
  if (!mode) throw new Error('the manifest has an unknown type byte');
  const key = mode === 'none' ? null : unlockKey(config.key ?? '', passphrase, config.id);
  return { repoPath, mode, key, objects };
}
