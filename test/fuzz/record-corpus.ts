// Records the fuzzers' seeds from the real borg 1.2 client (`npm run fuzz -- --record`):
//
// - corpus/guard/<command>.bin: what the client sent (client -> server bytes) for one ordinary
//   borg command each, over a stand-in for ssh (BORG_RSH) that runs `borg serve` locally and
//   keeps a copy of its stdin. Repository URLs are ssh://localhost/./repo, so the open requests
//   name the repository `repo` as a borgkeep client would.
// - corpus/guard-repo/: that repository as the commands left it (the guard reads its index.N).
// - corpus/repos/<mode>/: small repositories made by `borg init -e <mode>` and a few `borg
//   create`s and a `borg delete`, for the reader and audit fuzzer; passphrase 'fuzz'.
//   `npm run fuzz -- --record MODE...` records only these, for the modes named.
//
// Everything is made in a temporary directory and copied in; the small data files keep the
// corpus at a few hundred KB.

import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { createPrng } from '../support/prng.js';

const RSH = `#!/bin/sh
# Drop ssh options and the host, run the borg command in the repositories' directory, keep stdin.
while [ $# -gt 0 ]; do case "$1" in borg) break;; *) shift;; esac; done
cd "$REPO_CWD" && tee "$CAPTURE_FILE" | "$@"
`;

export const FUZZ_PASSPHRASE = 'fuzz';

function borg(args: string[], env: NodeJS.ProcessEnv, cwd: string, mayFail = false): void {
  const r = spawnSync('borg', args, { cwd, env: { ...process.env, ...env }, stdio: 'pipe' });
  if (r.error) throw new Error(`cannot run borg: ${r.error.message}`);
  if (r.status !== 0 && !mayFail) throw new Error(`borg ${args.join(' ')} failed (${r.status}): ${r.stderr.toString().trim()}`);
}

function writeData(dir: string, seed: number): void {
  mkdirSync(dir, { recursive: true });
  const prng = createPrng(seed);
  writeFileSync(join(dir, 'random.bin'), prng.bytes(6000));
  writeFileSync(join(dir, 'notes.txt'), `hello borgkeep ${seed}\n`.repeat(40));
}

/** The encryption modes of the reader's seed repositories. */
export const READER_MODES = ['repokey', 'none', 'authenticated', 'repokey-blake2', 'authenticated-blake2'];

/** Records every seed; with `modes`, only the reader's repositories of those modes. */
export function recordCorpus(corpusDir: string, modes: readonly string[] = []): void {
  for (const mode of modes) if (!READER_MODES.includes(mode)) throw new Error(`there is no seed mode '${mode}'; the modes are ${READER_MODES.join(', ')}`);
  const work = mkdtempSync(join(tmpdir(), 'borgkeep-fuzz-record-'));
  try {
    const baseEnv = {
      BORG_BASE_DIR: join(work, 'base'),
      BORG_PASSPHRASE: FUZZ_PASSPHRASE,
      BORG_NEW_PASSPHRASE: FUZZ_PASSPHRASE,
      BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes',
      BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes',
      BORG_CHECK_I_KNOW_WHAT_I_AM_DOING: 'YES',
      BORG_DELETE_I_KNOW_WHAT_I_AM_DOING: 'YES',
    };
    const data = join(work, 'data');
    if (modes.length === 0) recordGuardSeeds(work, corpusDir, baseEnv, data);
    const readerDir = join(corpusDir, 'repos');
    if (modes.length === 0) rmSync(readerDir, { recursive: true, force: true });
    for (const mode of modes.length > 0 ? modes : READER_MODES) {
      const repo = join(work, `r-${mode}`);
      borg(['init', '-e', mode, repo], baseEnv, work);
      for (const [i, archive] of ['b1', 'b2', 'b3'].entries()) {
        writeData(data, 10 + i);
        borg(['create', '--compression', i === 1 ? 'zlib,6' : 'lz4', `${repo}::${archive}`, 'data'], baseEnv, work);
      }
      borg(['delete', `${repo}::b1`], baseEnv, work);
      rmSync(join(readerDir, mode), { recursive: true, force: true });
      cpSync(repo, join(readerDir, mode), { recursive: true });
      withoutUnread(join(readerDir, mode));
    }
    const sizes = spawnSync('du', ['-sh', corpusDir], { encoding: 'utf8' }).stdout.trim();
    console.log(`recorded the corpus: ${sizes}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** A README and a lock are not read by borgkeep: the seeds keep to what is. */
function withoutUnread(repo: string): void {
  rmSync(join(repo, 'README'), { force: true });
  rmSync(join(repo, 'lock.roster'), { force: true });
}

/** The client streams of ordinary borg commands, and the repository they left. */
function recordGuardSeeds(work: string, corpusDir: string, baseEnv: NodeJS.ProcessEnv, data: string): void {
  const rsh = join(work, 'rsh.sh');
  writeFileSync(rsh, RSH);
  chmodSync(rsh, 0o755);
  const repos = join(work, 'repos');
  mkdirSync(repos);
  writeData(data, 1);
  const url = 'ssh://localhost/./repo';
  const guardDir = join(corpusDir, 'guard');
  rmSync(guardDir, { recursive: true, force: true });
  mkdirSync(guardDir, { recursive: true });
  const commands: Array<[string, string[], boolean?]> = [
    ['init', ['init', '-e', 'repokey', url]],
    ['create', ['create', '--compression', 'lz4', `${url}::a1`, 'data']],
    ['create-again', ['create', '--compression', 'zstd,3', `${url}::a2`, 'data']],
    ['list', ['list', url]],
    ['info', ['info', `${url}::a1`]],
    ['extract', ['extract', `${url}::a1`]],
    ['delete', ['delete', `${url}::a1`]],
    ['prune', ['prune', '--keep-last', '1', url]],
    ['check', ['check', url]],
    ['change-passphrase', ['key', 'change-passphrase', url]],
    ['break-lock', ['break-lock', url]],
    ['compact', ['compact', url]],
    ['list-missing', ['list', 'ssh://localhost/./missing'], true],
  ];
  const extractDir = join(work, 'extract');
  mkdirSync(extractDir);
  for (const [name, args, mayFail] of commands) {
    writeFileSync(join(data, 'notes.txt'), `changed before ${name}\n`);
    const file = join(guardDir, `${name}.bin`);
    borg(args, { ...baseEnv, BORG_RSH: rsh, REPO_CWD: repos, CAPTURE_FILE: file }, name === 'extract' ? extractDir : work, mayFail);
    // extract ran in its own directory: the data path is relative
    if (name === 'extract') rmSync(join(extractDir, 'data'), { recursive: true, force: true });
  }
  const guardRepo = join(corpusDir, 'guard-repo');
  rmSync(guardRepo, { recursive: true, force: true });
  cpSync(join(repos, 'repo'), guardRepo, { recursive: true });
  withoutUnread(guardRepo);
}
