// The version of the installed borg, which the guard reports in its own answer to `negotiate`
// (it must answer before it knows which repository the client wants, so before the child
// starts). Running `borg --version` costs a Python start-up, so it is cached in the data
// directory, keyed by the borg executable's identity, and corrected from the child's own reply.

import { execFileSync } from 'node:child_process';
import { readFileSync, realpathSync, statSync, writeFileSync, renameSync } from 'node:fs';
import { delimiter, join } from 'node:path';

export type VersionTuple = [number, number, number, number];

interface Cache {
  path: string;
  mtimeMs: number;
  size: number;
  version: VersionTuple;
}

export function parseBorgVersion(text: string): VersionTuple | null {
  const m = /(\d+)\.(\d+)\.(\d+)/.exec(text);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3]), -1] : null;
}

function which(command: string, pathEnv: string): string | null {
  if (command.includes('/')) return command;
  for (const dir of pathEnv.split(delimiter)) {
    const p = join(dir, command);
    try {
      if (statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return null;
}

function identity(command: string, pathEnv: string): { path: string; mtimeMs: number; size: number } | null {
  const found = which(command, pathEnv);
  if (!found) return null;
  try {
    const real = realpathSync(found);
    const st = statSync(real);
    return { path: real, mtimeMs: st.mtimeMs, size: st.size };
  } catch {
    return null;
  }
}

export function createBorgVersionCache(dataDir: string, borgCommand: string, pathEnv: string) {
  const file = join(dataDir, 'borg-version.json');
  const id = identity(borgCommand, pathEnv);
  const save = (version: VersionTuple): void => {
    if (!id) return;
    try {
      const tmp = `${file}.${process.pid}.tmp`;
      writeFileSync(tmp, JSON.stringify({ ...id, version } satisfies Cache));
      renameSync(tmp, file);
    } catch {
      // a read-only data dir only costs a borg --version per session
    }
  };
  return {
    /** The installed borg's version; null when borg cannot be found or run. */
    get(): VersionTuple | null {
      if (!id) return null;
      try {
        const c = JSON.parse(readFileSync(file, 'utf8')) as Cache;
        if (c.path === id.path && c.mtimeMs === id.mtimeMs && c.size === id.size) return c.version;
      } catch {
        // no cache yet
      }
      try {
        const v = parseBorgVersion(execFileSync(borgCommand, ['--version'], { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'ignore'] }));
        if (v) save(v);
        return v;
      } catch {
        return null;
      }
    },
    /** Records the version a child reported, when it differs from the cached one. */
    correct(version: VersionTuple): void {
      save(version);
    },
  };
}
