// When the server first saw each archive of a repository (migration 0009): the audit records every
// archive entry it sees appear, with the server's time of the transaction that listed it, and this
// store keeps the earliest sighting per (repository, archive id, name). It never moves a sighting
// later: a re-read history, a rollback or a compaction cannot make an archive look newer.

import type { StoreDeps } from './store-deps.js';

export interface ArchiveSightingRecord {
  readonly archiveId: string;
  readonly name: string;
  /** The client's time, as the manifest entry has it. */
  readonly clientTime: string;
  /** The server's time of the transaction that first listed it. */
  readonly firstSeenAt: Date;
  readonly transactionId: number;
  /** Seen first in the first manifest after a compaction: it appeared then or earlier. */
  readonly baseline: boolean;
}

export interface ArchiveSightingStore {
  /** Records sightings; a (archive id, name) already recorded keeps the earlier of the two. */
  recordArchiveSightings(repositoryId: number, sightings: readonly ArchiveSightingRecord[]): Promise<void>;
  /** Every recorded sighting of a repository. */
  listArchiveSightings(repositoryId: number): Promise<ArchiveSightingRecord[]>;
}

/** Rows per insert statement (SQLite's default limit is 32,766 bound values; 7 per row). */
const CHUNK = 500;

export function createArchiveSightingStore({ db }: StoreDeps): ArchiveSightingStore {
  return {
    async recordArchiveSightings(repositoryId, sightings) {
      if (sightings.length === 0) return;
      await db.transaction().execute(async (tx) => {
        for (let i = 0; i < sightings.length; i += CHUNK) {
          await tx
            .insertInto('archive_sightings')
            .values(
              sightings.slice(i, i + CHUNK).map((s) => ({
                repository_id: repositoryId,
                archive_id: s.archiveId,
                name: s.name,
                client_time: s.clientTime,
                first_seen_at: s.firstSeenAt.toISOString(),
                transaction_id: s.transactionId,
                baseline: s.baseline ? 1 : 0,
              })),
            )
            .onConflict((oc) =>
              oc
                .columns(['repository_id', 'archive_id', 'name'])
                .doUpdateSet((eb) => ({
                  client_time: eb.ref('excluded.client_time'),
                  first_seen_at: eb.ref('excluded.first_seen_at'),
                  transaction_id: eb.ref('excluded.transaction_id'),
                  baseline: eb.ref('excluded.baseline'),
                }))
                .where((eb) =>
                  eb.or([
                    eb('excluded.first_seen_at', '<', eb.ref('archive_sightings.first_seen_at')),
                    // The same moment, once known exactly rather than as "then or earlier".
                    eb.and([eb('excluded.first_seen_at', '=', eb.ref('archive_sightings.first_seen_at')), eb('excluded.baseline', '<', eb.ref('archive_sightings.baseline'))]),
                  ]),
                ),
            )
            .execute();
        }
      });
    },
    async listArchiveSightings(repositoryId) {
      const rows = await db.selectFrom('archive_sightings').selectAll().where('repository_id', '=', repositoryId).orderBy('first_seen_at').execute();
      return rows.map((r) => ({
        archiveId: r.archive_id,
        name: r.name,
        clientTime: r.client_time,
        firstSeenAt: new Date(r.first_seen_at),
        transactionId: Number(r.transaction_id),
        baseline: r.baseline === 1,
      }));
    },
  };
}
