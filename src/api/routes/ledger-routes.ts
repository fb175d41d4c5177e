// The ledger as a searchable history: sessions (with their transactions, refusals, kind of run and
// the archives they added), transactions and refusals, newest first, filtered by repository, key, result, kind
// of run and time range (since/until), a page at a time with an opaque keyset cursor, one session
// by its number (the audit's attributions name the same numbers), and the same rows as a CSV or
// JSON download (streamed: see features/history-export.ts).

import { z } from 'zod';
import { invalidInput, notFound } from '../../errors.js';
import { parseHistoryFilter } from '../../store/history-filter.js';
import { RUN_KINDS } from '../../store/run-kind.js';
import { SESSION_RESULTS } from '../../store/types.js';
import type { ApiContext } from '../api-server.js';
import { DENIAL_CSV_HEADER, denialCsvCells, EXPORT_PAGE, exportChunks, SESSION_CSV_HEADER, sessionCsvCells, sessionJson, TRANSACTION_CSV_HEADER, transactionCsvCells, type ExportFormat } from '../features/history-export.js';
import { defineRoute } from '../route.js';
import { denialListItem, idParams, ledgerQuery, sessionSchema } from '../schemas.js';

const tag = 'ledger';
const next = z.string().nullable().describe('cursor of the next page; null on the last page');
// Plain text, checked by store/history-filter.ts: the same sentences as the CLI's `ledger`.
const historyFilters = {
  since: z.string().max(40).optional().describe('from this time on (inclusive): an ISO-8601 date or date-time with a zone, or a time ago such as 7d, 12h, 90m'),
  until: z.string().max(40).optional().describe('before this time; the same forms as since'),
  kind: z.string().max(20).optional().describe(`only this kind of run: ${RUN_KINDS.join(', ')} (refusals: their session's kind)`),
};
const sessionQuery = ledgerQuery.extend({ ...historyFilters, result: z.string().max(20).optional().describe(`only sessions that ended so: ${SESSION_RESULTS.join(', ')} (open: running)`) });
const denialQuery = ledgerQuery.extend(historyFilters);
const transactionQuery = ledgerQuery.extend({ ...historyFilters, state: z.enum(['committed', 'rolled_back']).optional().describe('only transactions that ended so') });
const transactionItem = z
  .object({
    id: z.number(), sessionId: z.number(), borgTransactionId: z.number().nullable(), objectsPut: z.number(), objectsOverwritten: z.number(), objectsDeleted: z.number(),
    manifestWritten: z.boolean(), state: z.enum(['committed', 'rolled_back']), startedAt: z.iso.datetime({ offset: true }), endedAt: z.iso.datetime({ offset: true }),
    keyName: z.string().nullable(), repositoryName: z.string().nullable(), runKind: z.enum(RUN_KINDS).nullable(),
  })
  .meta({ id: 'LedgerTransaction' });
const exportFormat = { format: z.string().max(10).default('csv').describe('csv (default) or json') };

type Query = z.output<typeof ledgerQuery> & { since?: string | undefined; until?: string | undefined; kind?: string | undefined; result?: string | undefined };

