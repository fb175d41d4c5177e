// One archive as borgkeep shows it (CLI `archives`, the API, the console): the client's times,
// host and user, its command line, borg's own totals, and whether its TAM verified. The command
// line is the client's; should it hold the repository's folder on the server (a borg run on the
// server itself), that folder is shown as ./NAME: a server path is never shown.

import type { ArchiveInfo } from './archive-reader.js';

export interface ArchiveSummary {
  readonly name: string;
  readonly id: string;
  /** The client's start and end times, ISO 8601 UTC. */
  readonly time: string | null;
  readonly timeEnd: string | null;
  readonly hostname: string | null;
  readonly username: string | null;
  readonly commandLine: string[];
  readonly comment: string | null;
  /** borg's totals from the archive metadata: original and compressed bytes, files. */
  readonly size: number | null;
  readonly compressedSize: number | null;
  readonly files: number | null;
  /** 'ok': its TAM verified; 'missing': written without one; 'unchecked': an unencrypted repository. */
  readonly authentication: ArchiveInfo['tam'];
}

/** borg's archive time (UTC, no zone) with its zone. */
export function clientTime(time: string | null): string | null {
  if (!time) return null;
  return /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?$/.test(time) ? `${time}Z` : time;
}

export function summariseArchive(info: ArchiveInfo, repository: { readonly name: string }, serverPath: string): ArchiveSummary {
  return {
    name: info.name,
    id: info.id,
    time: clientTime(info.time),
    timeEnd: clientTime(info.timeEnd),
    hostname: info.hostname,
    username: info.username,
    commandLine: info.cmdline.map((a) => a.split(serverPath).join(`./${repository.name}`)),
    comment: info.comment,
    size: info.stats?.size ?? null,
    compressedSize: info.stats?.csize ?? null,
    files: info.stats?.nfiles ?? null,
    authentication: info.tam,
  };
}
