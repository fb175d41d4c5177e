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
}

export const MAX_CIDRS_PER_GRANT = 64;

export function checkRole(role: string): Role {
  if ((ROLES as readonly string[]).includes(role)) return role as Role;
  return refuse(`unknown role '${role}'; use read, append, prune or full`);
}

/** Validated, normalized terms; refuses an expiry that is not in the future. */
export function checkGrantTerms(terms: GrantTerms, now: Date): GrantTerms {
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
  return { role, writesPerDay, fromCidrs, expiresAt };
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
