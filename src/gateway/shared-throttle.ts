// The failed-login throttle of gateways that share one PostgreSQL database (issue 19): an address
// that fails `limit` times within the window on any mix of gateways is refused by all of them.
// Each gateway keeps its own throttle (auth-throttle.ts: immediate, no database on the path of a
// connection) and adds what the others saw: every failure is written to the database, and the
// set of addresses over the limit is read again whenever any gateway writes one (LISTEN/NOTIFY:
// store.watchChanges) and every few seconds, as failures age out.

import type { LoginThrottleStore } from '../store/login-throttle-store.js';
import type { AuthThrottle } from './auth-throttle.js';

/** The backstop: how often the shared set is read without a notification. */
export const SHARED_THROTTLE_REFRESH_MS = 5_000;
/** Addresses whose newest failures this gateway remembers to take back (as auth-throttle.ts bounds its own). */
const MAX_ADDRESSES = 10_000;

export interface SharedThrottleOptions {
  readonly local: AuthThrottle;
  readonly store: LoginThrottleStore;
  readonly watchChanges: (onChange: (table: string) => void) => () => void;
  readonly limit: number;
  readonly windowMs: number;
  readonly now: () => number;
  readonly onError: (error: unknown) => void;
}

export interface SharedThrottle extends AuthThrottle {
  /** Reads the shared set now (tests; the notifications and the timer do it otherwise). */
  refresh(): Promise<void>;
  stop(): void;
}

export function createSharedAuthThrottle(o: SharedThrottleOptions): SharedThrottle {
  let shared = new Set<string>();
  /** Per address, its failures' rows as they are written, newest last (forgive takes the newest back). */
  const rows = new Map<string, Array<Promise<number | null>>>();
  let reading: Promise<void> | null = null;
  let next: Promise<void> | null = null;
  let lastPrune = 0;

  const read = async (): Promise<void> => {
    const at = o.now();
    shared = new Set(await o.store.addressesOverLoginLimit(new Date(at - o.windowMs), o.limit));
    if (at - lastPrune > o.windowMs) {
      lastPrune = at;
      await o.store.pruneLoginFailures(new Date(at - 2 * o.windowMs));
    }
  };
  /** Reads now; while a read is under way, once more after it (what it read may be older than the caller's news). */
  const refresh = (): Promise<void> => {
    if (!reading) {
      reading = read()
        .catch(o.onError)
        .finally(() => {
          reading = null;
        });
      return reading;
    }
    next ??= reading.then(() => {
      next = null;
      return refresh();
    });
    return next;
  };

  const unwatch = o.limit > 0 ? o.watchChanges((table) => (table === 'login_failures' || table === '*') && void refresh()) : () => undefined;
  const timer = o.limit > 0 ? setInterval(() => void refresh(), SHARED_THROTTLE_REFRESH_MS).unref() : null;
  if (o.limit > 0) void refresh();

  return {
    blocked: (address) => o.local.blocked(address) || (o.limit > 0 && shared.has(address)),
    fail(address) {
      o.local.fail(address);
      if (o.limit === 0) return;
      const row = o.store.noteLoginFailure(address, new Date(o.now())).catch((error: unknown) => {
        o.onError(error);
        return null;
      });
      const list = rows.get(address) ?? [];
      list.push(row);
      // Only the newest few can still be taken back (a connection forgives its own, at once);
      // addresses in the order of their newest failure, the stalest dropped past the bound.
      if (list.length > 4) list.shift();
      rows.delete(address);
      rows.set(address, list);
      while (rows.size > MAX_ADDRESSES) rows.delete(rows.keys().next().value as string);
    },
    forgive(address) {
      o.local.forgive(address);
      const row = rows.get(address)?.pop();
      if (!row) return;
      void row.then((id) => (id === null ? undefined : o.store.forgiveLoginFailure(id))).catch(o.onError);
    },
    blockedCount: () => {
      let n = o.local.blockedCount();
      for (const address of shared) if (!o.local.blocked(address)) n++;
      return n;
    },
    refresh,
    stop() {
      unwatch();
      if (timer) clearInterval(timer);
    },
  };
}
