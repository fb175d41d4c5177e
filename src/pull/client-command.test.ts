// The client's command lines run by a real sh with a stand-in `borg` that reports its argv and
// environment: hostile admin-given paths and excludes arrive as single, unchanged words.

import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { borgCreateCommand, isPlainClientDir, knownHostsLine, makeDirCommand, NO_BORG_EXIT, removeDirCommand, shellQuote, writeFileCommand } from './client-command.js';

const root = mkdtempSync(join(tmpdir(), 'bk-client-command-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

// sshd runs the exec request's command as `$SHELL -c COMMAND`: so do we.
function sh(command: string, opts: { env?: NodeJS.ProcessEnv; input?: string } = {}): { code: number; stdout: string } {
  try {
    return { code: 0, stdout: execFileSync('/bin/sh', ['-c', command], { env: opts.env ?? process.env, input: opts.input ?? '', stdio: ['pipe', 'pipe', 'pipe'] }).toString() };
  } catch (error) {
    const e = error as { status: number; stdout: Buffer };
    return { code: e.status, stdout: e.stdout.toString() };
  }
}

const HOSTILE = [
  '/srv/with space',
  "/srv/it's",
  '/srv/"double"',
  '/srv/$(touch PWNED)',
  '/srv/`touch PWNED`',
  '/srv/new\nline',
  '/srv/semi;colon && rm -rf /',
  '/srv/back\\slash',
  '/srv/*glob?',
  '-dash-first',
  '/srv/${HOME}',
  "'",
  '',
];

describe('shellQuote', () => {
  it('makes every hostile value one unchanged word for sh', () => {
    for (const value of HOSTILE) {
      const out = sh(`printf '%s\\0' ${shellQuote(value)}`);
      expect(out.stdout).toBe(`${value}\0`);
    }
    expect(existsSync(join(process.cwd(), 'PWNED'))).toBe(false);
  });

  it('refuses a NUL byte, which no command line can carry', () => {
    expect(() => shellQuote('a\0b')).toThrow(/NUL/);
  });
});

describe('the job directory', () => {
  it('is made 0700 in TMPDIR and printed; removed again', () => {
    const tmp = join(root, 'tmp dir $(x)');
    mkdirSync(tmp);
    const made = sh(makeDirCommand(), { env: { ...process.env, TMPDIR: tmp } });
    expect(made.code).toBe(0);
    const dir = made.stdout.trim();
    expect(dir.startsWith(`${tmp}/borgkeep-pull.`)).toBe(true);
    expect(execFileSync('stat', ['-c', '%a', dir]).toString().trim()).toBe('700');
    expect(sh(writeFileCommand(dir, 'pass'), { input: 'secret\n' }).code).toBe(0);
    expect(readFileSync(join(dir, 'pass'), 'utf8')).toBe('secret\n');
    expect(execFileSync('stat', ['-c', '%a', join(dir, 'pass')]).toString().trim()).toBe('600');
    expect(sh(removeDirCommand(dir)).code).toBe(0);
    expect(existsSync(dir)).toBe(false);
  });

  it('is not made when there is no borg to run (one exit status says so)', () => {
    const tmp = join(root, 'tmp-noborg');
    mkdirSync(tmp);
    const bin = join(root, 'bin-without-borg');
    mkdirSync(bin);
    for (const tool of ['sh', 'mktemp']) symlinkSync(execFileSync('sh', ['-c', `command -v ${tool}`]).toString().trim(), join(bin, tool));
    const made = sh(makeDirCommand(), { env: { PATH: bin, TMPDIR: tmp } });
    expect(made.code).toBe(NO_BORG_EXIT);
    expect(execFileSync('ls', ['-A', tmp]).toString()).toBe('');
  });

  it('only plain mktemp names are taken (the name goes into BORG_RSH unquoted)', () => {
    expect(isPlainClientDir('/tmp/borgkeep-pull.AbC123xyz0')).toBe(true);
    expect(isPlainClientDir('/tmp dir/borgkeep-pull.AbC123xyz0')).toBe(false);
    expect(isPlainClientDir('/tmp/../borgkeep-pull.AbC123xyz0')).toBe(false);
    expect(isPlainClientDir('/tmp/x;y/borgkeep-pull.A')).toBe(false);
    expect(isPlainClientDir('/tmp/other.A')).toBe(false);
  });
});

describe('borg create', () => {
  it('gets the admin paths and excludes as exact words, and only the job environment', () => {
    const bin = join(root, 'bin');
    mkdirSync(bin);
    const report = join(root, 'report');
    // The stand-in borg writes its argv NUL-separated, then the BORG_ variables it sees.
    writeFileSync(join(bin, 'borg'), `#!/bin/sh\n: > '${report}'\nfor a in "$@"; do printf '%s\\0' "$a" >> '${report}'; done\nprintf '\\n--env--\\n' >> '${report}'\nenv | grep '^BORG_' | sort >> '${report}'\nexit 1\n`);
    chmodSync(join(bin, 'borg'), 0o755);
    const dir = join(root, 'borgkeep-pull.Ab12');
    mkdirSync(dir);
    const command = borgCreateCommand({
      dir,
      port: 40123,
      archiveName: 'web1-2026-12-06T10:00:00',
      paths: HOSTILE.filter((p) => p !== ''),
      excludes: ['*.tmp', "it's $(touch PWNED)", 'sh:new\nline'],
      compression: 'zstd,3',
    });
    const out = sh(command, { env: { PATH: `${bin}:/usr/bin:/bin`, BORG_PASSPHRASE: 'leaked', BORG_REPO: '/elsewhere', BORG_REMOTE_PATH: 'evil' } });
    expect(out.code).toBe(1); // borg's own status
    const [args, env] = readFileSync(report, 'utf8').split('\n--env--\n');
    expect(args.split('\0').slice(0, -1)).toEqual([
      'create',
      '--log-json',
      '--progress',
      '--compression',
      'zstd,3',
      '--exclude',
      '*.tmp',
      '--exclude',
      "it's $(touch PWNED)",
      '--exclude',
      'sh:new\nline',
      'ssh://borgkeep@127.0.0.1:40123/./job::web1-2026-12-06T10:00:00',
      '--',
      ...HOSTILE.filter((p) => p !== ''),
    ]);
    const vars = Object.fromEntries(env.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    expect(vars).toEqual({
      BORG_RSH: `ssh -F /dev/null -i ${dir}/id -o IdentitiesOnly=yes -o IdentityAgent=none -o UserKnownHostsFile=${dir}/known_hosts -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o UpdateHostKeys=no -o BatchMode=yes -o LogLevel=ERROR`,
      BORG_PASSCOMMAND: `cat ${dir}/pass`,
      BORG_BASE_DIR: `${dir}/base`,
      BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes',
      BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'no',
      BORG_CHECK_I_KNOW_WHAT_I_AM_DOING: 'NO',
      BORG_DELETE_I_KNOW_WHAT_I_AM_DOING: 'NO',
    });
    // The client removes the directory itself when borg ends.
    expect(existsSync(dir)).toBe(false);
    expect(existsSync('/PWNED')).toBe(false);
    expect(existsSync(join(process.cwd(), 'PWNED'))).toBe(false);
  });

  it('takes no directory name that would need quoting inside BORG_RSH', () => {
    const line = { port: 1, archiveName: 'a', paths: ['/x'], excludes: [], compression: 'lz4' };
    expect(() => borgCreateCommand({ ...line, dir: '/tmp/x y/borgkeep-pull.A' })).toThrow(/unexpected name/);
    expect(() => borgCreateCommand({ ...line, dir: '/tmp/borgkeep-pull.A', paths: [] })).toThrow(/at least one path/);
  });

  it('pins borgkeep\'s host key for the forwarded port only', () => {
    expect(knownHostsLine(40123, 'ssh-ed25519 AAAAC3Nz borgkeep-host')).toBe('[127.0.0.1]:40123 ssh-ed25519 AAAAC3Nz\n');
  });
});
