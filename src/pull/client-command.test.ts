// The client's command lines run by a real sh with a stand-in `borg` that reports its argv and
// environment: hostile admin-given paths and excludes arrive as single, unchanged words.

import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import {
  borgCreateCommand,
  isPlainClientDir,
  keptFilesCacheName,
  knownHostsLine,
  makeDirCommand,
  parseMadeDir,
  removeDirCommand,
  restoreFilesCacheCommand,
  shellQuote,
  uploadBorgCommand,
  writeFileCommand,
} from './client-command.js';

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
    // borg and python3 are in this PATH: the name, then the mark that python3 runs the connector.
    expect(made.stdout).toMatch(/^[^\n]+\npython3\n$/);
    expect(parseMadeDir(made.stdout).noBorg).toBeNull();
    expect(parseMadeDir(made.stdout).python).toBe(true);
    const dir = parseMadeDir(made.stdout).dir;
    expect(dir.startsWith(`${tmp}/borgkeep-pull.`)).toBe(true);
    expect(execFileSync('stat', ['-c', '%a', dir]).toString().trim()).toBe('700');
    expect(sh(writeFileCommand(dir, 'pass'), { input: 'secret\n' }).code).toBe(0);
    expect(readFileSync(join(dir, 'pass'), 'utf8')).toBe('secret\n');
    expect(execFileSync('stat', ['-c', '%a', join(dir, 'pass')]).toString().trim()).toBe('600');
    expect(sh(removeDirCommand(dir)).code).toBe(0);
    expect(existsSync(dir)).toBe(false);
  });

  it("is made also when there is no borg to run, and a second line names the client's platform", () => {
    const tmp = join(root, 'tmp-noborg');
    mkdirSync(tmp);
    const bin = join(root, 'bin-without-borg');
    mkdirSync(bin);
    for (const tool of ['sh', 'mktemp', 'uname']) symlinkSync(execFileSync('sh', ['-c', `command -v ${tool}`]).toString().trim(), join(bin, tool));
    const made = sh(makeDirCommand(), { env: { PATH: bin, TMPDIR: tmp } });
    expect(made.code).toBe(0);
    const system = execFileSync('uname', ['-s']).toString().trim();
    const machine = execFileSync('uname', ['-m']).toString().trim();
    const parsed = parseMadeDir(made.stdout);
    expect(parsed.noBorg).toEqual({ platform: `${system}-${machine}`.toLowerCase(), uname: `${system} ${machine}` });
    // Nor python3: the job's borg would connect over SSH.
    expect(parsed.python).toBe(false);
    expect(parsed.dir.startsWith(`${tmp}/borgkeep-pull.`)).toBe(true);
    expect(isPlainClientDir(parsed.dir)).toBe(true);
    expect(execFileSync('stat', ['-c', '%a', parsed.dir]).toString().trim()).toBe('700');
    expect(sh(removeDirCommand(parsed.dir)).code).toBe(0);
    expect(execFileSync('ls', ['-A', tmp]).toString()).toBe('');
  });

  it("reads the platform only from the command's own last line; a name uname cannot give is no platform", () => {
    expect(parseMadeDir('/tmp/borgkeep-pull.Ab1\n')).toEqual({ dir: '/tmp/borgkeep-pull.Ab1', python: false, noBorg: null });
    expect(parseMadeDir('/tmp/borgkeep-pull.Ab1\nno-borg FreeBSD amd64\n')).toEqual({ dir: '/tmp/borgkeep-pull.Ab1', python: false, noBorg: { platform: 'freebsd-amd64', uname: 'FreeBSD amd64' } });
    expect(parseMadeDir('/tmp/borgkeep-pull.Ab1\npython3\nno-borg Linux x86_64\n')).toEqual({ dir: '/tmp/borgkeep-pull.Ab1', python: true, noBorg: { platform: 'linux-x86_64', uname: 'Linux x86_64' } });
    expect(parseMadeDir('/tmp/borgkeep-pull.Ab1\npython3\n')).toEqual({ dir: '/tmp/borgkeep-pull.Ab1', python: true, noBorg: null });
    // The marks are only the command's own last lines, in its order; a directory alone is never a mark.
    expect(parseMadeDir('python3\n')).toEqual({ dir: 'python3', python: false, noBorg: null });
    expect(parseMadeDir('/tmp/borgkeep-pull.Ab1\nno-borg Linux x86_64\npython3\n').python).toBe(true);
    expect(isPlainClientDir(parseMadeDir('/tmp/borgkeep-pull.Ab1\nno-borg Linux x86_64\npython3\n').dir)).toBe(false);
    // uname missing from PATH: empty words.
    expect(parseMadeDir('/tmp/borgkeep-pull.Ab1\nno-borg  \n').noBorg).toEqual({ platform: null, uname: '' });
    expect(parseMadeDir('/tmp/borgkeep-pull.Ab1\nno-borg CYGWIN_NT-10.0 x86_64\n').noBorg?.platform).toBeNull();
    expect(parseMadeDir('/tmp/borgkeep-pull.Ab1\nno-borg Linux x86_64; rm\n').noBorg?.platform).toBeNull();
    // A TMPDIR with a line break gives a name of several lines, which isPlainClientDir refuses.
    const odd = parseMadeDir('/tmp/x\n/borgkeep-pull.Ab1\n');
    expect(odd.noBorg).toBeNull();
    expect(isPlainClientDir(odd.dir)).toBe(false);
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
      hop: 'ssh',
    });
    const out = sh(command, { env: { PATH: `${bin}:/usr/bin:/bin`, BORG_PASSPHRASE: 'leaked', BORG_REPO: '/elsewhere', BORG_REMOTE_PATH: 'evil' } });
    expect(out.code).toBe(1); // borg's own status
    const [args, env] = readFileSync(report, 'utf8').split('\n--env--\n');
    expect(args.split('\0').slice(0, -1)).toEqual([
      'create',
      '--log-json',
      '--progress',
      '--list',
      '--filter=AME',
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
      BORG_RSH: `ssh -F /dev/null -i ${dir}/id -o IdentitiesOnly=yes -o IdentityAgent=none -o UserKnownHostsFile=${dir}/known_hosts -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o UpdateHostKeys=no -o BatchMode=yes -o LogLevel=ERROR -o Ciphers=aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr,aes256-ctr`,
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

  it('runs an uploaded borg by its path in the job directory, unpacking itself there (TMPDIR)', () => {
    const dir = join(root, 'borgkeep-pull.Up12');
    mkdirSync(dir, { mode: 0o700 });
    const report = join(root, 'report-uploaded');
    // The "standalone borg": uploaded through the channel's stdin, as the runner does.
    const standalone = Buffer.from(`#!/bin/sh\nprintf '%s\\n' "$0" "$1" "$TMPDIR" > '${report}'\nexit 0\n`);
    expect(sh(uploadBorgCommand(dir), { input: standalone.toString('latin1') }).code).toBe(0);
    expect(readFileSync(join(dir, 'borg')).equals(standalone)).toBe(true);
    expect(execFileSync('stat', ['-c', '%a', join(dir, 'borg')]).toString().trim()).toBe('700');
    const command = borgCreateCommand({ dir, port: 40123, archiveName: 'a', paths: ['/x'], excludes: [], compression: 'lz4', borg: join(dir, 'borg'), hop: 'direct' });
    // No borg in this PATH at all: the uploaded one runs.
    const bin = join(root, 'bin-env-rm');
    mkdirSync(bin);
    for (const tool of ['sh', 'env', 'rm', 'printf']) symlinkSync(execFileSync('sh', ['-c', `command -v ${tool}`]).toString().trim(), join(bin, tool));
    const out = sh(command, { env: { PATH: bin } });
    expect(out.code).toBe(0);
    expect(readFileSync(report, 'utf8')).toBe(`${dir}/borg\ncreate\n${dir}\n`);
    expect(existsSync(dir)).toBe(false);
  });

  it('writes the uploaded borg under a quoted name', () => {
    const dir = join(root, "odd $(touch PWNED) 'dir");
    mkdirSync(dir);
    expect(sh(uploadBorgCommand(dir), { input: 'bytes' }).code).toBe(0);
    expect(readFileSync(join(dir, 'borg'), 'utf8')).toBe('bytes');
    expect(existsSync(join(process.cwd(), 'PWNED'))).toBe(false);
  });

  it('runs no borg but the one in PATH or a plain file of the job directory', () => {
    const line = { dir: '/tmp/borgkeep-pull.A', port: 1, archiveName: 'a', paths: ['/x'], excludes: [], compression: 'lz4', hop: 'direct' as const };
    expect(borgCreateCommand({ ...line, borg: 'borg' })).toBe(borgCreateCommand(line));
    expect(borgCreateCommand({ ...line, borg: '/tmp/borgkeep-pull.A/borg' })).toMatch(/ '\\''\/tmp\/borgkeep-pull\.A\/borg'\\'' create /);
    for (const borg of ['/usr/local/bin/borg', '/tmp/borgkeep-pull.A/../borg', '/tmp/borgkeep-pull.A/sub/borg', '/tmp/borgkeep-pull.A/b g', '/tmp/borgkeep-pull.A/', '/tmp/borgkeep-pull.AB/borg', 'borg2', '/tmp/borgkeep-pull.A/..']) {
      expect(() => borgCreateCommand({ ...line, borg }), borg).toThrow(/not a file of the job's directory/);
    }
  });

  it('takes no directory name that would need quoting inside BORG_RSH', () => {
    const line = { port: 1, archiveName: 'a', paths: ['/x'], excludes: [], compression: 'lz4', hop: 'ssh' as const };
    expect(() => borgCreateCommand({ ...line, dir: '/tmp/x y/borgkeep-pull.A' })).toThrow(/unexpected name/);
    expect(() => borgCreateCommand({ ...line, dir: '/tmp/borgkeep-pull.A', paths: [] })).toThrow(/at least one path/);
  });

  it("keeps borg's files cache in the pull user's cache folder after a backup that committed, puts it back for the next job, and keeps the last one when borg failed", () => {
    const home = join(root, 'home-files');
    mkdirSync(home);
    const repoId = 'ab'.repeat(32);
    const kept = { cacheDirName: repoId, keptName: keptFilesCacheName('ssh-ed25519 AAAA', 7, 2) };
    const keptFile = join(home, '.cache', 'borgkeep-pull', kept.keptName);
    const bin = join(root, 'bin-files');
    mkdirSync(bin);
    // The stand-in borg writes its files cache where borg would, with the content and status it is given.
    writeFileSync(join(bin, 'borg'), `#!/bin/sh\nprintf '%s' "$FAKE_FILES" > "$BORG_BASE_DIR/.cache/borg/${repoId}/files"\nexit $FAKE_RC\n`);
    chmodSync(join(bin, 'borg'), 0o755);
    const job = (name: string, rc: number, files: string): { restored: string; code: number } => {
      const dir = join(root, `borgkeep-pull.${name}`);
      mkdirSync(join(dir, 'base', '.cache', 'borg', repoId), { recursive: true });
      writeFileSync(join(dir, 'base', '.cache', 'borg', repoId, 'files'), ''); // the server-built cache's empty one
      const env = { PATH: `${bin}:/usr/bin:/bin`, HOME: home, FAKE_RC: String(rc), FAKE_FILES: files };
      const restore = sh(restoreFilesCacheCommand(dir, kept), { env });
      expect(restore.code).toBe(0);
      const restored = readFileSync(join(dir, 'base', '.cache', 'borg', repoId, 'files'), 'utf8');
      const line = { dir, port: 1, archiveName: 'a', paths: ['/x'], excludes: [], compression: 'lz4', hop: 'direct' as const, keepFilesCache: kept };
      const code = sh(borgCreateCommand(line), { env }).code;
      expect(existsSync(dir)).toBe(false);
      return { restored, code };
    };
    // No kept cache yet: the empty one stays; borg's new one is kept, 0600.
    expect(job('F1', 0, 'cache of job 1')).toEqual({ restored: '', code: 0 });
    expect(readFileSync(keptFile, 'utf8')).toBe('cache of job 1');
    expect(execFileSync('stat', ['-c', '%a', keptFile]).toString().trim()).toBe('600');
    // Put back for the next job; a job that ended with warnings (1) still committed.
    expect(job('F2', 1, 'cache of job 2')).toEqual({ restored: 'cache of job 1', code: 1 });
    expect(readFileSync(keptFile, 'utf8')).toBe('cache of job 2');
    // borg failed (2): its files cache is not kept; the last one stays.
    expect(job('F3', 2, 'cache of a failed job')).toEqual({ restored: 'cache of job 2', code: 2 });
    expect(readFileSync(keptFile, 'utf8')).toBe('cache of job 2');
    expect(() => keptFilesCacheName('ssh-ed25519 AAAA', -1, 1)).toThrow();
    expect(kept.keptName).toMatch(/^files\.[0-9a-f]{32}$/);
    expect(keptFilesCacheName('ssh-ed25519 BBBB', 7, 2)).not.toBe(kept.keptName);
    expect(() => restoreFilesCacheCommand(join(root, 'borgkeep-pull.F4'), { cacheDirName: repoId, keptName: 'files.x; rm -rf /' })).toThrow(/not a kept files cache/);
  });

  it('pins borgkeep\'s host key for the forwarded port only', () => {
    expect(knownHostsLine(40123, 'ssh-ed25519 AAAAC3Nz borgkeep-host')).toBe('[127.0.0.1]:40123 ssh-ed25519 AAAAC3Nz\n');
  });
});
