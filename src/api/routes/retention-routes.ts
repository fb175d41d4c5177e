// A repository's retention policy (src/retention): show it with its next and last run, set it
// (admins; only when borgkeep holds the repository's key), turn it off. `borgkeep serve` runs it.

import { z } from 'zod';

import { retentionInputSchema, type RetentionPolicy } from '../../retention/retention-policy.js';
import type { RetentionView } from '../../retention/retention-service.js';
import type { ApiContext } from '../api-server.js';
import { defineRoute } from '../route.js';
import { nameParams } from '../schemas.js';

const tag = 'repositories';
const count = z.number().int().nullable();

export const retentionSchema = z.object({
  repository: z.string(),
  keyHeld: z.boolean().describe("whether borgkeep holds the repository's key, which running a policy needs"),
  policy: z
    .object({
      keepLast: count,
      keepHourly: count,
      keepDaily: count,
      keepWeekly: count,
      keepMonthly: count,
      keepYearly: count,
      keepWithin: z.string().nullable(),
      prefix: z.string().nullable(),
      schedule: z.string().describe('cron pattern, server time'),
      updatedAt: z.string(),
      updatedBy: z.string(),
      lastRunAt: z.string().nullable(),
      lastResult: z.enum(['ok', 'warning', 'error']).nullable().describe('warning: pruned, but the compaction gate deferred the compaction (lastDetail says why)'),
      lastDetail: z.string().nullable(),
    })
    .nullable()
    .describe('null: no retention policy'),
  nextRunAt: z.string().nullable(),
});

const policyJson = (p: RetentionPolicy) => ({
  keepLast: p.keepLast,
  keepHourly: p.keepHourly,
  keepDaily: p.keepDaily,
  keepWeekly: p.keepWeekly,
  keepMonthly: p.keepMonthly,
  keepYearly: p.keepYearly,
  keepWithin: p.keepWithin,
  prefix: p.prefix,
  schedule: p.schedule,
  updatedAt: p.updatedAt.toISOString(),
  updatedBy: p.updatedBy,
  lastRunAt: p.lastRunAt?.toISOString() ?? null,
  lastResult: p.lastResult,
  lastDetail: p.lastDetail,
});

export const retentionJson = (v: RetentionView) => ({
  repository: v.repository,
  keyHeld: v.keyHeld,
  policy: v.policy ? policyJson(v.policy) : null,
  nextRunAt: v.nextRunAt?.toISOString() ?? null,
});

export function retentionRoutes(ctx: ApiContext) {
  return [
    defineRoute({
      method: 'GET',
      url: '/repositories/:name/retention',
      tag,
      summary: "a repository's retention policy, its next run and the result of its last",
      access: 'viewer',
      params: nameParams,
      response: z.object({ retention: retentionSchema }),
      async handler({ params }) {
        return { retention: retentionJson(await ctx.retention.show(params.name)) };
      },
    }),
    defineRoute({
      method: 'PUT',
      url: '/repositories/:name/retention',
      tag,
      summary: "set a repository's whole retention policy (borg prune's keep rules, a name prefix, a cron schedule); refused while borgkeep does not hold the repository's key",
      access: 'admin',
      params: nameParams,
      body: retentionInputSchema,
      response: z.object({ retention: retentionSchema }),
      async handler({ params, body, principal }) {
        return { retention: retentionJson(await ctx.retention.set(params.name, body, `user '${principal!.user.name}'`)) };
      },
    }),
    defineRoute({
      method: 'DELETE',
      url: '/repositories/:name/retention',
      tag,
      summary: 'turn retention off for a repository',
      access: 'admin',
      params: nameParams,
      response: z.object({ repository: z.string(), removed: z.boolean() }),
      async handler({ params }) {
        return { repository: params.name, removed: await ctx.retention.remove(params.name) };
      },
    }),
  ];
}
