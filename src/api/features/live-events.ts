// Live events for the console: sessions starting, progressing (bytes in and out) and ending, and
// denials, derived from the ledger. Sessions run in other processes (sshd's forced command) as
// well as in this one, so the ledger is the only place that sees them all: one look about once
// a second, shared by every subscriber, and only while someone is subscribed. Each look is two
// indexed queries (ledger-store.ts ledgerChanges), whatever the number of subscribers or the
// size of the ledger.
//
// Never: queries once per subscriber, lets a slow look overlap the next, or hands out a
// session's pid or host (where borgkeep runs is not for clients).

import type { DenialWithNames, LedgerMarks, LedgerStore } from '../../store/ledger-store.js';
import type { Session } from '../../store/types.js';

export const LIVE_POLL_MS = 1000;

/** A session as events carry it: the ledger row without the process that ran it. */
export type LiveSession = Omit<Session, 'pid' | 'host'>;

export type LiveEvent =
  | { type: 'session.started' | 'session.progress' | 'session.ended'; session: LiveSession }
  | { type: 'denial'; denial: DenialWithNames };

export interface LiveSubscription {
  /** Sessions open when the subscription began (as of the hub's latest look). */
  open: LiveSession[];
  unsubscribe(): void;
}

export interface LiveEvents {
  /** Resolves once the hub has looked at the ledger at least once, so `open` is current. */
  subscribe(listener: (event: LiveEvent) => void): Promise<LiveSubscription>;
  /** One look now (tests; the timer calls it otherwise). */
  tick(): Promise<void>;
  subscriberCount(): number;
  /** Stops looking; listeners get nothing more. */
  close(): void;
}

export interface LiveEventsDeps {
  store: Pick<LedgerStore, 'ledgerMarks' | 'ledgerChanges'>;
  pollMs?: number;
  /** A failed look is reported here and retried at the next tick. */
  onError?: (error: unknown) => void;
}

const live = ({ pid: _pid, host: _host, ...session }: Session): LiveSession => session;

/** What a progress event is about: anything a running session's row can change. */
const progressOf = (s: LiveSession) => `${s.bytesIn}|${s.bytesOut}|${s.repositoryName}|${s.role}|${s.clientVersion}`;

export function createLiveEvents(deps: LiveEventsDeps): LiveEvents {
  const pollMs = deps.pollMs ?? LIVE_POLL_MS;
  const listeners = new Set<(event: LiveEvent) => void>();
  /** Sessions open at the last look, as last announced. Null marks: not looking. */
  let open = new Map<number, LiveSession>();
  let marks: LedgerMarks | null = null;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  let closed = false;
  /** Subscribers waiting for the first look: the timer must not stop for want of listeners. */
  let joining = 0;

  const emit = (event: LiveEvent) => {
    for (const listener of listeners) {
      try {
        listener(event);
      } catch (error) {
        deps.onError?.(error);
      }
    }
  };

  const look = async (): Promise<void> => {
    if (marks === null) {
      // The first look only learns where the ledger stands and what is open now.
      const start = await deps.store.ledgerMarks();
      const { sessions } = await deps.store.ledgerChanges(start, []);
      open = new Map(sessions.filter((s) => s.result === 'open').map((s) => [s.id, live(s)]));
      marks = start;
      return;
    }
    const { sessions, denials } = await deps.store.ledgerChanges(marks, [...open.keys()]);
    const next: LedgerMarks = { ...marks };
    for (const row of sessions) {
      const session = live(row);
      const before = open.get(session.id);
      if (!before) {
        // Open sessions seen before are in `open`; one not there is new (or began and ended
        // between two looks, which still deserves both events).
        if (session.id <= marks.sessionId) continue;
        emit({ type: 'session.started', session });
        if (session.result === 'open') open.set(session.id, session);
        else emit({ type: 'session.ended', session });
      } else if (session.result !== 'open') {
        open.delete(session.id);
        emit({ type: 'session.ended', session });
      } else if (progressOf(before) !== progressOf(session)) {
        open.set(session.id, session);
        emit({ type: 'session.progress', session });
      }
      next.sessionId = Math.max(next.sessionId, session.id);
    }
    for (const denial of denials) {
      emit({ type: 'denial', denial });
      next.denialId = Math.max(next.denialId, denial.id);
    }
    marks = next;
  };

  const tick = (): Promise<void> => {
    running ??= look()
      .catch((error: unknown) => deps.onError?.(error))
      .finally(() => {
        running = null;
      });
    return running;
  };

  const schedule = () => {
    if (timer || closed) return;
    timer = setInterval(() => {
      if (listeners.size === 0 && joining === 0) {
        // Nobody watches: stop, and start afresh from the ledger's state with the next subscriber.
        clearInterval(timer!);
        timer = null;
        marks = null;
        open.clear();
        return;
      }
      if (!running) void tick();
    }, pollMs);
    timer.unref();
  };

  return {
    async subscribe(listener) {
      if (closed) throw new Error('the live event hub is closed');
      schedule();
      joining += 1;
      try {
        if (marks === null) await tick();
        if (marks === null) await tick(); // a look was under way, or the first one failed
      } finally {
        joining -= 1;
      }
      if (marks === null) throw new Error('the ledger could not be read for live events');
      if (closed) throw new Error('the live event hub is closed');
      // Listener and snapshot together, so no event falls between them.
      listeners.add(listener);
      return {
        open: [...open.values()],
        unsubscribe: () => {
          listeners.delete(listener);
        },
      };
    },
    tick,
    subscriberCount: () => listeners.size,
    close() {
      closed = true;
      listeners.clear();
      if (timer) clearInterval(timer);
      timer = null;
    },
  };
}
