// Real borg RPC traffic for unit tests of the wire code: runs a few ordinary borg 1.2 client
// commands against a throw-away repository over a stand-in for ssh (BORG_RSH) that runs
// `borg serve` locally and keeps a copy of both directions. Frame boundaries come from borg's
// own msgpack Unpacker, not from the code under test.
//
// Capturing takes a few seconds of borg, so the result is kept in the temp directory under a
// name derived from this file's source and `borg --version`: several test files (and later
// runs) share one capture, and any change here or to borg makes a fresh one.

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createPrng } from './prng.js';
import { runPython } from './python.js';

export interface BorgSession {
  readonly command: string;
  /** Client -> server bytes, and the frames in them (split by python msgpack). */
  readonly client: Buffer;
  readonly clientFrames: Buffer[];
  /** Server -> client bytes, and the frames in them. */
  readonly server: Buffer;
  readonly serverFrames: Buffer[];
  readonly exitCode: number;
}

export interface BorgTraffic {
  readonly sessions: BorgSession[];
  /** Absolute path of the repository the sessions used (it appears in open requests). */
  readonly repoPath: string;
}

const RSH = `#!/bin/sh
# Drop ssh options and the host, run the borg command locally, keep both directions.
while [ $# -gt 0 ]; do case "$1" in borg) break;; *) shift;; esac; done
tee "$CAPTURE_PREFIX.in" | "$@" | tee "$CAPTURE_PREFIX.out"
`;

const SPLIT = `
import msgpack, sys, json
out = []
for path in sys.argv[1:]:
    u = msgpack.Unpacker(raw=True, use_list=False, max_buffer_size=1 << 30)
    u.feed(open(path, 'rb').read())
    ends = []
    for _ in u:
        ends.append(u.tell())
    out.append(ends)
print(json.dumps(out))
`;

function splitAt(buf: Buffer, ends: number[]): Buffer[] {
  const frames: Buffer[] = [];
  let start = 0;
  for (const end of ends) {
    frames.push(buf.subarray(start, end));
    start = end;
  }
  return frames;
}

interface Stored {
  repoPath: string;
  sessions: Array<{ command: string; client: string; clientEnds: number[]; server: string; serverEnds: number[]; exitCode: number }>;
}

function fromStored(s: Stored): BorgTraffic {
  return {
    repoPath: s.repoPath,
    sessions: s.sessions.map((x) => {
      const client = Buffer.from(x.client, 'base64');
      const server = Buffer.from(x.server, 'base64');
      return { command: x.command, client, clientFrames: splitAt(client, x.clientEnds), server, serverFrames: splitAt(server, x.serverEnds), exitCode: x.exitCode };
    }),
  };
}

/**
 * Runs `borg init` (repokey), `borg create` of ~300 KB, `borg list`, `borg check` and a
 * `borg list` of a missing repository (an exception reply), or reuses a capture of exactly
 * that made by the same helper with the same borg.
 */
export function captureBorgTraffic(): BorgTraffic {
  const version = spawnSync('borg', ['--version'], { encoding: 'utf8' }).stdout ?? '';
  const key = createHash('sha256').update(readFileSync(fileURLToPath(import.meta.url))).update(version).digest('hex').slice(0, 16);
  const cache = join(tmpdir(), `borgkeep-test-traffic-${key}.json`);
  if (existsSync(cache)) {
    try {
      return fromStored(JSON.parse(readFileSync(cache, 'utf8')) as Stored);
    } catch {
      // half-written by a crashed run: capture again
    }
  }
  const stored = capture();
  // write then rename: a test file running in parallel sees the whole file or none
  const tmp = `${cache}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(stored));
  renameSync(tmp, cache);
  return fromStored(stored);
}

function capture(): Stored {
  const dir = mkdtempSync(join(tmpdir(), 'borgkeep-traffic-'));
  try {
    const rsh = join(dir, 'rsh.sh');
    writeFileSync(rsh, RSH);
    chmodSync(rsh, 0o755);
    const data = join(dir, 'data');
    mkdirSync(data);
    writeFileSync(join(data, 'random.bin'), createPrng(7).bytes(300_000));
    writeFileSync(join(data, 'small.txt'), 'hello borgkeep\n');
    const repoPath = join(dir, 'repo');
    const url = `ssh://localhost${repoPath}`;
    const commands: Array<[string, string[]]> = [
      ['init', ['init', '-e', 'repokey', url]],
      ['create', ['create', `${url}::a1`, 'data']],
      ['list', ['list', url]],
      ['check', ['check', url]],
      ['list-missing', ['list', `ssh://localhost${join(dir, 'missing')}`]],
    ];
    const sessions: Stored['sessions'] = [];
    for (const [i, [name, args]] of commands.entries()) {
      const prefix = join(dir, `s${i}`);
      const r = spawnSync('borg', args, {
        cwd: dir,
        env: {
          ...process.env,
          BORG_RSH: rsh,
          CAPTURE_PREFIX: prefix,
          BORG_BASE_DIR: join(dir, 'base'),
          BORG_PASSPHRASE: 'test',
          BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes',
          BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes',
        },
        stdio: 'pipe',
      });
      if (name !== 'list-missing' && r.status !== 0) {
        throw new Error(`borg ${args.join(' ')} failed (${r.status}): ${r.stderr.toString()}`);
      }
      const ends = JSON.parse(runPython(SPLIT, undefined, [`${prefix}.in`, `${prefix}.out`]).toString()) as number[][];
      const client = readFileSync(`${prefix}.in`);
      const server = readFileSync(`${prefix}.out`);
      sessions.push({ command: name, client: client.toString('base64'), clientEnds: ends[0], server: server.toString('base64'), serverEnds: ends[1], exitCode: r.status ?? -1 });
    }
    return { sessions, repoPath };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
