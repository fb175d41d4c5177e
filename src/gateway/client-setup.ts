// The client set-up a grant's key holder copies: the repository URL with the advertised SSH host
// and port, the server's host keys as known_hosts lines, shell commands (borg init only while the
// repository is not initialised), borgmatic configs in the 1.7 format (Debian 12's 1.7.7:
// location/storage/retention sections) and the >= 1.8 flat format, and a Vorta hint. Pure text
// from plain inputs, so the API, the CLI and the tests produce the very same snippets.
// It must never read the disk, the store or the environment, and never print a secret: the
// passphrase is named by the file that holds it, never written into a snippet.

import type { Role } from '../store/types.js';

/** The encryption every instruction shows (serve banner, CLI hints, console). */
export const RECOMMENDED_ENCRYPTION = 'repokey-blake2';
/**
 * Why: with repokey the key lives in the repository, sealed by the passphrase, so a lost client
 * costs nothing but the passphrase (borgmatic holds it anyway), and borgkeep's audit and vault can
 * read archive lists with the passphrase alone; BLAKE2b authenticates faster than HMAC-SHA256 on
 * CPUs without SHA extensions. keyfile-blake2 protects a weak passphrase better, but a lost key
 * file loses every backup, which is the wrong default for backups.
 */
export const ENCRYPTION_REASON =
  'the key travels inside the repository, sealed by the passphrase, so a lost client costs nothing but the passphrase, and BLAKE2b is faster than SHA-256 on most CPUs; keep a `borg key export` copy anyway';

export const DEFAULT_CONFIG_DIR = '/etc/borgmatic';
export const BORGMATIC_FORMATS = ['1.7', '1.8'] as const;
export type BorgmaticFormat = (typeof BORGMATIC_FORMATS)[number];

export interface SshTarget {
  user: string;
  host: string;
  port: number;
}

export interface HostKeyInfo {
  type: string;
  /** "ssh-ed25519 AAAA..." */
  publicKey: string;
  /** "SHA256:..." */
  fingerprint: string;
}

export interface SetupInput {
  target: SshTarget;
  hostKeys: readonly HostKeyInfo[];
  repository: { name: string; initialized: boolean };
  key: { name: string; fingerprint: string; role: Role };
  /** The private key file on the client; null: ssh's default key (~/.ssh/id_ed25519 and so on). */
  identityFile: string | null;
  /** Where borgmatic's config, the known_hosts file and the passphrase file live on the client. */
  configDir: string;
}

export interface ClientSetup {
  url: string;
  /** known_hosts lines for the server's host keys, one a line. */
  knownHosts: string;
  /** BORG_RSH / ssh_command. */
  sshCommand: string;
  shell: string;
  borgmatic: Record<BorgmaticFormat, string>;
  /** The borgmatic command line each format's snippet says to run. */
  run: Record<BorgmaticFormat, string>;
  vorta: string;
}

// ---- the advertised host ---------------------------------------------------------------------

const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const HOSTNAME = new RegExp(`^(?=.{1,253}$)${LABEL}(?:\\.${LABEL})*\\.?$`);
const IPV6 = /^[0-9A-Fa-f:.]+$/;

function isIpv6(text: string): boolean {
  // Two or more colons, hex digits and dots only (an embedded IPv4 tail); good enough to tell an
  // address from a typo, and ssh itself says more if the address is wrong.
  return IPV6.test(text) && (text.match(/:/g) ?? []).length >= 2 && !text.includes(':::');
}

export const PUBLIC_HOST_HELP = 'HOST or HOST:PORT (a DNS name or an address, e.g. backup.example.com, backup.example.com:2222 or [2001:db8::1]:22)';

/** "HOST", "HOST:PORT", "[v6]", "[v6]:PORT" or a bare IPv6 address; an error sentence otherwise. */
export function parsePublicHost(text: string): { host: string; port: number | null } | { error: string } {
  const t = text.trim();
  const bad = { error: `'${text}' is not ${PUBLIC_HOST_HELP}` };
  let host: string;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::([0-9]+))?$/.exec(t);
  if (bracketed) {
    host = bracketed[1]!;
    portText = bracketed[2];
    if (!isIpv6(host)) return bad;
  } else if (isIpv6(t)) {
    host = t;
  } else {
    const m = /^([^:]+)(?::([0-9]+))?$/.exec(t);
    if (!m || !HOSTNAME.test(m[1]!)) return bad;
    host = m[1]!.replace(/\.$/, '');
    portText = m[2];
  }
  if (portText === undefined) return { host: host.toLowerCase(), port: null };
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) return { error: `'${text}' has no valid port: give 1 to 65535 after the colon` };
  return { host: host.toLowerCase(), port };
}

