// The command lines a pull job runs on the client host (issue 16), over the SSH connection the
// server opened: make a private directory, write the job's files into it (and, on a client
// without borg, the standalone borg the admin configured for its platform), run `borg create`
// against the job's repository (reached back through the remote-forwarded port), remove the
// directory. Every client-side value goes through `shellQuote`, and every script runs
// under `sh -c`, whatever the pull user's login shell is.
//
// Must never put a secret on a command line (the job's private key and passphrase go through the
// channel's stdin into 0600 files: a command line is visible to every user of the client in
// `ps`), and never name anything of the server but the forwarded loopback port.

import { createHash } from 'node:crypto';

/** The line the first command prints after the directory's name when the pull user has no `borg` command. */
export const NO_BORG_MARK = 'no-borg';
/** The line it prints when the client's python3 can run the job's connector. */
export const PYTHON_MARK = 'python3';

/** The names of the job's files in its private directory (`borg`: an uploaded standalone borg). */
export const JOB_FILES = { key: 'id', knownHosts: 'known_hosts', passphrase: 'pass', base: 'base', borg: 'borg', token: 'token', connector: 'connect.py' } as const;

/**
 * The job's connector, the BORG_RSH of a direct hop (written to DIR/connect.py, run by the
 * client's python3 in isolated mode): borg starts it as it would start ssh, with `-p PORT` among
 * its arguments; it connects to that port on the client's loopback (the remote-forwarded port of
 * the job's SSH connection), says `BORGKEEP-PULL-1 TOKEN` (the job's one-time token, from
 * DIR/token), then copies borg's stdin to the connection and the connection to borg's stdout.
 * The job's SSH connection already encrypts and authenticates the bytes, so they are not
 * encrypted a second time inside it (an ssh client here and an SSH server in borgkeep cost about
 * a second of CPU per GiB on each side). Whoever can read the token can read the job's key and
 * passphrase too: the 0700 directory guards all three alike. Python 3.4 and later; the standard
 * library only.
 */
/** What the job's connector says first, before its token in hex and a newline (job-endpoint.ts reads it). */
export const DIRECT_HELLO = 'BORGKEEP-PULL-1 ';
/** The modules the connector imports (the job's first command checks that python3 has them). */
const CONNECTOR_MODULES = 'os, socket, sys, threading';

export const CONNECTOR_SCRIPT = `# borgkeep pull job: connects borg to the job through the forwarded port (see borgkeep's docs/pull.md).
import ${CONNECTOR_MODULES}


def main():
    args = sys.argv[1:]
    try:
        port = int(args[args.index('-p') + 1])
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), '${JOB_FILES.token}'), 'rb') as f:
            token = f.read().strip()
        s = socket.create_connection(('127.0.0.1', port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(b'${DIRECT_HELLO}' + token + b'\\n')
    except (ValueError, IndexError, OSError) as e:
        sys.stderr.write('borgkeep: could not reach the pull job through the forwarded port: %s\\n' % e)
        return 255

    def up():
        try:
            while True:
                b = os.read(0, 1048576)
                if not b:
                    break
                s.sendall(b)
        except OSError:
            pass
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    threading.Thread(target=up, daemon=True).start()
    try:
        while True:
            b = s.recv(1048576)
            if not b:
                break
            v = memoryview(b)
            while v:
                v = v[os.write(1, v):]
    except OSError:
        return 255
    return 0


sys.exit(main())
`;

/** A platform as the server's pullBorgBinaries names it: `uname -s`-`uname -m`, lowercased (linux-x86_64). */
export const PLATFORM_NAME = /^[a-z0-9_]+-[a-z0-9_]+$/;

/** The SSH user and repository path the client's borg asks for (the endpoint takes any path). */
export const JOB_SSH_USER = 'borgkeep';
export const JOB_REPO_PATH = './job';

/**
 * Quotes one word for a POSIX shell: single quotes, each ' written as '\''. Everything between
 * single quotes is literal to sh ($, `, \, newlines), so an admin's path or exclude is one word.
 * A NUL byte cannot be in a command line at all.
 */
