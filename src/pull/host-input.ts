// What a pull host may be set to, checked in one place for the CLI (and later the API): the
// address and port the server connects to, the SSH user, absolute paths, borg exclude patterns,
// borg's --compression spec, a cron schedule (croner), the time-out, the retries and the pinned
// host key fingerprint. Each bad value is one sentence naming the value and the accepted forms.
//
// Must never accept a value that could reach the client's shell or ssh as an option: addresses,
// users and paths starting with '-', and control characters, are refused here (the runner quotes
// every value as well).

import { isIP } from 'node:net';
import { Cron } from 'croner';

import { invalidInput } from '../errors.js';
import { checkArchiveTemplate, DEFAULT_ARCHIVE_TEMPLATE } from './archive-name.js';

export const DEFAULT_SSH_PORT = 22;
export const DEFAULT_COMPRESSION = 'lz4';
export const DEFAULT_TIMEOUT_SECONDS = 6 * 3600;
export const DEFAULT_RETRIES = 2;
export const MAX_RETRIES = 10;
/** Longest a job may be allowed to run: a week. */
export const MAX_TIMEOUT_SECONDS = 7 * 86_400;

/** A host's settings as given (CLI options, later an API body); checked by checkPullHostInput. */
export interface PullHostInput {
  address: string;
  user: string;
  repository: string;
  paths: readonly string[];
  excludes?: readonly string[];
  schedule?: string | null;
  compression?: string;
  archiveTemplate?: string;
  timeoutSeconds?: number;
  retries?: number;
  hostKeyFingerprint?: string | null;
  /** false: jobs give the client no chunk index (issue 17); default true. */
  sendChunkIndex?: boolean;
  /** true: the client keeps borg's files cache between jobs (issue 17); default false. */
  keepFilesCache?: boolean;
}

/** The checked settings, as the store keeps them (the repository still by name). */
export interface PullHostSettings {
  address: string;
  port: number;
  user: string;
  repository: string;
  paths: string[];
  excludes: string[];
  schedule: string | null;
  compression: string;
  archiveTemplate: string;
  timeoutSeconds: number;
  retries: number;
  hostKeyFingerprint: string | null;
  /** Absent means true: jobs give the client the repository's chunk index. */
  sendChunkIndex?: boolean;
  /** Absent means false: the client keeps no files cache between jobs. */
  keepFilesCache?: boolean;
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/;
const HOSTNAME_LABEL = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** 'host', 'host:port', '[v6]' or '[v6]:port' (a bare IPv6 address too, without a port). */
export function parseAddress(text: string): { address: string; port: number } {
  const value = text.trim();
  const forms = "use a host name or IP address with an optional port, e.g. client.example.org, 192.0.2.7:2222 or '[2001:db8::7]:22'";
  let host = value;
  let portText: string | null = null;
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(value);
  if (bracketed) {
    host = bracketed[1]!;
    portText = bracketed[2] ?? null;
    if (isIP(host) !== 6) throw invalidInput(`the address '${text}' is not valid: only an IPv6 address goes in brackets; ${forms}`);
  } else if (isIP(value) === 6) {
    host = value;
  } else if (value.includes(':')) {
    const i = value.lastIndexOf(':');
    host = value.slice(0, i);
    portText = value.slice(i + 1);
  }
  if (host === '') throw invalidInput(`the address '${text}' has no host; ${forms}`);
  if (isIP(host) === 0) {
    const labels = host.replace(/\.$/, '').split('.');
    if (host.length > 253 || !labels.every((l) => HOSTNAME_LABEL.test(l))) throw invalidInput(`the address '${text}' is not a host name or IP address; ${forms}`);
  }
  let port = DEFAULT_SSH_PORT;
  if (portText !== null) {
    port = /^[0-9]{1,5}$/.test(portText) ? Number(portText) : NaN;
    if (!(port >= 1 && port <= 65535)) throw invalidInput(`the port '${portText}' in the address '${text}' is not a port from 1 to 65535`);
  }
  return { address: host, port };
}

/** A POSIX user name (what useradd accepts), not starting with '-'. */
export function checkUser(user: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/.test(user)) {
    throw invalidInput(`the user '${user}' is not a user name: letters, digits, '_', '.' and '-', starting with a letter or '_', at most 32 characters`);
  }
  return user;
}

/** Absolute paths on the client, without duplicates; at least one. */
export function checkPaths(paths: readonly string[]): string[] {
  const out: string[] = [];
  for (const p of paths.map((x) => x.trim())) {
    if (p === '') throw invalidInput('a path cannot be empty; give absolute paths separated by commas, e.g. /etc,/home');
    if (!p.startsWith('/')) throw invalidInput(`the path '${p}' is not absolute; paths on the client start with '/', e.g. /home`);
    if (CONTROL.test(p)) throw invalidInput(`the path '${p.replace(CONTROL, '?')}' contains a control character`);
    if (!out.includes(p)) out.push(p);
  }
  if (out.length === 0) throw invalidInput('a host needs at least one path to back up, e.g. --paths /etc,/home');
  return out;
}

