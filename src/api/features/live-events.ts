// Live events for the console: sessions starting, progressing (bytes in and out) and ending, and
// denials, derived from the ledger; pull jobs queued, progressing (state, bytes, files, the path
// borg reads) and ending, from the store's pull jobs (their runner writes them, often in another
// process). Sessions run in other processes (sshd's forced command) as
// well as in this one, so the ledger is the only place that sees them all: one look about once
// a second, shared by every subscriber, and only while someone is subscribed. Each look is two
// indexed queries (ledger-store.ts ledgerChanges) and one of the pull jobs queued or under way
// (pull-read-store.ts pullJobActivity), whatever the number of subscribers, jobs or the size of
// the ledger.
//
// Never: queries once per subscriber, lets a slow look overlap the next, or hands out a
// session's pid or host (where borgkeep runs is not for clients).

import type { DenialWithNames, LedgerMarks, LedgerStore } from '../../store/ledger-store.js';
import type { PullJobView, PullReadStore } from '../../store/pull-read-store.js';
import type { Session } from '../../store/types.js';
import type { Store } from '../../store/database.js';

export const LIVE_POLL_MS = 1000;

/** A session as events carry it: the ledger row without the process that ran it. */
export type LiveSession = Omit<Session, 'pid' | 'host'>;

export type LiveEvent =
  | { type: 'session.started' | 'session.progress' | 'session.ended'; session: LiveSession }
  | { type: 'denial'; denial: DenialWithNames }
  /** pull.started: a job appeared (queued, or already under way); pull.progress: its state, bytes, files or path moved. */
  | { type: 'pull.started' | 'pull.progress' | 'pull.ended'; job: PullJobView };

export interface LiveSubscription {
  /** Sessions open when the subscription began (as of the hub's latest look). */
  open: LiveSession[];
  /** Pull jobs queued or under way when the subscription began. */
  pullJobs: PullJobView[];
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
  store: Pick<LedgerStore, 'ledgerMarks' | 'ledgerChanges'> & Partial<Pick<PullReadStore, 'pullJobActivity'>> & Partial<Pick<Store, 'watchChanges'>>;
  /**
   * How often the ledger is read while anyone watches. With a store that announces its writes
   * (PostgreSQL's LISTEN/NOTIFY: watchChanges), a look follows each announced write of the
   * ledger's tables instead, and the timer only backs it up, WATCHED_POLL_FACTOR times slower.
   */
  pollMs?: number;
  /** A failed look is reported here and retried at the next tick. */
  onError?: (error: unknown) => void;
}

const live = ({ pid: _pid, host: _host, ...session }: Session): LiveSession => session;

/** What a progress event is about: anything a running session's row can change. */
const progressOf = (s: LiveSession) => `${s.bytesIn}|${s.bytesOut}|${s.repositoryName}|${s.role}|${s.clientVersion}`;
/** What a pull job's progress event is about. */
const pullProgressOf = (j: PullJobView) => `${j.state}|${j.bytes}|${j.files}|${j.currentPath}|${j.archiveName}`;
const pullEnded = (j: PullJobView) => j.state === 'done' || j.state === 'failed';

/** With announced writes, the timer is only a backstop: this many times the poll interval. */
export const WATCHED_POLL_FACTOR = 10;
/** The tables whose writes live events report. */
const LIVE_TABLES = new Set(['sessions', 'denials', 'pull_jobs', '*']);

export function createLiveEvents(deps: LiveEventsDeps): LiveEvents {
  const watched = deps.store.watchChanges !== undefined;
  const pollMs = (deps.pollMs ?? LIVE_POLL_MS) * (watched ? WATCHED_POLL_FACTOR : 1);
  let unwatch: (() => void) | null = null;
  /** A write was announced while a look ran: look once more after it. */
  let lookAgain = false;
  const listeners = new Set<(event: LiveEvent) => void>();
  /** Sessions open at the last look, as last announced. Null marks: not looking. */
  let open = new Map<number, LiveSession>();
  let marks: LedgerMarks | null = null;
  /** Pull jobs queued or under way at the last look, as last announced, and the newest job id seen. */
  let pullOpen = new Map<number, PullJobView>();
  let pullMax = 0;
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
      if (deps.store.pullJobActivity) {
        const pull = await deps.store.pullJobActivity([], null);
        pullOpen = new Map(pull.jobs.filter((j) => !pullEnded(j)).map((j) => [j.id, j]));
        pullMax = pull.maxId;
      }
      marks = start;
      return;
    }
    if (deps.store.pullJobActivity) await lookAtPullJobs(deps.store.pullJobActivity);
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

  const lookAtPullJobs = async (activity: PullReadStore['pullJobActivity']): Promise<void> => {
    const { jobs, maxId } = await activity([...pullOpen.keys()], pullMax);
    for (const job of jobs) {
      const before = pullOpen.get(job.id);
      if (!before) {
        // Not tracked: new since the last look (perhaps already ended), or one that ended
        // before it was ever announced (nothing to say about it).
        if (job.id <= pullMax) continue;
        emit({ type: 'pull.started', job });
        if (pullEnded(job)) emit({ type: 'pull.ended', job });
        else pullOpen.set(job.id, job);
      } else if (pullEnded(job)) {
        pullOpen.delete(job.id);
        emit({ type: 'pull.ended', job });
      } else if (pullProgressOf(before) !== pullProgressOf(job)) {
        pullOpen.set(job.id, job);
        emit({ type: 'pull.progress', job });
      }
    }
    pullMax = Math.max(pullMax, maxId);
  };

  const tick = (): Promise<void> => {
    running ??= look()
      .catch((error: unknown) => deps.onError?.(error))
      .finally(() => {
        running = null;
        if (lookAgain && marks !== null && !closed) {
          lookAgain = false;
          void tick();
        }
      });
    return running;
  };

  const onWrite = (table: string) => {
    if (!LIVE_TABLES.has(table) || marks === null || closed) return;
    if (running) lookAgain = true;
    else void tick();
  };

  const schedule = () => {
    if (timer || closed) return;
    unwatch = deps.store.watchChanges?.(onWrite) ?? null;
    timer = setInterval(() => {
      if (listeners.size === 0 && joining === 0) {
        // Nobody watches: stop, and start afresh from the ledger's state with the next subscriber.
        clearInterval(timer!);
        timer = null;
        unwatch?.();
        unwatch = null;
        marks = null;
        open.clear();
        pullOpen.clear();
        pullMax = 0;
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
        pullJobs: [...pullOpen.values()],
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
      unwatch?.();
      unwatch = null;
    },
  };
}
