// The terms of a grant (role and limits) and the checks every caller gets, whether the terms
// come from the command line or, later, the HTTP API: a grant the store holds is always valid,
// so the guard never meets an unknown role or an unparseable address range.

import { isIP, SocketAddress } from 'node:net';
import { invalidInput } from '../errors.js';
import { ROLES, type Role } from './types.js';

export interface GrantTerms {
  role: Role;
  writesPerDay: number | null;
  fromCidrs: string[] | null;
  expiresAt: Date | null;
  /** A prune grant's retention rule (types.ts Grant); left out: none. */
  minAgeSeconds?: number | null;
  keepLast?: number | null;
  prefix?: string | null;
  maxRemovalsPerDay?: number | null;
  /** A writing role's --verify-objects; left out: off. */
  verifyObjects?: boolean;
}

/** borg's archive names are at most this long, so a longer prefix matches nothing. */
export const MAX_PREFIX_LENGTH = 255;
/** A retention bound beyond this (about 100 years) is no bound anyone means. */
const MAX_MIN_AGE_SECONDS = 100 * 366 * 86_400;

export const MAX_CIDRS_PER_GRANT = 64;

export function checkRole(role: string): Role {
  if ((ROLES as readonly string[]).includes(role)) return role as Role;
  return refuse(`unknown role '${role}'; use read, append, prune or full`);
}

/** Validated, normalized terms; refuses an expiry that is not in the future. */
export function checkGrantTerms(terms: GrantTerms, now: Date): Required<GrantTerms> {
  const role = checkRole(terms.role);
  const { writesPerDay, expiresAt } = terms;
  if (writesPerDay !== null && (!Number.isSafeInteger(writesPerDay) || writesPerDay < 1)) {
    refuse(`backups per day (writes per day) must be a whole number of at least 1, not ${writesPerDay}`);
  }
  if (expiresAt !== null) {
    if (Number.isNaN(expiresAt.getTime())) refuse('the expiry time is not a valid date');
    if (expiresAt.getTime() <= now.getTime()) {
      refuse(`the expiry time ${expiresAt.toISOString()} has already passed`);
    }
  }
  let fromCidrs: string[] | null = null;
  if (terms.fromCidrs !== null) {
    if (terms.fromCidrs.length === 0) refuse('the list of allowed address ranges is empty');
    if (terms.fromCidrs.length > MAX_CIDRS_PER_GRANT) {
      refuse(`a grant takes at most ${MAX_CIDRS_PER_GRANT} address ranges, not ${terms.fromCidrs.length}`);
    }
    fromCidrs = [...new Set(terms.fromCidrs.map(normalizeCidr))];
  }
  return { role, writesPerDay, fromCidrs, expiresAt, ...checkArchiveRules(role, terms) };
}

/** The archive rules of the terms: a retention rule only on a prune grant, --verify-objects only on a writing one. */
function checkArchiveRules(role: Role, terms: GrantTerms): Pick<Required<GrantTerms>, 'minAgeSeconds' | 'keepLast' | 'prefix' | 'maxRemovalsPerDay' | 'verifyObjects'> {
  const minAgeSeconds = terms.minAgeSeconds ?? null;
  const keepLast = terms.keepLast ?? null;
  const prefix = terms.prefix ?? null;
  const maxRemovalsPerDay = terms.maxRemovalsPerDay ?? null;
  const verifyObjects = terms.verifyObjects ?? false;
  const given = [
    minAgeSeconds !== null && 'a minimum age (--min-age)',
    keepLast !== null && 'a keep-last count (--keep-last)',
    prefix !== null && 'a prefix (--prefix)',
    maxRemovalsPerDay !== null && 'a removal limit (--max-removals-per-day)',
  ].filter((x): x is string => x !== false);
  if (role !== 'prune' && given.length > 0) refuse(`${given[0]} is a retention rule of the prune role, not of ${role}`);
  if (minAgeSeconds !== null && (!Number.isSafeInteger(minAgeSeconds) || minAgeSeconds < 1 || minAgeSeconds > MAX_MIN_AGE_SECONDS)) {
    refuse(`the minimum age must be from 1 second to 100 years, not ${minAgeSeconds} seconds`);
  }
  if (keepLast !== null && (!Number.isSafeInteger(keepLast) || keepLast < 1 || keepLast > 1_000_000)) refuse(`keep-last must be a whole number from 1 to 1000000, not ${keepLast}`);
  if (maxRemovalsPerDay !== null && (!Number.isSafeInteger(maxRemovalsPerDay) || maxRemovalsPerDay < 1 || maxRemovalsPerDay > 1_000_000)) {
    refuse(`the removals per day must be a whole number from 1 to 1000000, not ${maxRemovalsPerDay}`);
  }
  if (prefix !== null) {
    if (prefix.length === 0) refuse('the prefix is empty; leave --prefix out to cover every archive');
    if (prefix.length > MAX_PREFIX_LENGTH) refuse(`the prefix is ${prefix.length} characters long; borg's archive names have at most ${MAX_PREFIX_LENGTH}`);
    if (/[\u0000-\u001f\u007f/]/.test(prefix)) refuse('the prefix has a control character or a slash, which no borg archive name has');
  }
  if (verifyObjects && role === 'read') refuse('--verify-objects checks what a key writes; the read role writes nothing');
  return { minAgeSeconds, keepLast, prefix, maxRemovalsPerDay, verifyObjects };
}

