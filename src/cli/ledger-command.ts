// `borgkeep ledger`: what happened, newest session first, with each session's transactions and
// denials. Sessions whose process died while open are closed as aborted before listing, so the
// ledger never shows a dead session as running.

import type { Command } from 'commander';
import type { LedgerEntry } from '../store/ledger-store.js';
import type { Denial, Transaction } from '../store/types.js';
import { isLocalProcessAlive, withStore, type CliContext } from './cli-context.js';
import { parseCount } from './input.js';
import { formatSize, formatTime } from './output.js';

export const LEDGER_DEFAULT_LIMIT = 50;
export const LEDGER_MAX_LIMIT = 10_000;

export function registerLedgerCommand(program: Command, ctx: CliContext): void {
  program
    .command('ledger')
    .description('list sessions newest first, with their transactions and denials')
    .option('--repo <repo>', 'only sessions on this repository')
    .option('--limit <n>', `at most N sessions (default ${LEDGER_DEFAULT_LIMIT})`)
    .option('--json', 'print JSON')
    .action(async (opts: { repo?: string; limit?: string; json?: boolean }) => {
      const limit = opts.limit === undefined ? LEDGER_DEFAULT_LIMIT : parseCount(opts.limit, '--limit', LEDGER_MAX_LIMIT);
      const { sessions, events } = await withStore(ctx, async (store) => {
        const repositoryId = opts.repo === undefined ? undefined : (await store.getRepository(opts.repo)).id;
        await store.closeStaleSessions(isLocalProcessAlive);
        return {
          sessions: await store.listSessions({ limit, ...(repositoryId !== undefined && { repositoryId }) }),
          // With --repo: the admins' audits, approvals and rollbacks too, newest first.
          events: repositoryId === undefined ? undefined : await store.listEvents(repositoryId, limit),
        };
      });
      if (opts.json) {
        ctx.out.json(events === undefined ? { sessions } : { sessions, events });
        return;
      }
      if (events && events.length > 0) {
        ctx.out.line(events.map((e) => `${formatTime(e.at)}  ${e.kind.toUpperCase()} by ${e.actor}${e.verdict ? ` (${e.verdict})` : ''}: ${e.detail}`).join('\n') + '\n');
      }
      if (sessions.length === 0) {
        ctx.out.line(opts.repo === undefined ? 'the ledger is empty: no sessions yet' : `no sessions on repository '${opts.repo}' yet`);
        return;
      }
      ctx.out.line(sessions.map(formatSession).join('\n\n'));
    });
}

function formatSession(s: LedgerEntry): string {
  const key = s.kind === 'retention' ? "the server's retention run" : s.keyName ? `key ${s.keyName}${s.keyId === null ? '' : ` (id ${s.keyId})`}` : s.keyId === null ? 'unknown key' : `key id ${s.keyId}`;
  const where = [
    key,
    s.repositoryName ? `repository ${s.repositoryName}` : 'no repository',
    s.role ? `role ${s.role}` : null,
    `from ${s.clientAddress ?? 'unknown address'}`,
    s.clientVersion ? `borg ${s.clientVersion}` : null,
  ].filter((part) => part !== null);
  const lines = [
    `#${s.id}  ${formatTime(s.startedAt)} to ${s.endedAt ? formatTime(s.endedAt) : '(still open)'}  ${s.result.toUpperCase()}`,
    `    ${where.join(', ')}`,
    `    received ${formatSize(s.bytesIn)}, sent ${formatSize(s.bytesOut)}${s.pid === null ? '' : `, pid ${s.pid} on ${s.host ?? '?'}`}`,
  ];
  if (s.detail) lines.push(`    ${s.detail}`);
  for (const t of s.transactions) lines.push(`    ${formatTransaction(t)}`);
  for (const d of s.denials) lines.push(`    ${formatDenial(d)}`);
  return lines.join('\n');
}

function formatTransaction(t: Transaction): string {
  const id = t.borgTransactionId === null ? 'transaction' : `transaction ${t.borgTransactionId}`;
  const state = t.state === 'committed' ? 'committed' : 'rolled back';
  const manifest = t.manifestWritten ? ', manifest written' : '';
  return `${id} ${state} at ${formatTime(t.endedAt)}: ${t.objectsPut} put, ${t.objectsOverwritten} overwritten, ${t.objectsDeleted} deleted${manifest}`;
}

function formatDenial(d: Denial): string {
  return `DENIED ${d.method} at ${formatTime(d.at)} (${d.reason}): ${d.message}`;
}
