// The reverse proxies whose X-Forwarded-For (and -Proto, -Host) the HTTP API believes
// (`serve --trust-proxy`): addresses and CIDR ranges, or proxy-addr's names loopback,
// linklocal and uniquelocal. Off by default: a client connecting directly must never choose the
// address the login throttle, the console sessions and the logs see by sending a header.
// It only parses; Fastify's trustProxy (proxy-addr) walks the header from the right and stops at
// the first address that is not a listed proxy.

import { isIP } from 'node:net';

const NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/** One entry: an address, an address/prefix, or a proxy-addr name; else why not. */
function entryError(entry: string): string | null {
  if (NAMES.has(entry)) return null;
  const [address, prefix, extra] = entry.split('/');
  const family = isIP(address ?? '');
  if (family === 0 || extra !== undefined) return `'${entry}' is not an address, an address/prefix range or one of loopback, linklocal, uniquelocal`;
  if (prefix !== undefined && (!/^[0-9]{1,3}$/.test(prefix) || Number(prefix) > (family === 4 ? 32 : 128))) return `'${entry}' has a prefix length out of range`;
  return null;
}

/** "127.0.0.1, 10.0.0.0/8" (or a list, from the config file) as the list Fastify trusts; errors as one sentence. */
export function parseTrustProxy(input: string | readonly string[]): { proxies: string[] } | { error: string } {
  const entries = (typeof input === 'string' ? input.split(',') : [...input]).map((e) => String(e).trim()).filter((e) => e !== '');
  for (const entry of entries) {
    const error = entryError(entry);
    if (error) return { error };
  }
  return { proxies: entries };
}
