// Each restore as a ledger session, from the CLI and the API alike: who (in the key-name column,
// as `(restore by NAME)`, like a rollback's), which repository, what (path, archive, file or tar),
// how many bytes (bytes_out), and whether it completed. The methods 'get' and 'restore:archive'
// make its kind of run list/extract. Never records key material or a server path.

import { hostname } from 'node:os';
import { plural } from '../shared/plural.js';

/** The method note of a restore session (besides 'get', which makes it a list/extract run). */
export const METHOD_RESTORE = 'restore:archive';

export interface RestoreLedgerStore {
  startSession(s: { keyId: null; keyName: string; clientAddress: string | null; startedAt: Date; pid: number; host: string }): Promise<number>;
  updateSession(id: number, u: { repositoryId: number; repositoryName: string }): Promise<void>;
  endSession(id: number, e: { endedAt: Date; result: 'ok' | 'error'; detail: string; bytesIn: number; bytesOut: number; methods: string[] }): Promise<void>;
}

export interface RestoreRecord {
  done(bytes: number, items: number): Promise<void>;
  failed(reason: string, bytes: number): Promise<void>;
}

/** Opens the session of a restore of `what` (e.g. "'/src' of archive 'a1' as a tar stream") by `actor`. */
export async function recordRestore(
  store: RestoreLedgerStore,
  repository: { readonly id: number; readonly name: string },
  actor: string,
  what: string,
  opts: { now: () => Date; clientAddress?: string | null },
): Promise<RestoreRecord> {
  const sessionId = await store.startSession({ keyId: null, keyName: `(restore by ${actor})`, clientAddress: opts.clientAddress ?? null, startedAt: opts.now(), pid: process.pid, host: hostname() });
  await store.updateSession(sessionId, { repositoryId: repository.id, repositoryName: repository.name });
  const methods = ['get', METHOD_RESTORE];
  return {
    done: (bytes, items) =>
      store.endSession(sessionId, { endedAt: opts.now(), result: 'ok', detail: `${actor} restored ${what} (${plural(items, 'item')}, ${bytes} bytes)`, bytesIn: 0, bytesOut: bytes, methods }),
    failed: (reason, bytes) => store.endSession(sessionId, { endedAt: opts.now(), result: 'error', detail: `${actor} failed to restore ${what}: ${reason}`, bytesIn: 0, bytesOut: bytes, methods }),
  };
}
