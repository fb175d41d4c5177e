// A real `borg create` held to a slow upload, running in the background: `mib` MiB of fresh random
// data (a file written into `source`) at `kibPerSecond` KiB/s, so its session stays open long
// enough for a test to act on it (kill a gateway or a node, count the key's sessions).

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface SlowBackup {
  readonly child: ChildProcess;
  /** Its exit code and everything it wrote to stderr, once it ended. */
  readonly done: Promise<{ code: number | null; stderr: string }>;
  /** What it wrote to stderr so far. */
  stderr(): string;
}

/** Starts `borg create --upload-ratelimit KIB --compression none TARGET SOURCE` (TARGET is REPO::ARCHIVE) with `env`. */
export function startSlowBackup(o: { source: string; mib: number; target: string; env: NodeJS.ProcessEnv; kibPerSecond?: number }): SlowBackup {
  mkdirSync(o.source);
  writeFileSync(join(o.source, 'random.bin'), randomBytes(o.mib * 1024 * 1024));
  const child = spawn('borg', ['create', '--upload-ratelimit', String(o.kibPerSecond ?? 1024), '--compression', 'none', o.target, o.source], { env: o.env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{ code: number | null; stderr: string }>((resolve) => child.on('exit', (code) => resolve({ code, stderr })));
  return { child, done, stderr: () => stderr };
}