/** borg exclude patterns (fnmatch, sh:, re:, pp:, pf:); checked only for what no pattern needs. */
export function checkExcludes(excludes: readonly string[]): string[] {
  return excludes.map((e) => {
    if (e.trim() === '') throw invalidInput('an exclude pattern cannot be empty');
    if (CONTROL.test(e)) throw invalidInput(`the exclude pattern '${e.replace(CONTROL, '?')}' contains a control character`);
    return e;
  });
}

const COMPRESSION_FORMS = "use none, lz4, zstd[,1-22], zlib[,0-9], lzma[,0-9], auto,SPEC or obfuscate,LEVEL,SPEC (as borg's --compression)";

/** borg 1.2's --compression spec. */
export function checkCompression(spec: string): string {
  const value = spec.trim();
  if (!compressionValid(value.split(','))) throw invalidInput(`the compression '${spec}' is not one borg accepts; ${COMPRESSION_FORMS}`);
  return value;
}

function compressionValid(parts: string[], nested = false): boolean {
  const [name, ...rest] = parts;
  const level = (min: number, max: number) => rest.length === 0 || (rest.length === 1 && /^[0-9]{1,3}$/.test(rest[0]!) && Number(rest[0]) >= min && Number(rest[0]) <= max);
  switch (name) {
    case 'none':
    case 'lz4':
      return rest.length === 0;
    case 'zstd':
      return level(1, 22);
    case 'zlib':
    case 'lzma':
      return level(0, 9);
    case 'auto':
      return !nested && rest.length > 0 && rest[0] !== 'auto' && rest[0] !== 'obfuscate' && compressionValid(rest, true);
    case 'obfuscate': {
      // borg 1.2: levels 1-6 pad relative to the size, 110-123 to a power of two.
      const l = /^[0-9]{1,3}$/.test(rest[0] ?? '') ? Number(rest[0]) : NaN;
      return !nested && ((l >= 1 && l <= 6) || (l >= 110 && l <= 123)) && rest.length > 1 && rest[1] !== 'obfuscate' && compressionValid(rest.slice(1), false);
    }
    default:
      return false;
  }
}

/** A cron pattern croner reads (seconds optional) that runs at some time. */
export function checkSchedule(pattern: string): string {
  const value = pattern.trim();
  let next: Date | null;
  try {
    next = new Cron(value, { paused: true }).nextRun();
  } catch {
    throw invalidInput(`the schedule '${pattern}' is not a cron pattern like '0 2 * * *' (minute hour day month weekday)`);
  }
  if (next === null) throw invalidInput(`the schedule '${pattern}' never runs`);
  return value;
}

/** OpenSSH's SHA-256 fingerprint, as `ssh-keygen -lf` prints it. */
export function checkFingerprint(text: string): string {
  const value = text.trim();
  if (!/^SHA256:[A-Za-z0-9+/]{43}$/.test(value)) {
    throw invalidInput(`the host key fingerprint '${text}' is not an OpenSSH SHA-256 fingerprint like SHA256: followed by 43 base64 characters (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub prints it)`);
  }
  return value;
}

/** Checks every setting; the first bad one is the sentence thrown. */
export function checkPullHostInput(input: PullHostInput): PullHostSettings {
  const { address, port } = parseAddress(input.address);
  const timeoutSeconds = input.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS;
  if (!Number.isInteger(timeoutSeconds) || timeoutSeconds < 60 || timeoutSeconds > MAX_TIMEOUT_SECONDS) {
    throw invalidInput(`the time-out must be from 1 minute to 7 days, not ${timeoutSeconds} seconds`);
  }
  // borg takes a file from its files cache only when it knows every chunk of it (the chunk index).
  if (input.keepFilesCache === true && input.sendChunkIndex === false) {
    throw invalidInput('a host that gets no chunk index cannot keep a files cache: borg reads every file again when it knows none of their chunks (drop --keep-files-cache or --no-chunk-index)');
  }
  const retries = input.retries ?? DEFAULT_RETRIES;
  if (!Number.isInteger(retries) || retries < 0 || retries > MAX_RETRIES) throw invalidInput(`the retries must be a whole number from 0 to ${MAX_RETRIES}, not ${retries}`);
  return {
    address,
    port,
    user: checkUser(input.user),
    repository: input.repository,
    paths: checkPaths(input.paths),
    excludes: checkExcludes(input.excludes ?? []),
    schedule: input.schedule === undefined || input.schedule === null ? null : checkSchedule(input.schedule),
    compression: checkCompression(input.compression ?? DEFAULT_COMPRESSION),
    archiveTemplate: checkArchiveTemplate(input.archiveTemplate ?? DEFAULT_ARCHIVE_TEMPLATE),
    timeoutSeconds,
    retries,
    hostKeyFingerprint: input.hostKeyFingerprint === undefined || input.hostKeyFingerprint === null ? null : checkFingerprint(input.hostKeyFingerprint),
    ...(input.sendChunkIndex === false && { sendChunkIndex: false }),
    ...(input.keepFilesCache === true && { keepFilesCache: true }),
  };
}