export function ledgerRoutes(ctx: ApiContext) {
  const resolve = async (query: Query) => {
    const f = parseHistoryFilter({ result: query.result, kind: query.kind, since: query.since, until: query.until }, ctx.now());
    // from/to: this API's first names for since/until, kept for existing clients.
    const from = f.since ?? query.from;
    const to = f.until ?? query.to;
    if (from && to && from.getTime() >= to.getTime()) throw invalidInput('the start of the time range (since) must be before its end (until)');
    return {
      ...(query.repository !== undefined && { repositoryId: (await ctx.store.getRepository(query.repository)).id }),
      ...(query.key !== undefined && { keyId: (await ctx.store.getKey(query.key)).id }),
      ...(from && { from }),
      ...(to && { to }),
      ...(f.result && { result: f.result }),
      ...(f.runKind && { runKind: f.runKind }),
      ...(query.cursor !== undefined && { cursor: query.cursor }),
      limit: query.limit,
    };
  };
  const formatOf = (text: string): ExportFormat => {
    if (text !== 'csv' && text !== 'json') throw invalidInput(`'${text}' is not a format the export writes; use csv or json`);
    return text;
  };
  /** Streams the chunks; a failure after the first byte can only cut the download short. */
  const stream = async (reply: import('fastify').FastifyReply, format: ExportFormat, what: string, chunks: AsyncGenerator<string>) => {
    // The first chunk before the status: a bad cursor or filter still gets the API's error shape.
    const first = await chunks.next();
    reply.hijack();
    const res = reply.raw;
    const day = ctx.now().toISOString().slice(0, 10);
    res.writeHead(200, {
      'content-type': format === 'csv' ? 'text/csv; charset=utf-8' : 'application/json; charset=utf-8',
      'content-disposition': `attachment; filename="borgkeep-${what}-${day}.${format}"`,
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
    });
    try {
      for (let chunk = first; !chunk.done; chunk = await chunks.next()) {
        if (res.destroyed) return;
        if (!res.write(chunk.value)) await new Promise((resolve) => res.once('drain', resolve).once('close', resolve));
      }
      res.end();
    } catch (e) {
      reply.log.error({ err: e }, `the ${what} export failed part way`);
      res.destroy(e as Error);
    }
  };

  return [
    defineRoute({
      method: 'GET',
      url: '/sessions',
      tag,
      summary: 'sessions newest first, each with its kind of run, transactions, refusals and the archives it added',
      access: 'viewer',
      query: sessionQuery,
      response: z.object({ sessions: z.array(sessionSchema), next }),
      async handler({ query }) {
        const page = await ctx.store.querySessions(await resolve(query));
        return { sessions: page.items.map(sessionJson), next: page.next };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/sessions/export',
      tag,
      summary: 'every session that matches the filters, as a CSV (default) or JSON download, streamed newest first',
      access: 'viewer',
      contentType: 'text/csv',
      query: sessionQuery.omit({ limit: true, cursor: true }).extend(exportFormat),
      async handler({ query, reply }) {
        const format = formatOf(query.format);
        const filter = await resolve({ ...query, limit: EXPORT_PAGE });
        await stream(reply, format, 'sessions', exportChunks(format, (cursor) => ctx.store.querySessions({ ...filter, ...(cursor && { cursor }) }), { header: SESSION_CSV_HEADER, cells: sessionCsvCells }, sessionJson));
        return reply;
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/sessions/:id',
      tag,
      summary: 'one session by its number (as the audit names it), with its storage details',
      access: 'viewer',
      params: idParams,
      response: z.object({ session: sessionSchema }),
      async handler({ params }) {
        const entry = await ctx.store.getLedgerEntry(params.id);
        if (!entry) throw notFound(`there is no session ${params.id}`);
        return { session: sessionJson(entry) };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/denials',
      tag,
      summary: 'refusals (denials) newest first',
      access: 'viewer',
      query: denialQuery,
      response: z.object({ denials: z.array(denialListItem), next }),
      async handler({ query }) {
        const page = await ctx.store.queryDenials(await resolve(query));
        return { denials: page.items, next: page.next };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/denials/export',
      tag,
      summary: 'every refusal that matches the filters, as a CSV (default) or JSON download, streamed newest first',
      access: 'viewer',
      contentType: 'text/csv',
      query: denialQuery.omit({ limit: true, cursor: true }).extend(exportFormat),
      async handler({ query, reply }) {
        const format = formatOf(query.format);
        const filter = await resolve({ ...query, limit: EXPORT_PAGE });
        await stream(reply, format, 'refusals', exportChunks(format, (cursor) => ctx.store.queryDenials({ ...filter, ...(cursor && { cursor }) }), { header: DENIAL_CSV_HEADER, cells: denialCsvCells }, (d) => d));
        return reply;
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/transactions',
      tag,
      summary: "borg transactions newest first (by their end), filtered by their session's repository, key and kind of run, and time",
      access: 'viewer',
      query: transactionQuery,
      response: z.object({ transactions: z.array(transactionItem), next }),
      async handler({ query }) {
        const page = await ctx.store.queryTransactions({ ...(await resolve(query)), ...(query.state && { state: query.state }) });
        return { transactions: page.items, next: page.next };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/transactions/export',
      tag,
      summary: 'every transaction that matches the filters, as a CSV (default) or JSON download, streamed newest first',
      access: 'viewer',
      contentType: 'text/csv',
      query: transactionQuery.omit({ limit: true, cursor: true }).extend(exportFormat),
      async handler({ query, reply }) {
        const format = formatOf(query.format);
        const filter = { ...(await resolve({ ...query, limit: EXPORT_PAGE })), ...(query.state && { state: query.state }) };
        await stream(reply, format, 'transactions', exportChunks(format, (cursor) => ctx.store.queryTransactions({ ...filter, ...(cursor && { cursor }) }), { header: TRANSACTION_CSV_HEADER, cells: transactionCsvCells }, (t) => t));
        return reply;
      },
    }),
  ];
}
