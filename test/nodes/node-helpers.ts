// Storage nodes for tests (issue 19): `borgkeep node run` processes on loopback, each with its own
// data directory, on a test PostgreSQL database.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { BORGKEEP } from '../helpers/borgkeep-env.js';
import { asHost } from '../helpers/ssh-transports.js';

export interface TestNode {
  readonly name: string;
  readonly dataDir: string;
  readonly port: number;
  readonly process: ChildProcess;
  log(): string;
  /** Path of a repository on this node's disk. */
  repoPath(dirName: string): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * Starts `borgkeep node run --name NAME` with DATA as data directory (on `port`, or one the system
 * picks), as a machine of its own named `store-NAME` (asHost): what it records is that host's.
 */
export async function startNode(name: string, dataDir: string, database: string, port = 0): Promise<TestNode> {
  mkdirSync(dataDir, { recursive: true });
  const [command, args] = asHost(`store-${name}`, process.execPath, [BORGKEEP, '--data-dir', dataDir, 'node', 'run', '--name', name, '--ssh-listen', `127.0.0.1:${port}`, '--database', database, '--shutdown-grace', '5']);
  const child = spawn(command, args, {
    env: { ...process.env, BORGKEEP_DATA_DIR: undefined },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout!.on('data', (b: Buffer) => (text += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (text += b.toString()));
  const deadline = Date.now() + 30_000;
  let bound = 0;
  while (bound === 0) {
    const m = /node SSH server listening on 127\.0\.0\.1:(\d+)/.exec(text);
    if (m) bound = Number(m[1]);
    else if (child.exitCode !== null) throw new Error(`borgkeep node ${name} exited with ${child.exitCode}:\n${text}`);
    else if (Date.now() > deadline) throw new Error(`borgkeep node ${name} did not start:\n${text}`);
    else await new Promise((r) => setTimeout(r, 50));
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    name,
    dataDir,
    port: bound,
    process: child,
    log: () => text,
    repoPath: (dirName) => join(dataDir, 'repos', dirName),
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}
