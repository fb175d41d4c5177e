// Failed SSH logins per source address in a sliding window. Once an address has had `limit`
// failures within `windowMs`, its new connections are closed before the handshake until the
// oldest failure ages out. Memory is bounded: at most `maxAddresses` addresses are tracked, the
// stalest dropped first, so a spray of source addresses cannot grow it without end.

export interface AuthThrottle {
  /** Whether connections from the address are refused right now. */
  blocked(address: string): boolean;
  /** Counts one failed authentication from the address. */
  fail(address: string): void;
  /** Takes back the newest failure of the address (its connection logged in after all). */
  forgive(address: string): void;
  /** Addresses blocked right now (for logs and metrics). */
  blockedCount(): number;
}

export interface AuthThrottleOptions {
  readonly limit: number;
  readonly windowMs: number;
  readonly now: () => number;
  readonly maxAddresses?: number;
}

export function createAuthThrottle({ limit, windowMs, now, maxAddresses = 10_000 }: AuthThrottleOptions): AuthThrottle {
  // Insertion order of a Map is the order of each address's latest failure (re-inserted on fail).
  const failures = new Map<string, number[]>();

  const recent = (address: string): number[] => {
    const list = failures.get(address);
    if (!list) return [];
    const since = now() - windowMs;
    while (list.length > 0 && list[0] <= since) list.shift();
    if (list.length === 0) failures.delete(address);
    return list;
  };

  return {
    blocked: (address) => limit > 0 && recent(address).length >= limit,
    fail(address) {
      const list = recent(address);
      list.push(now());
      if (list.length > limit) list.shift();
      failures.delete(address);
      failures.set(address, list);
      while (failures.size > maxAddresses) failures.delete(failures.keys().next().value as string);
    },
    forgive(address) {
      const list = failures.get(address);
      list?.pop();
      if (list && list.length === 0) failures.delete(address);
    },
    blockedCount() {
      let n = 0;
      for (const address of [...failures.keys()]) if (limit > 0 && recent(address).length >= limit) n++;
      return n;
    },
  };
}
