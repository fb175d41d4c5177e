// While a session runs, whether its key and grant still stand. Revoking the key, removing the
// grant (or replacing it), changing its role, narrowing its address ranges past the client, or
// its expiry passing ends the session within about GRANT_WATCH_INTERVAL_MS: the watch aborts its
// signal with one sentence saying why, and the guard ends the session as it does for a stop
// (borg serve gets EOF and rolls back what is not committed).
//
// It works across processes (sshd's forced command runs each session in a process of its own)
// because it asks the store, where the CLI, the API and every other process write. It must never
// queue queries behind a slow database: one query at a time, the next only after the last one
// answered. A database that does not answer ends nothing (that is the ledger's trouble, not a
// revocation); the session's own checks at `open` already refused what was revoked before.

import type { Grant, GuardStore } from '../store/types.js';

/** How often a running session asks the store about its key and grant. */
export const GRANT_WATCH_INTERVAL_MS = 500;

/** What the store says about a session's key and its grant on the session's repository. */
export type GrantStanding = Awaited<ReturnType<GuardStore['grantStanding']>>;

/** What the session was opened with. */
export interface WatchedGrant {
  readonly keyName: string;
  readonly repositoryName: string;
  readonly grant: Grant;
  /** Whether the client's address is inside these ranges. */
  readonly addressAllowed: (cidrs: readonly string[]) => boolean;
}

/** Why the session may not go on, or null while key and grant stand as they did at `open`. */
export function whyGrantEnded(watched: WatchedGrant, standing: GrantStanding, now: Date): string | null {
  const grantOf = `the grant of key '${watched.keyName}' on repository '${watched.repositoryName}'`;
  if (!standing) return `the key '${watched.keyName}' is no longer registered`;
  if (standing.keyRevokedAt) return `the key '${watched.keyName}' was revoked at ${standing.keyRevokedAt.toISOString()}`;
  const g = standing.grant;
  if (!g || g.id !== watched.grant.id) return `${grantOf} was removed`;
  if (g.expiresAt && g.expiresAt.getTime() <= now.getTime()) return `${grantOf} expired at ${g.expiresAt.toISOString()}`;
  if (g.role !== watched.grant.role) return `${grantOf} changed from role ${watched.grant.role} to ${g.role}`;
  if (g.fromCidrs && g.fromCidrs.length > 0 && !watched.addressAllowed(g.fromCidrs)) {
    return `${grantOf} no longer allows the client's address`;
  }
  return null;
}

export interface GrantWatch {
  /** Aborted, with the sentence saying why as its reason, when the session must end. */
  readonly signal: AbortSignal;
  /** Ends the watch (the session ended); idempotent. */
  stop(): void;
}

export interface GrantWatchOptions {
  /** One cheap indexed query: the key's revocation and its grant on the repository. */
  readonly read: () => Promise<GrantStanding>;
  readonly judge: (standing: GrantStanding, now: Date) => string | null;
  readonly now: () => Date;
  readonly intervalMs?: number;
  /** Subscribes to writes in this process that may end the session; returns the unsubscribe. */
  readonly onChange?: (wake: () => void) => () => void;
  /**
   * When the grant the session opened with expires: a look then, on the clock's time (the store
   * is asked, so an expiry moved later since is seen), not up to an interval after it.
   */
  readonly deadline?: Date | null;
}

/** setTimeout's longest delay; a later deadline is left to the interval's looks. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export function watchGrant(options: GrantWatchOptions): GrantWatch {
  const controller = new AbortController();
  const interval = options.intervalMs ?? GRANT_WATCH_INTERVAL_MS;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let looking = false;
  let lookAgain = false;
  const schedule = (): void => {
    timer = setTimeout(() => void look(), interval);
    timer.unref(); // the session keeps the process alive, never the watch
  };
  const look = async (): Promise<void> => {
    looking = true;
    let why: string | null = null;
    try {
      why = options.judge(await options.read(), options.now());
    } catch {
      // Unanswered this time (the database busy or gone): asked again at the next look.
    }
    looking = false;
    if (stopped) return;
    if (why !== null) {
      stopped = true;
      clearTimeout(deadlineTimer);
      unsubscribe();
      controller.abort(why);
      return;
    }
    if (lookAgain) {
      // A write came while this look was under way: it may not have seen it.
      lookAgain = false;
      void look();
      return;
    }
    schedule();
  };
  // Still one query at a time: a wake during a look asks for one more look right after it.
  const wake = (): void => {
    if (stopped) return;
    if (looking) {
      lookAgain = true;
      return;
    }
    clearTimeout(timer);
    void look();
  };
  const unsubscribe = options.onChange?.(wake) ?? (() => undefined);
  schedule();
  let deadlineTimer: NodeJS.Timeout | undefined;
  if (options.deadline) {
    // A few ms past it: a timer never fires early, but the judge's clock and this one may differ by one.
    const delay = options.deadline.getTime() - options.now().getTime() + 5;
    if (delay <= MAX_TIMER_MS) {
      deadlineTimer = setTimeout(wake, Math.max(0, delay));
      deadlineTimer.unref();
    }
  }
  return {
    signal: controller.signal,
    stop() {
      stopped = true;
      clearTimeout(timer);
      clearTimeout(deadlineTimer);
      unsubscribe();
    },
  };
}
