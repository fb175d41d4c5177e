// The live event stream (GET /api/v1/events, server-sent events) as React state: the sessions
// running now, those that just ended, and a counter that moves whenever something ended or was
// refused, so pages refetch what they show. EventSource reconnects by itself; each (re)connect
// starts with a snapshot of the open sessions, so nothing is missed across a dropped stream.
// Pull jobs queued or under way come the same way (pull.started/progress/ended).
import { createContext, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';
import type { Denial, Session } from './api';
import { pullJobEnded, type PullJob } from './pull-api';

export interface LiveState {
  connected: boolean;
  open: Session[];
  /** The last sessions that ended while the page was open, newest first. */
  ended: Session[];
  denials: Denial[];
  /** Moves on every ended session and denial. */
  changes: number;
  /** Pull jobs queued or under way, with their progress; the last that ended, newest first. */
  pullJobs: PullJob[];
  pullEnded: PullJob[];
  /** Moves whenever a pull job appears, changes state or ends. */
  pullChanges: number;
}

const empty: LiveState = { connected: false, open: [], ended: [], denials: [], changes: 0, pullJobs: [], pullEnded: [], pullChanges: 0 };
const LiveContext = createContext<LiveState>(empty);
const KEEP_ENDED = 8;

export function LiveProvider({ children }: { children: ReactNode }) {
  const [state, setState] = useState<LiveState>(empty);
  useEffect(() => {
    const source = new EventSource('/api/v1/events');
    const sessionOf = (e: MessageEvent) => (JSON.parse(e.data as string) as { session: Session }).session;
    const upsert = (open: Session[], s: Session) => [...open.filter((o) => o.id !== s.id), s].sort((a, b) => a.id - b.id);
    source.addEventListener('open', () => setState((st) => ({ ...st, connected: true })));
    source.addEventListener('error', () => setState((st) => ({ ...st, connected: false })));
    source.addEventListener('snapshot', (e) => {
      const { open, pullJobs } = JSON.parse((e as MessageEvent).data as string) as { open: Session[]; pullJobs?: PullJob[] };
      setState((st) => ({ ...st, connected: true, open, changes: st.changes + 1, pullJobs: pullJobs ?? [], pullChanges: st.pullChanges + 1 }));
    });
    const onPull = (e: Event) => {
      const { job } = JSON.parse((e as MessageEvent).data as string) as { job: PullJob };
      setState((st) => {
        const before = st.pullJobs.find((j) => j.id === job.id);
        const others = st.pullJobs.filter((j) => j.id !== job.id);
        if (pullJobEnded(job)) {
          return { ...st, pullJobs: others, pullEnded: [job, ...st.pullEnded.filter((j) => j.id !== job.id)].slice(0, KEEP_ENDED), pullChanges: st.pullChanges + 1 };
        }
        return { ...st, pullJobs: [...others, job].sort((a, b) => a.id - b.id), pullChanges: before?.state === job.state ? st.pullChanges : st.pullChanges + 1 };
      });
    };
    source.addEventListener('pull.started', onPull);
    source.addEventListener('pull.progress', onPull);
    source.addEventListener('pull.ended', onPull);
    const onRunning = (e: Event) => {
      const s = sessionOf(e as MessageEvent);
      setState((st) => ({ ...st, open: upsert(st.open, s) }));
    };
    source.addEventListener('session.started', onRunning);
    source.addEventListener('session.progress', onRunning);
    source.addEventListener('session.ended', (e) => {
      const s = sessionOf(e as MessageEvent);
      setState((st) => ({
        ...st,
        open: st.open.filter((o) => o.id !== s.id),
        ended: [s, ...st.ended.filter((o) => o.id !== s.id)].slice(0, KEEP_ENDED),
        changes: st.changes + 1,
      }));
    });
    source.addEventListener('denial', (e) => {
      const { denial } = JSON.parse((e as MessageEvent).data as string) as { denial: Denial };
      setState((st) => ({ ...st, denials: [denial, ...st.denials].slice(0, KEEP_ENDED), changes: st.changes + 1 }));
    });
    source.addEventListener('end', () => {
      // The server ended the stream (shutdown, or the session is gone): EventSource would retry.
      source.close();
      setState((st) => ({ ...st, connected: false }));
    });
    return () => source.close();
  }, []);
  return <LiveContext.Provider value={state}>{children}</LiveContext.Provider>;
}

export function useLive(): LiveState {
  return useContext(LiveContext);
}

/** The live state narrowed to one repository. */
export function useLiveFor(repository: string | null): LiveState {
  const live = useLive();
  return useMemo(() => {
    if (repository === null) return live;
    return {
      ...live,
      open: live.open.filter((s) => s.repositoryName === repository),
      ended: live.ended.filter((s) => s.repositoryName === repository),
      denials: live.denials.filter((d) => d.repositoryName === repository),
    };
  }, [live, repository]);
}
