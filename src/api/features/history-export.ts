// The history as a download (CSV or JSON): every row that matches the filters, streamed a page at
// a time by the same keyset as the list (newest first by time, then id), so memory stays flat
// whatever the ledger's size and the rows are the ledger as of the export's first page (newer
// rows sort before it and are never reached). CSV cells are escaped (RFC 4180) and a text cell
// that a spreadsheet would run as a formula (=, +, -, @, tab, CR) is prefixed with ' (OWASP's
// advice against CSV injection): key and repository names are chosen by whoever registered them.
// It must never hold the whole export in memory nor write a secret (pid and host stay out too).

import type { LedgerEntry, LedgerPage } from '../../store/ledger-store.js';
import { RUN_KIND_WORDS } from '../../store/run-kind.js';
import type { DenialWithNames, TransactionWithNames } from '../../store/ledger-store.js';

export type ExportFormat = 'csv' | 'json';

/** Rows per store query while exporting. */
export const EXPORT_PAGE = 500;

/** One CSV cell: quoted when needed, and a formula-leading text made inert. */
export function csvCell(value: string | number | boolean | null | undefined): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  const text = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(text) || text !== text.trim() ? `"${text.replaceAll('"', '""')}"` : text;
}

export function csvLine(cells: ReadonlyArray<string | number | boolean | null | undefined>): string {
  return `${cells.map(csvCell).join(',')}\r\n`;
}

export const SESSION_CSV_HEADER = [
  'session', 'started', 'ended', 'kind', 'result', 'repository', 'key', 'role', 'client address', 'borg version',
  'bytes received', 'bytes sent', 'objects put', 'objects overwritten', 'objects deleted', 'manifest written',
  'transactions', 'archives added', 'refusals', 'detail',
];

export function sessionCsvCells(s: LedgerEntry): Array<string | number | null> {
  const sum = (pick: (t: LedgerEntry['transactions'][number]) => number) => s.transactions.reduce((n, t) => n + pick(t), 0);
  return [
    s.id,
    s.startedAt.toISOString(),
    s.endedAt?.toISOString() ?? null,
    RUN_KIND_WORDS[s.runKind],
    s.result,
    s.repositoryName,
    s.kind === 'retention' ? "the server's retention run" : s.kind === 'pull' ? "the server's pull backup" : s.keyName,
    s.role,
    s.clientAddress,
    s.clientVersion,
    s.bytesIn,
    s.bytesOut,
    sum((t) => t.objectsPut),
    sum((t) => t.objectsOverwritten),
    sum((t) => t.objectsDeleted),
    s.transactions.some((t) => t.manifestWritten) ? 'yes' : 'no',
    s.transactions.map((t) => `${t.borgTransactionId ?? 'none'} ${t.state === 'committed' ? 'committed' : 'rolled back'}`).join('; '),
    s.archives.map((a) => a.name).join('; '),
    s.denials.map((d) => `${d.method}: ${d.message}`).join('; '),
    s.detail,
  ];
}

export const DENIAL_CSV_HEADER = ['refusal', 'at', 'session', 'repository', 'key', 'method', 'reason', 'message'];

export function denialCsvCells(d: DenialWithNames): Array<string | number | null> {
  return [d.id, d.at.toISOString(), d.sessionId, d.repositoryName, d.keyName, d.method, d.reason, d.message];
}

/** A session as the API and the JSON export show it: where borgkeep runs (pid, host) is not for clients. */
export function sessionJson({ pid: _pid, host: _host, ...s }: LedgerEntry): Omit<LedgerEntry, 'pid' | 'host'> {
  return s;
}

/**
 * The export's text, chunk by chunk: the header (CSV) or '[' (JSON), then each page's rows. The
 * caller writes each chunk and waits for the socket to drain before asking for the next.
 */
export async function* exportChunks<T>(
  format: ExportFormat,
  page: (cursor: string | undefined) => Promise<LedgerPage<T>>,
  csv: { header: string[]; cells: (row: T) => Array<string | number | null> },
  json: (row: T) => unknown,
): AsyncGenerator<string> {
  yield format === 'csv' ? csvLine(csv.header) : '[';
  let cursor: string | undefined;
  let first = true;
  for (;;) {
    const { items, next } = await page(cursor);
    if (items.length > 0) {
      if (format === 'csv') yield items.map((row) => csvLine(csv.cells(row))).join('');
      else {
        yield items.map((row, i) => `${first && i === 0 ? '\n' : ',\n'}${JSON.stringify(json(row))}`).join('');
        first = false;
      }
    }
    if (next === null) break;
    cursor = next;
  }
  if (format === 'json') yield first ? ']\n' : '\n]\n';
}

export const TRANSACTION_CSV_HEADER = ['transaction', 'borg transaction', 'state', 'ended', 'session', 'kind', 'repository', 'key', 'objects put', 'objects overwritten', 'objects deleted', 'manifest written'];

export function transactionCsvCells(t: TransactionWithNames): Array<string | number | null> {
  return [t.id, t.borgTransactionId, t.state === 'committed' ? 'committed' : 'rolled back', t.endedAt.toISOString(), t.sessionId, t.runKind && RUN_KIND_WORDS[t.runKind], t.repositoryName, t.keyName, t.objectsPut, t.objectsOverwritten, t.objectsDeleted, t.manifestWritten ? 'yes' : 'no'];
}
