// Pull hosts and jobs arranged for the API and console tests, written through the store from the
// test process on the serve's own data directory, as `borgkeep host add` and a job's runner (in
// another process) write them. arrangeRunningJob is a job claimed here and moved along by hand,
// for the API tests that need exact numbers; the console's e2e test (test/e2e/pull.test.ts) runs
// a real pull job instead.

import { checkPullHostInput, type PullHostInput } from '../../src/pull/host-input.js';
import type { PullHost } from '../../src/pull/types.js';
import { openStore, type Store } from '../../src/store/database.js';
import { thisPullRunner } from '../../src/store/pull-store.js';

/** The store of a data directory a running `borgkeep serve` uses too (SQLite in WAL mode). */
export const openSideStore = (dataDir: string): Promise<Store> => openStore({ dataDir });

export async function addPullHost(store: Store, name: string, input: Partial<PullHostInput> & { repository: string }): Promise<PullHost> {
  return store.addPullHost(name, checkPullHostInput({ address: '192.0.2.7', user: 'backup', paths: ['/etc', '/home'], ...input }));
}

export interface ArrangedJob {
  id: number;
  /** Moves the job's progress on, as borg's --log-json would. */
  progress(bytes: number, files: number, path: string | null): Promise<void>;
  log(line: string): Promise<void>;
  end(state: 'done' | 'failed', reason?: string): Promise<void>;
}

/** A manual job of `host`, claimed and running as the runner would leave it, with a first log line. */
export async function arrangeRunningJob(store: Store, host: string, archiveName: string): Promise<ArrangedJob> {
  // serve's pull service may take the queued job first (it polls every 2 s): then it fails it at
  // once (no way to reach the test's hosts), and we queue another.
  let claimed = null;
  for (let tries = 0; !claimed; tries++) {
    if (tries === 5) throw new Error(`every job of ${host} queued here was claimed by another process`);
    const queued = await store.queuePullJob(host, { trigger: 'manual' });
    claimed = await store.claimNextPullJob(thisPullRunner('cli'), { jobId: queued!.job.id });
    if (!claimed) await new Promise((r) => setTimeout(r, 500));
  }
  const id = claimed.id;
  await store.setPullJobState(id, 'connecting', { archiveName });
  await store.appendPullJobLog(id, `job ${id} of host ${host} started (manual); archive ${archiveName}`);
  await store.setPullJobState(id, 'running');
  return {
    id,
    progress: (bytes, files, path) => store.setPullJobProgress(id, { bytes, files, path }),
    log: (line) => store.appendPullJobLog(id, line),
    async end(state, reason) {
      await store.appendPullJobLog(id, state === 'done' ? `job ${id} done: archive ${archiveName}` : `job ${id} failed: ${reason}`);
      await store.setPullJobState(id, state, { reason: state === 'failed' ? (reason ?? null) : null });
    },
  };
}
