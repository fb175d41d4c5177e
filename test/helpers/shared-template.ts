// Fixtures built once per `vitest run` and copied by every file that needs them: a set-up that
// several files repeat (keys, grants, `borg init`, a few archives, each one a process or three)
// is built by the first file that asks, in the run's shared folder (test/global-setup.ts makes it
// and removes it afterwards), and the others copy the finished folder. A copy is a private,
// writable installation: nothing written after the copy is shared. Without the shared folder
// (a run that skipped the global setup) every caller builds its own, as before.

import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** How long a file waits for another file's build before building its own: well inside the
 *  hook timeout (300 s), so a build that died with its worker (its folder stays "building")
 *  costs a waiting file two minutes, not its tests. */
const WAIT_MS = 120_000;

/**
 * The folder of the template `name`, built by `build(dir)` the first time any file of this run asks;
 * null when there is no shared folder or the build failed elsewhere (the caller then builds its own).
 */
export async function sharedTemplate(name: string, build: (dir: string) => Promise<void>): Promise<string | null> {
  const shared = process.env.BORGKEEP_TEST_SHARED;
  if (!shared || !existsSync(shared)) return null;
  const done = join(shared, name);
  const building = join(shared, `${name}.building`);
  if (existsSync(done)) return done;
  try {
    mkdirSync(building); // atomic: exactly one file builds
  } catch {
    for (const end = Date.now() + WAIT_MS; Date.now() < end; await sleep(200)) {
      if (existsSync(done)) return done;
      if (!existsSync(building)) return null; // that build failed
    }
    return null;
  }
  const tmp = join(shared, `${name}.tmp`);
  try {
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp);
    await build(tmp);
    renameSync(tmp, done);
    return done;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
    rmSync(building, { recursive: true, force: true });
  }
}
