// Audits: run one (the passphrase is used for this audit only, never stored or logged), show
// the last report, approve the history to open the compaction gate.

import { z } from 'zod';
import type { ApiContext } from '../api-server.js';
import { actorOf } from '../presenters.js';
import { defineRoute } from '../route.js';
import { gateSchema, nameParams, time } from '../schemas.js';

const tag = 'audits';
const eventSchema = z.object({ id: z.number(), kind: z.string(), throughTxn: z.number().nullable(), verdict: z.string().nullable(), actor: z.string(), detail: z.string(), at: time });
const reportSchema = z
  .object({
    verdict: z.enum(['clean', 'suspicious']),
    firstSuspiciousTransaction: z.number().nullable(),
    lastKnownGoodTransaction: z.number().nullable(),
    manifestsRead: z.boolean(),
    transactions: z.array(z.looseObject({ id: z.number(), verdict: z.string(), reasons: z.array(z.string()) })),
  })
  .loose()
  .describe("the audit's report, as `borgkeep audit --json` prints it (docs/audit.md)")
  .meta({ id: 'AuditReport' });

export function auditRoutes(ctx: ApiContext) {
  const present = (e: { id: number; kind: string; throughTxn: number | null; verdict: string | null; actor: string; detail: string; at: Date }) => ({
    id: e.id,
    kind: e.kind,
    throughTxn: e.throughTxn,
    verdict: e.verdict,
    actor: e.actor,
    detail: e.detail,
    at: e.at,
  });
  return [
    defineRoute({
      method: 'POST',
      url: '/repositories/:name/audit',
      tag,
      summary: "audit a repository's history now (the passphrase reads the manifests; without it, the structural checks only)",
      access: 'operator',
      params: nameParams,
      body: z
        .object({
          passphrase: z.string().max(4096).nullable().optional().describe('the repository passphrase; used for this audit only, never stored'),
          keyFile: z.string().max(65536).nullable().optional().describe('contents of the borg key file, for keyfile-encrypted repositories'),
        })
        .strict(),
      response: z.object({ event: eventSchema, report: reportSchema, gate: gateSchema }),
      async handler({ params, body, principal }) {
        const result = await ctx.audits.audit(params.name, { passphrase: body.passphrase ?? null, keyFile: body.keyFile ?? null, actor: actorOf(principal!) });
        return { event: present(result.event), report: result.report, gate: result.gate };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/repositories/:name/audit',
      tag,
      summary: "the repository's last audit and its report",
      access: 'viewer',
      params: nameParams,
      response: z.object({ event: eventSchema, report: reportSchema.nullable().describe('null for audits recorded before the API kept reports'), gate: gateSchema }),
      async handler({ params }) {
        const last = await ctx.audits.lastAudit(params.name);
        return { event: present(last.event), report: last.report as z.infer<typeof reportSchema> | null, gate: last.gate };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/repositories/:name/approve',
      tag,
      summary: 'approve the history as reviewed through a transaction (the one the last audit showed): opens the compaction gate for it; later writes are not covered',
      access: 'operator',
      params: nameParams,
      body: z
        .object({
          throughTxn: z
            .number()
            .int()
            .min(0)
            .max(Number.MAX_SAFE_INTEGER)
            .optional()
            .describe("the transaction to approve through, as shown to the person approving (the console sends the last audit's throughTxn); a committed transaction no newer than the newest on disk. Without it, the newest on disk"),
        })
        .strict()
        .optional(),
      response: z.object({ event: eventSchema, gate: gateSchema }),
      async handler({ params, body, principal }) {
        // The actor is the console user (or the token's owner, with the token named): never the client's say.
        const result = await ctx.audits.approve(params.name, actorOf(principal!), body?.throughTxn);
        return { event: present(result.event), gate: result.gate };
      },
    }),
  ];
}
