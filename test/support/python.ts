// The Python that runs borg, used by unit tests as an oracle: its `msgpack` is the very packer
// borg uses, and `borg.hashindex` is borg's own index code. Found through borg's shebang, because
// a `python3` earlier on PATH (pyenv, venvs) usually lacks both.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

let found: string | undefined;

/** The interpreter that can `import msgpack` and `borg.hashindex`; throws when there is none. */
export function borgPython(): string {
  if (found) return found;
  const candidates: string[] = [];
  try {
    const borg = execFileSync('sh', ['-c', 'command -v borg'], { encoding: 'utf8' }).trim();
    const shebang = /^#!\s*(\S+)/.exec(readFileSync(borg, 'utf8').split('\n', 1)[0]);
    if (shebang) candidates.push(shebang[1]);
  } catch {
    // no borg on PATH: fall back to plain python3 below
  }
  candidates.push('/usr/bin/python3', 'python3');
  for (const exe of candidates) {
    try {
      execFileSync(exe, ['-c', 'import msgpack, borg.hashindex'], { stdio: 'pipe' });
      found = exe;
      return exe;
    } catch {
      // try the next one
    }
  }
  throw new Error(`no python with msgpack and borg found (tried ${candidates.join(', ')}): apt-get install borgbackup`);
}

/** Runs a Python script with borg's interpreter and returns its stdout. */
export function runPython(script: string, input?: Buffer | string, args: readonly string[] = []): Buffer {
  return execFileSync(borgPython(), ['-c', script, ...args], {
    input,
    maxBuffer: 1024 * 1024 * 1024,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}
