// `borgkeep ledger`: what happened, newest session first, with each session's kind of run,
// transactions and denials, filtered like the console's history (repository, key, result, kind of
// run, since/until; the same sentences for bad values: store/history-filter.ts). Sessions whose process died while open are closed as aborted before listing, so the
// ledger never shows a dead session as running.

import type { Command } from 'commander';
import type { LedgerEntry } from '../store/ledger-store.js';
import type { Denial, Transaction } from '../store/types.js';
import { isLocalProcessAlive, withStore, type CliContext } from './cli-context.js';
import { parseCount } from './input.js';
import { parseHistoryFilter } from '../store/history-filter.js';
import { RUN_KIND_WORDS, RUN_KINDS } from '../store/run-kind.js';
import { SESSION_RESULTS } from '../store/types.js';
import { formatSize, formatTime } from './output.js';

export const LEDGER_DEFAULT_LIMIT = 50;
export const LEDGER_MAX_LIMIT = 10_000;

export function registerLedgerCommand(program: Command, ctx: CliContext): void {
  program
    .command('ledger')
    .description('list sessions newest first, with their transactions and denials')
    .option('--repo <repo>', 'only sessions on this repository')
    .option('--key <key>', 'only sessions of this key (name or id)')
    .option('--result <result>', `only sessions that ended so: ${SESSION_RESULTS.join(', ')}`)
    .option('--kind <kind>', `only this kind of run: ${RUN_KINDS.join(', ')}`)
    .option('--since <time>', 'only sessions started at or after this time: a date, a date-time with a zone, or a time ago (7d, 12h, 90m)')
    .option('--until <time>', 'only sessions started before this time (the same forms)')
    .option('--limit <n>', `at most N sessions (default ${LEDGER_DEFAULT_LIMIT})`)
    .option('--json', 'print JSON')
    .action(async (opts: { repo?: string; key?: string; result?: string; kind?: string; since?: string; until?: string; limit?: string; json?: boolean }) => {
      const limit = opts.limit === undefined ? LEDGER_DEFAULT_LIMIT : parseCount(opts.limit, '--limit', LEDGER_MAX_LIMIT);
      const filter = parseHistoryFilter({ result: opts.result, kind: opts.kind, since: opts.since, until: opts.until }, ctx.now());
      const filtered = opts.key !== undefined || Object.keys(filter).length > 0;
      const { sessions, events } = await withStore(ctx, async (store) => {
        const repositoryId = opts.repo === undefined ? undefined : (await store.getRepository(opts.repo)).id;
        const keyId = opts.key === undefined ? undefined : (await store.getKey(opts.key)).id;
        await store.closeStaleSessions(isLocalProcessAlive);
        const page = await store.querySessions({
          limit,
          ...(repositoryId !== undefined && { repositoryId }),
          ...(keyId !== undefined && { keyId }),
          ...(filter.result && { result: filter.result }),
          ...(filter.runKind && { runKind: filter.runKind }),
          ...(filter.since && { from: filter.since }),
          ...(filter.until && { to: filter.until }),
        });
        return {
          sessions: page.items,
          // With --repo alone: the admins' audits, approvals and rollbacks too, newest first.
          events: repositoryId === undefined || filtered ? undefined : await store.listEvents(repositoryId, limit),
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
        ctx.out.line(filtered ? 'no sessions match these filters' : opts.repo === undefined ? 'the ledger is empty: no sessions yet' : `no sessions on repository '${opts.repo}' yet`);
        return;
      }
      ctx.out.line(sessions.map(formatSession).join('\n\n'));
    });
}

function formatSession(s: LedgerEntry): string {
  const key = s.kind === 'retention' ? "the server's retention run" : s.kind === 'pull' ? "the server's pull backup" : s.keyName ? `key ${s.keyName}${s.keyId === null ? '' : ` (id ${s.keyId})`}` : s.keyId === null ? 'unknown key' : `key id ${s.keyId}`;
  const where = [
    key,
    s.repositoryName ? `repository ${s.repositoryName}` : 'no repository',
    s.role ? `role ${s.role}` : null,
    `from ${s.clientAddress ?? 'unknown address'}`,
    s.clientVersion ? `borg ${s.clientVersion}` : null,
  ].filter((part) => part !== null);
  const lines = [
    `#${s.id}  ${formatTime(s.startedAt)} to ${s.endedAt ? formatTime(s.endedAt) : '(still open)'}  ${s.result.toUpperCase()}  ${RUN_KIND_WORDS[s.runKind]}`,
    `    ${where.join(', ')}`,
    `    received ${formatSize(s.bytesIn)}, sent ${formatSize(s.bytesOut)}${s.pid === null ? '' : `, pid ${s.pid} on ${s.host ?? '?'}`}`,
  ];
  if (s.detail) lines.push(`    ${s.detail}`);
  for (const a of s.archives) lines.push(`    added archive ${a.name.replace(/[\u0000-\u001f\u007f]/g, '?')} (transaction ${a.transactionId})`);
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