export function shellQuote(word: string): string {
  if (word.includes('\0')) throw new Error('a value given to the client host contains a NUL byte');
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** A script run by the client's sh, whatever the pull user's login shell (sshd runs `$SHELL -c`). */
function underSh(script: string): string {
  return `sh -c ${shellQuote(script)}`;
}

/**
 * The private directory's name, as mktemp printed it, is used unquoted inside BORG_RSH (borg splits
 * it like a shell): so only names of plain characters are taken.
 */
export function isPlainClientDir(dir: string): boolean {
  return /^\/[A-Za-z0-9._/-]+$/.test(dir) && !dir.split('/').includes('..') && /\/borgkeep-pull\.[A-Za-z0-9]+$/.test(dir);
}

/**
 * Makes the job's private directory (0700) in the pull user's TMPDIR and prints its name; then a
 * line `python3` when the client's python3 runs the job's connector (the direct hop, see
 * CONNECTOR_SCRIPT); and when the pull user has no `borg` command, a line `no-borg SYSTEM MACHINE`
 * (uname -s, uname -m), so the runner can upload the standalone borg configured for that platform
 * (or fail saying which).
 */
export function makeDirCommand(): string {
  return underSh(
    `umask 077 && d=$(mktemp -d "\${TMPDIR:-/tmp}/borgkeep-pull.XXXXXXXXXX") && printf '%s\\n' "$d" && ` +
      `{ python3 -I -c 'import ${CONNECTOR_MODULES}' >/dev/null 2>&1 && echo ${PYTHON_MARK}; true; } && ` +
      `{ command -v borg >/dev/null 2>&1 || printf '${NO_BORG_MARK} %s %s\\n' "$(uname -s)" "$(uname -m)"; }`,
  );
}

export interface MadeDir {
  /** What mktemp printed (checked by the caller with isPlainClientDir). */
  readonly dir: string;
  /** Whether the client's python3 can run the job's connector (else the job's borg connects over SSH). */
  readonly python: boolean;
  /**
   * Set when the client has no borg: `platform` is the pullBorgBinaries name (null when uname
   * printed no usable name), `uname` what it printed, for the job's sentence.
   */
  readonly noBorg: { readonly platform: string | null; readonly uname: string } | null;
}

/** Reads what makeDirCommand printed: the marks are the last lines, the directory all before them. */
export function parseMadeDir(stdout: string): MadeDir {
  const lines = stdout.replace(/\n$/, '').split('\n');
  let noBorg: MadeDir['noBorg'] = null;
  let python = false;
  if (lines.length > 1 && lines[lines.length - 1]!.startsWith(`${NO_BORG_MARK} `)) {
    const uname = lines.pop()!.slice(NO_BORG_MARK.length + 1).trim();
    const words = uname.split(' ');
    const platform = words.length === 2 ? words.join('-').toLowerCase() : '';
    noBorg = { platform: PLATFORM_NAME.test(platform) ? platform : null, uname };
  }
  if (lines.length > 1 && lines[lines.length - 1] === PYTHON_MARK) {
    lines.pop();
    python = true;
  }
  return { dir: lines.join('\n').trim(), python, noBorg };
}

/**
 * Writes the channel's stdin to DIR/borg, 0700: the standalone borg the server uploads to a client
 * without one. Written by the pull user into its own 0700 directory, so no other user can swap it.
 */
export function uploadBorgCommand(dir: string): string {
  const file = shellQuote(`${dir}/${JOB_FILES.borg}`);
  return underSh(`umask 077 && cat > ${file} && chmod 700 ${file}`);
}

/** Writes the channel's stdin to DIR/NAME, 0600. */
export function writeFileCommand(dir: string, name: string): string {
  return underSh(`umask 077 && cat > ${shellQuote(`${dir}/${name}`)}`);
}

/** Removes the job's directory (best effort: the runner logs a failure). */
export function removeDirCommand(dir: string): string {
  return underSh(`rm -rf -- ${shellQuote(dir)}`);
}

/** The known_hosts line that pins borgkeep's host key for the forwarded port. */
export function knownHostsLine(port: number, hostKeyPublicLine: string): string {
  const [type, blob] = hostKeyPublicLine.trim().split(/\s+/);
  return `[127.0.0.1]:${port} ${type} ${blob}\n`;
}

/**
 * Where a client keeps a host's files cache between jobs (issue 17, `host add --keep-files-cache`):
 * the pull user's own cache folder, expanded by the client's sh (never a value of the server's).
 */
const KEPT_FILES_DIR = '"${XDG_CACHE_HOME:-$HOME/.cache}/borgkeep-pull"';

/** A kept files cache: the job's borg cache folder (under BORG_BASE_DIR) and the kept file's name. */
export interface KeptFilesCache {
  /** The repository id in hex: the name of borg's cache folder for it. */
  readonly cacheDirName: string;
  /** The file's name in the pull user's borgkeep-pull cache folder (keptFilesCacheName). */
  readonly keptName: string;
}

/**
 * One host's kept files cache: named by a hash of the borgkeep installation (its SSH host key) and
 * the server's numbers of the host and its repository, so two servers pulling from one account
 * never take each other's (each job shows the client a repository id of its own, so borg's cache
 * folder name cannot serve). Plain characters only: used unquoted in sh.
 */
export function keptFilesCacheName(installation: string, hostId: number, repositoryId: number): string {
  for (const n of [hostId, repositoryId]) if (!Number.isSafeInteger(n) || n < 0) throw new Error('not a host and repository number');
  return `files.${createHash('sha256').update(`${installation}\n${hostId}\n${repositoryId}`).digest('hex').slice(0, 32)}`;
}

/** Where the job's borg reads and writes its files cache: checked names only (used unquoted in sh). */
function jobFilesCache(dir: string, kept: KeptFilesCache): string {
  if (!/^[0-9a-f]{64}$/.test(kept.cacheDirName) || !/^files\.[0-9a-f]{32}$/.test(kept.keptName)) throw new Error('not a kept files cache');
  return `${dir}/${JOB_FILES.base}/.cache/borg/${kept.cacheDirName}/files`;
}

/**
 * Copies the host's kept files cache, if the client has one, into the job's borg cache (after the
 * server-built cache was written: it replaces that cache's empty `files`); prints its size, or
 * nothing when none is kept yet.
 */
export function restoreFilesCacheCommand(dir: string, kept: KeptFilesCache): string {
  if (!isPlainClientDir(dir)) throw new Error('the job directory on the client host has an unexpected name');
  const to = jobFilesCache(dir, kept);
  return underSh(`umask 077 && f=${KEPT_FILES_DIR}/${kept.keptName} && if [ -f "$f" ]; then cp -- "$f" ${to} && wc -c < "$f"; fi`);
}

export interface BorgCreateLine {
  readonly dir: string;
  /** The remote-forwarded port on the client's loopback. */
  readonly port: number;
  /** How borg reaches it: the job's connector (python3), or ssh with the job's key. */
  readonly hop: 'direct' | 'ssh';
  readonly archiveName: string;
  readonly paths: readonly string[];
  readonly excludes: readonly string[];
  readonly compression: string;
  /** The borg to run: `borg` from the pull user's PATH (the default), or DIR/borg when uploaded. */
  readonly borg?: string;
  /** Set when the host keeps its files cache: borg's new one is kept after a backup that committed. */
  readonly keepFilesCache?: KeptFilesCache;
}

/** The borg a job runs: `borg`, or a plain file name directly in the job's directory. */
function borgProgram(dir: string, borg: string | undefined): { program: string; uploaded: boolean } {
  if (borg === undefined || borg === 'borg') return { program: 'borg', uploaded: false };
  const name = borg.startsWith(`${dir}/`) ? borg.slice(dir.length + 1) : '';
  if (!/^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(name)) throw new Error("the borg to run on the client host is not a file of the job's directory");
  return { program: borg, uploaded: true };
}

/**
 * Environment variables a pull user's own settings could use to point borg elsewhere (another
 * passphrase, key file, cache, remote path, repository): unset, so only the job's values count.
 */
const UNSET = [
  'BORG_PASSPHRASE',
  'BORG_PASSPHRASE_FD',
  'BORG_NEW_PASSPHRASE',
  'BORG_REPO',
  'BORG_KEY_FILE',
  'BORG_KEYS_DIR',
  'BORG_CACHE_DIR',
  'BORG_CONFIG_DIR',
  'BORG_SECURITY_DIR',
  'BORG_REMOTE_PATH',
  'BORG_FILES_CACHE_SUFFIX',
] as const;

/**
 * `borg create` against the job's repository through the forwarded port, then the directory
 * removed by the client itself when borg ends (so it goes also when the server's connection
 * dropped mid-job); exits with borg's status.
 */
export function borgCreateCommand(line: BorgCreateLine): string {
  if (!isPlainClientDir(line.dir)) throw new Error('the job directory on the client host has an unexpected name');
  if (!Number.isInteger(line.port) || line.port < 1 || line.port > 65535) throw new Error('the forwarded port is not a port');
  if (line.paths.length === 0) throw new Error('a pull job needs at least one path to back up');
  const dir = line.dir;
  const { program, uploaded } = borgProgram(dir, line.borg);
  // borg splits BORG_RSH like a shell: the directory is plain (isPlainClientDir), so no quoting.
  const rsh =
    line.hop === 'direct'
      ? `python3 -I ${dir}/${JOB_FILES.connector}`
      : [
          'ssh',
          '-F /dev/null',
          `-i ${dir}/${JOB_FILES.key}`,
          '-o IdentitiesOnly=yes',
          '-o IdentityAgent=none',
          `-o UserKnownHostsFile=${dir}/${JOB_FILES.knownHosts}`,
          '-o GlobalKnownHostsFile=/dev/null',
          '-o StrictHostKeyChecking=yes',
          '-o UpdateHostKeys=no',
          '-o BatchMode=yes',
          '-o LogLevel=ERROR',
          // AES-GCM first (OpenSSH puts chacha20-poly1305 first): both ends have AES instructions
          // on any machine of the last decade, and it costs the two a third of chacha's CPU.
          '-o Ciphers=aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr,aes256-ctr',
        ].join(' ');
  const env = [
    ...UNSET.map((name) => `-u ${name}`),
    `BORG_RSH=${shellQuote(rsh)}`,
    `BORG_PASSCOMMAND=${shellQuote(`cat ${dir}/${JOB_FILES.passphrase}`)}`,
    `BORG_BASE_DIR=${shellQuote(`${dir}/${JOB_FILES.base}`)}`,
    'BORG_RELOCATED_REPO_ACCESS_IS_OK=yes',
    'BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=no',
    'BORG_CHECK_I_KNOW_WHAT_I_AM_DOING=NO',
    'BORG_DELETE_I_KNOW_WHAT_I_AM_DOING=NO',
    // A standalone borg (PyInstaller) unpacks itself into TMPDIR at each start: into the job's own
    // directory, which is executable (the binary runs from it) and removed with it, also when
    // borg is killed before it could clean up.
    ...(uploaded ? [`TMPDIR=${shellQuote(dir)}`] : []),
  ];
  const argv = [
    uploaded ? shellQuote(program) : program,
    'create',
    '--log-json',
    '--progress',
    // A file_status line for each file borg read (new, changed, or an error), none for a file its
    // files cache knew unchanged: the job counts them (FILES_READ_STATUS).
    '--list',
    '--filter=AME',
    // Not --json: its summary reads the archive's metadata back after the commit, and a pull job
    // may read nothing. The final figures come from the proxy (the archive's metadata it wrote).
    '--compression',
    shellQuote(line.compression),
    ...line.excludes.flatMap((e) => ['--exclude', shellQuote(e)]),
    shellQuote(`ssh://${JOB_SSH_USER}@127.0.0.1:${line.port}/${JOB_REPO_PATH}::${line.archiveName}`),
    '--',
    ...line.paths.map(shellQuote),
  ];
  // borg writes its files cache at the commit: kept (replacing the last one in one rename) only
  // when borg ended with 0 or 1 (warnings), else the last kept one stays.
  let keep = '';
  if (line.keepFilesCache) {
    const from = jobFilesCache(dir, line.keepFilesCache);
    const k = line.keepFilesCache.keptName;
    keep = ` if [ $rc -le 1 ] && [ -f ${from} ]; then ( umask 077 && k=${KEPT_FILES_DIR} && mkdir -p -- "$k" && mv -f -- ${from} "$k/${k}.new" && chmod 600 "$k/${k}.new" && mv -f -- "$k/${k}.new" "$k/${k}" ); fi;`;
  }
  return underSh(`cd / && env ${env.join(' ')} ${argv.join(' ')}; rc=$?;${keep} rm -rf -- ${shellQuote(dir)}; exit $rc`);
}
