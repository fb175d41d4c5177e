// How the CLI prints: aligned tables and short values for people, JSON for scripts (camelCase
// fields, ISO-8601 dates, stable once released). Writes only to the streams it is given.

import { formatBytes } from '../shared/size.js';

/** The console's size style (src/shared/size.ts): 1.6 TB, 85 GB, 999 B. */
export const formatSize = formatBytes;

/** UTC to the second: 2025-01-02T03:04:05Z. */
export function formatTime(date: Date | null | undefined, none = '-'): string {
  return date ? date.toISOString().replace(/\.[0-9]{3}Z$/, 'Z') : none;
}

export { plural } from '../shared/plural.js';

/** Columns separated by two spaces; the last column is not padded. */
export function formatTable(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const widths = header.map((_, column) => Math.max(...all.map((row) => (row[column] ?? '').length)));
  return all
    .map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column]!))).join('  '))
    .join('\n');
}

export interface Output {
  line(text?: string): void;
  json(value: unknown): void;
}

export function createOutput(stream: NodeJS.WritableStream = process.stdout): Output {
  let guarded = false;
  const write = (text: string) => {
    // `borgkeep ledger | head` closes the pipe early: stop quietly, not with a stack trace.
    // Installed on first use only: borg-serve owns stdout and must not get this behaviour.
    if (!guarded) {
      guarded = true;
      stream.on('error', (error: NodeJS.ErrnoException) => {
        if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
        throw error;
      });
    }
    stream.write(text);
  };
  return {
    line: (text = '') => write(`${text}\n`),
    json: (value) => write(`${JSON.stringify(value, null, 2)}\n`),
  };
}
