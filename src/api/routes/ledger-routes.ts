// The ledger: sessions (with their transactions and denials) and denials, newest first, filtered
// by repository, key, time and (sessions) result, a page at a time with an opaque cursor.

import { z } from 'zod';
import { invalidInput } from '../../errors.js';
import { SESSION_RESULTS } from '../../store/types.js';
import type { ApiContext } from '../api-server.js';
import { defineRoute } from '../route.js';
import { denialListItem, ledgerQuery, sessionSchema } from '../schemas.js';

const tag = 'ledger';
const next = z.string().nullable().describe('cursor of the next page; null on the last page');

export function ledgerRoutes(ctx: ApiContext) {
  const resolve = async (query: z.output<typeof ledgerQuery>) => {
    if (query.from && query.to && query.from.getTime() >= query.to.getTime()) throw invalidInput("'from' must be before 'to'");
    return {
      ...(query.repository !== undefined && { repositoryId: (await ctx.store.getRepository(query.repository)).id }),
      ...(query.key !== undefined && { keyId: (await ctx.store.getKey(query.key)).id }),
      ...(query.from && { from: query.from }),
      ...(query.to && { to: query.to }),
      ...(query.cursor !== undefined && { cursor: query.cursor }),
      limit: query.limit,
    };
  };
  return [
    defineRoute({
      method: 'GET',
      url: '/sessions',
      tag,
      summary: 'sessions newest first, each with its transactions and denials',
      access: 'viewer',
      query: ledgerQuery.extend({ result: z.enum(SESSION_RESULTS).optional().describe('only sessions that ended so (open: running)') }),
      response: z.object({ sessions: z.array(sessionSchema), next }),
      async handler({ query }) {
        const page = await ctx.store.querySessions({ ...(await resolve(query)), ...(query.result && { result: query.result }) });
        // pid and host say where borgkeep runs: not for clients.
        return { sessions: page.items.map(({ pid: _pid, host: _host, ...s }) => s), next: page.next };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/denials',
      tag,
      summary: 'denials newest first',
      access: 'viewer',
      query: ledgerQuery,
      response: z.object({ denials: z.array(denialListItem), next }),
      async handler({ query }) {
        const page = await ctx.store.queryDenials(await resolve(query));
        return { denials: page.items, next: page.next };
      },
    }),
  ];
}