/**
 * "ADDRESS/PREFIX" or a bare address (a /32 or /128), IPv4 or IPv6, in canonical form. Like
 * OpenSSH's from= lists, a range with bits set past its prefix is refused rather than guessed at.
 */
export function normalizeCidr(text: string): string {
  const slash = text.indexOf('/');
  const address = slash === -1 ? text : text.slice(0, slash);
  const prefixText = slash === -1 ? undefined : text.slice(slash + 1);
  if (address.includes('%')) refuse(`'${text}' has a zone index; give the address without '%…'`);
  const family = isIP(address);
  if (family === 0) refuse(`'${text}' is not an IPv4 or IPv6 address or CIDR range`);
  const width = family === 4 ? 32 : 128;
  let prefix = width;
  if (prefixText !== undefined) {
    if (!/^[0-9]{1,3}$/.test(prefixText) || Number(prefixText) > width) {
      refuse(`'${text}' has an invalid prefix length; IPv${family} ranges take /0 to /${width}`);
    }
    prefix = Number(prefixText);
  }
  const value = family === 4 ? ipv4ToBigInt(address) : ipv6ToBigInt(address);
  const hostBits = (1n << BigInt(width - prefix)) - 1n;
  const network = value & ~hostBits;
  if (network !== value) {
    const suggestion = `${family === 4 ? bigIntToIpv4(network) : bigIntToIpv6(network)}/${prefix}`;
    refuse(`'${text}' has address bits set past its /${prefix} prefix; did you mean ${suggestion}?`);
  }
  return `${canonical(address, family)}/${prefix}`;
}

function refuse(message: string): never {
  throw invalidInput(message);
}

function canonical(address: string, family: number): string {
  return new SocketAddress({ address, family: family === 4 ? 'ipv4' : 'ipv6' }).address;
}

function ipv4ToBigInt(address: string): bigint {
  return address.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

function bigIntToIpv4(value: bigint): string {
  return [24n, 16n, 8n, 0n].map((shift) => ((value >> shift) & 0xffn).toString()).join('.');
}

/** Expects an address net.isIP already accepted as IPv6 (so "::" appears at most once). */
function ipv6ToBigInt(address: string): bigint {
  let text = address;
  const embedded = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (embedded) {
    const v4 = ipv4ToBigInt(embedded[1]!);
    text = `${text.slice(0, -embedded[1]!.length)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  let groups: string[];
  if (text.includes('::')) {
    const [head, tail] = text.split('::') as [string, string];
    const headGroups = head === '' ? [] : head.split(':');
    const tailGroups = tail === '' ? [] : tail.split(':');
    groups = [...headGroups, ...Array<string>(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups];
  } else {
    groups = text.split(':');
  }
  return groups.reduce((acc, group) => (acc << 16n) | BigInt(parseInt(group, 16)), 0n);
}

function bigIntToIpv6(value: bigint): string {
  const groups: string[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) groups.push(((value >> shift) & 0xffffn).toString(16));
  return canonical(groups.join(':'), 6);
}