/** The host of an HTTP Host header (its port dropped), or null when it is not a host. */
export function hostOfHostHeader(header: string | undefined): string | null {
  if (!header) return null;
  const parsed = parsePublicHost(header);
  return 'error' in parsed ? null : parsed.host;
}

// ---- client paths ----------------------------------------------------------------------------

const CLIENT_PATH = /^\/[A-Za-z0-9._/@+-]{0,250}$/;

/** An error sentence when `path` cannot go into a snippet unquoted, else null. */
export function clientPathProblem(path: string, what: string): string | null {
  if (CLIENT_PATH.test(path) && !path.split('/').includes('..')) return null;
  return `${what} must be an absolute path on the client made of letters, digits and . _ - / @ + (e.g. /root/.ssh/id_ed25519_backup)`;
}

// ---- the snippets ----------------------------------------------------------------------------

const bracket = (host: string) => (host.includes(':') ? `[${host}]` : host);

export function repositoryUrl(target: SshTarget, repository: string): string {
  return `ssh://${target.user}@${bracket(target.host)}:${target.port}/./${repository}`;
}

/** ssh's known_hosts host field: the bare host on port 22, "[host]:port" elsewhere. */
export function knownHostsLines(target: SshTarget, hostKeys: readonly HostKeyInfo[]): string {
  const field = target.port === 22 ? target.host : `[${target.host}]:${target.port}`;
  return hostKeys.map((k) => `${field} ${k.publicKey}`).join('\n');
}

/** What each role may run, as borgmatic actions (the guard refuses the others). */
const ROLE_ACTIONS: Record<Role, { run: string[]; skip: string[]; note: string }> = {
  full: { run: [], skip: [], note: 'This key has the full role: every borgmatic action works; compaction goes through the compaction gate (below).' },
  append: {
    run: ['create', 'check'],
    skip: ['prune', 'compact'],
    note: 'This key may only add backups (append role): run only create and check. Pruning and compaction need a key with the prune or full role, or borgkeep\'s own retention.',
  },
  prune: {
    run: ['prune'],
    skip: ['create', 'compact', 'check'],
    note: 'This key may only remove archives by its retention rule (prune role): run only prune. Compaction needs a full key.',
  },
  read: {
    run: ['list'],
    skip: ['create', 'prune', 'compact', 'check'],
    note: 'This key may only read (read role): list, info and extract work; nothing that writes.',
  },
};

const GATE_NOTE = (repository: string) => [
  '# Compaction (borgmatic compact, also part of a plain `borgmatic` run) goes through',
  '# borgkeep\'s compaction gate: it compacts when its audit finds nothing but new backups',
  '# since the last compaction, or once an admin approved the review',
  `# (borgkeep approve ${repository}, or Approve in the console). Otherwise compaction is`,
  '# deferred and borgmatic carries on; nothing is lost, the space comes back later.',
];

const RETENTION = [
  ['keep_daily', 7],
  ['keep_weekly', 4],
  ['keep_monthly', 6],
] as const;

