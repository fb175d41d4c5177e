// widenPipes with real pipes made by a shell: both ends are widened to 1 MiB (read from the other
// side with F_GETPIPE_SZ), and what is no pipe is left alone without an error.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';

import { WIDE_PIPE_BYTES, pipeWideningFits } from './pipe-size.js';

let dir = '';
let script = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'bk-pipes-'));
  script = join(dir, 'widen.mjs');
  // A process of its own whose stdin and stdout the shell made pipes: node 20 runs no TypeScript,
  // so it imports the compiled module (`npm test` builds first).
  writeFileSync(
    script,
    `import { widenPipes } from ${JSON.stringify(pathToFileURL(join(process.cwd(), 'dist', 'shared', 'pipe-size.js')).href)};
const keep = setInterval(() => {}, 1000);
process.stderr.write('widened ' + (await widenPipes(process.argv.slice(2).map(Number))) + '\\n');
clearInterval(keep);
`,
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const GET = "perl -e 'print STDERR \"size \", fcntl(STDIN, 1032, 0), \"\\n\"'";

it('widens the pipe behind stdin and the one behind stdout to 1 MiB', () => {
  // stdin's pipe is read from its write end (the subshell's stdout) once node is done; stdout's
  // pipe from its read end after a second.
  const r = spawnSync(
    'sh',
    ['-c', `{ sleep 2; perl -e 'print STDERR "in ", fcntl(STDOUT, 1032, 0), "\\n"'; } | "${process.execPath}" "${script}" 0 1 | { sleep 1; ${GET}; }`],
    { encoding: 'utf8', timeout: 20_000 },
  );
  expect(r.stderr).toContain('widened true');
  expect(r.stderr).toContain(`in ${WIDE_PIPE_BYTES}`);
  expect(r.stderr).toContain(`size ${WIDE_PIPE_BYTES}`);
});

it('leaves a plain file alone and says so', () => {
  const file = join(dir, 'plain');
  writeFileSync(file, 'x');
  const r = spawnSync('sh', ['-c', `"${process.execPath}" "${script}" 0 < "${file}"`], { encoding: 'utf8', timeout: 20_000 });
  expect(r.stderr).toContain('widened false');
});

it("the forced command (borgkeep borg-serve) widens the pipes sshd gives it", () => {
  const bin = join(process.cwd(), 'bin', 'borgkeep');
  const env = { PATH: process.env.PATH, SSH_ORIGINAL_COMMAND: 'borg serve', BORGKEEP_NO_WARM_CHILD: '1' };
  const r = spawnSync(
    'sh',
    ['-c', `{ sleep 2; perl -e 'print STDERR "in ", fcntl(STDOUT, 1032, 0), "\\n"'; } | "${process.execPath}" "${bin}" --data-dir "${join(dir, 'data')}" borg-serve --key k | { sleep 1; ${GET}; cat >/dev/null; }`],
    { encoding: 'utf8', timeout: 30_000, env },
  );
  expect(r.stderr).toContain(`in ${WIDE_PIPE_BYTES}`);
  expect(r.stderr).toContain(`size ${WIDE_PIPE_BYTES}`);
});

it("widens only while every open session's wide pipes fit half the user's soft limit of pipe pages", () => {
  // 1 MiB stdin and stdout and a default stderr: 528 pages a session; half of 16384 is 8192.
  expect(pipeWideningFits(0, 16384, 1000)).toBe(true);
  expect(pipeWideningFits(14, 16384, 1000)).toBe(true); // the 15th session
  expect(pipeWideningFits(15, 16384, 1000)).toBe(false);
  expect(pipeWideningFits(15, null, 1000)).toBe(false); // unknown: the kernel's default
  expect(pipeWideningFits(15, 0, 1000)).toBe(true); // no limit
  expect(pipeWideningFits(500, 16384, 0)).toBe(true); // root is not limited
  expect(pipeWideningFits(100, 1 << 20, 1000)).toBe(true);
});