export function clientSetup(input: SetupInput): ClientSetup {
  const { target, repository, key, configDir } = input;
  const url = repositoryUrl(target, repository.name);
  const knownHostsFile = `${configDir}/known_hosts`;
  const passphraseFile = `${configDir}/passphrase`;
  const sshCommand = [
    'ssh',
    `-o UserKnownHostsFile=${knownHostsFile}`,
    '-o StrictHostKeyChecking=yes',
    ...(input.identityFile ? [`-i ${input.identityFile}`, '-o IdentitiesOnly=yes'] : []),
  ].join(' ');
  const knownHosts = knownHostsLines(target, input.hostKeys);
  const actions = ROLE_ACTIONS[key.role];
  const writes = key.role === 'append' || key.role === 'full';
  const needsInit = !repository.initialized;
  const about = `repository '${repository.name}' with key '${key.name}' (${key.fingerprint}, role ${key.role})`;

  const shell = [
    `# as root on the machine that holds key '${key.name}' (${key.fingerprint})`,
    `install -d -m 700 ${configDir}`,
    `cat > ${knownHostsFile} <<'EOF'`,
    knownHosts,
    'EOF',
    `# the repository's passphrase goes into ${passphraseFile} (mode 600), never into a config`,
    `export BORG_PASSCOMMAND='cat ${passphraseFile}'`,
    `export BORG_RSH='${sshCommand}'`,
    ...(needsInit
      ? key.role === 'full'
        ? [`borg init --encryption=${RECOMMENDED_ENCRYPTION} ${url}`, `borg key export ${url} ${configDir}/${repository.name}.borg-key   # keep a copy away from this machine`]
        : [`# the repository waits for its first borg init, by a key with the full role`]
      : []),
    key.role === 'read'
      ? `borg list ${url}`
      : key.role === 'prune'
        ? `borg prune --list ${RETENTION.map(([k, n]) => `--${k.replace('_', '-')} ${n}`).join(' ')} ${url}`
        : `borg create --stats ${url}::'{hostname}-{now}' /home /etc`,
  ].join('\n');

  const header = (format: BorgmaticFormat) => [
    `# ${configDir}/config.yaml: borgmatic ${format === '1.7' ? '1.7 (Debian 12)' : '1.8 or later'}, ${about}`,
    `# needs ${knownHostsFile} (the known_hosts lines) and ${passphraseFile} (mode 600)`,
    ...(needsInit
      ? key.role === 'full'
        ? [`# once, to create the repository: borgmatic ${format === '1.7' ? 'init' : 'repo-create'} --encryption ${RECOMMENDED_ENCRYPTION}`]
        : ['# the repository waits for its first borg init, by a key with the full role']
      : []),
  ];
  const runLine = (format: BorgmaticFormat) =>
    format === '1.8' || actions.run.length === 0 ? 'borgmatic --verbosity 1' : `borgmatic ${actions.run.join(' ')} --verbosity 1`;
  const tail = (format: BorgmaticFormat) => [
    '',
    ...(key.role === 'full' ? GATE_NOTE(repository.name) : [`# ${actions.note}`]),
    ...(format === '1.7' && actions.run.length > 0
      ? [
          "# Debian's borgmatic.timer runs a plain `borgmatic` (prune, compact, create, check); for",
          '# this key run `systemctl edit borgmatic.service` and add:',
          '#   [Service]',
          '#   ExecStart=',
          `#   ExecStart=/usr/bin/borgmatic --verbosity -1 --syslog-verbosity 1 ${actions.run.join(' ')}`,
        ]
      : []),
    `# Run: ${runLine(format)}`,
  ];
  const checks = (indent: string) =>
    key.role === 'read' || key.role === 'prune'
      ? []
      : [`${indent}checks:`, `${indent}    - name: repository`, `${indent}      frequency: 2 weeks`, `${indent}    - name: archives`, `${indent}      frequency: 2 weeks`];
  const retention = (indent: string) => (key.role === 'full' || key.role === 'prune' ? RETENTION.map(([k, n]) => `${indent}${k}: ${n}`) : []);

  const v17 = [
    ...header('1.7'),
    'location:',
    '    source_directories:',
    '        - /home',
    '        - /etc',
    '    repositories:',
    `        - ${url}`,
    '',
    'storage:',
    `    encryption_passcommand: cat ${passphraseFile}`,
    `    ssh_command: ${sshCommand}`,
    ...(retention('').length > 0 ? ['', 'retention:', ...retention('    ')] : []),
    ...(checks('').length > 0 ? ['', 'consistency:', ...checks('    ')] : []),
    ...tail('1.7'),
  ].join('\n');

  const v18 = [
    ...header('1.8'),
    'source_directories:',
    '    - /home',
    '    - /etc',
    'repositories:',
    `    - path: ${url}`,
    `      label: ${repository.name}`,
    `encryption_passcommand: cat ${passphraseFile}`,
    `ssh_command: ${sshCommand}`,
    ...retention(''),
    ...checks(''),
    ...(actions.skip.length > 0 ? ['# skip_actions needs borgmatic 1.8.5 or later', 'skip_actions:', ...actions.skip.map((a) => `    - ${a}`)] : []),
    ...tail('1.8'),
  ].join('\n');

  const ed25519 = input.hostKeys.find((k) => k.type === 'ssh-ed25519') ?? input.hostKeys[0];
  const vorta = [
    `Vorta: ${needsInit && key.role === 'full' ? 'Repository, Initialize a new repository' : 'Repository, Add existing repository'}, URL ${url};`,
    `SSH key: the private key of '${key.name}'${input.identityFile ? ` (${input.identityFile})` : ''};`,
    ...(needsInit && key.role === 'full' ? [`encryption: Repokey-Blake2 (${RECOMMENDED_ENCRYPTION});`] : []),
    `on the first connection compare the host key with ${ed25519 ? `${ed25519.fingerprint} (${ed25519.type})` : 'the fingerprint the server printed'}, or add the known_hosts lines to ~/.ssh/known_hosts first.`,
    ...(key.role === 'append' ? ['In the Schedule tab leave pruning and compaction off: this key may only add backups.'] : []),
  ].join(' ');

  return { url, knownHosts, sshCommand, shell, borgmatic: { '1.7': v17, '1.8': v18 }, run: { '1.7': runLine('1.7'), '1.8': runLine('1.8') }, vorta };
}
