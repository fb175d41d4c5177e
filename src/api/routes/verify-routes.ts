// Verification of a repository's objects (src/verify, issue 18 point 4): run one now (the
// console's "Verify" action: what was written since the last verification, or everything), and
// show the newest one with its findings. The key comes from the vault and never reaches an
// answer; findings name objects and archives, never a server path.

import { z } from 'zod';

import { BorgkeepError } from '../../errors.js';
import type { VerificationRecord } from '../../store/verification-store.js';
import type { VerifyReport, VerifyService } from '../../verify/verify-service.js';
import type { ApiContext } from '../api-server.js';
import { actorOf } from '../presenters.js';
import { defineRoute } from '../route.js';
import { nameParams, time } from '../schemas.js';

const tag = 'repositories';
const findingSchema = z.object({
  kind: z.enum(['crc', 'mac', 'id-mismatch', 'unreadable', 'missing']),
  id: z.string().nullable().describe("the object's id (hex); null for damage that is not one object's"),
  segment: z.number(),
  offset: z.number().nullable(),
  sentence: z.string(),
  archives: z.array(z.string()).nullable().describe('archives that depend on the object; null when the archives could not be read'),
});
const reportSchema = z
  .object({
    repository: z.string(),
    verdict: z.enum(['intact', 'damaged']),
    scope: z.enum(['changed', 'all']).describe("changed: the objects written after fromTxn; all: every object"),
    mode: z.string(),
    fromTxn: z.number().nullable(),
    throughTxn: z.number(),
    restartedBecause: z.string().nullable(),
    segmentsRead: z.number(),
    objectsRead: z.number(),
    bytesRead: z.number(),
    archivesChecked: z.array(z.string()).describe('archives whose every referenced chunk was looked up (those added since the last verification)'),
    findings: z.array(findingSchema),
    affectedArchives: z.array(z.string()),
    archivesUnreadable: z.string().nullable(),
  })
  .describe('as `borgkeep verify --json` prints it')
  .meta({ id: 'VerifyReport' });
const verificationSchema = z.object({
  at: time,
  actor: z.string(),
  scope: z.enum(['changed', 'all']),
  verdict: z.enum(['intact', 'damaged', 'error']),
  fromTxn: z.number().nullable(),
  throughTxn: z.number().nullable(),
  objectsRead: z.number(),
  bytesRead: z.number(),
  detail: z.string(),
  findings: z.array(z.looseObject({ kind: z.string(), sentence: z.string() })),
});

const present = (v: VerificationRecord) => ({
  at: v.at,
  actor: v.actor,
  scope: v.scope,
  verdict: v.verdict,
  fromTxn: v.fromTxn,
  throughTxn: v.throughTxn,
  objectsRead: v.objectsRead,
  bytesRead: v.bytesRead,
  detail: v.detail,
  findings: v.findings as Array<{ kind: string; sentence: string }>,
});

export function verifyRoutes(ctx: ApiContext) {
  // Loaded on first use: most requests never verify.
  let service: Promise<VerifyService> | null = null;
  const verifier = () =>
    (service ??= Promise.all([import('../../verify/verify-service.js'), import('../../verify/archive-references.js')]).then(([{ createVerifyService }, { browseArchiveReferences }]) =>
      createVerifyService({ store: ctx.store, repositoryKey: ctx.repositoryKey, archiveReferences: browseArchiveReferences }),
    ));
  return [
    defineRoute({
      method: 'POST',
      url: '/repositories/:name/verify',
      tag,
      summary: "verify the objects written since the last verification (all: every object): CRC, MAC and id, and that no chunk an archive references is missing",
      access: 'operator',
      params: nameParams,
      body: z.object({ all: z.boolean().optional().describe('every object, not only those written since the last verification') }).strict(),
      response: z.object({ report: reportSchema }),
      async handler({ params, body, principal }) {
        const verify = await verifier();
        let report: VerifyReport;
        try {
          report = await verify.verify(params.name, { all: body.all === true, actor: actorOf(principal!) });
        } catch (error) {
          // Could not verify (no key held, the vault sealed, the repository unreadable): the
          // repository's state, not the request, is what is wrong.
          if (error instanceof Error && error.name === 'VerifyError') {
            throw new BorgkeepError('BK_ERR_CONFLICT', `could not verify '${params.name}': ${error.message}`);
          }
          throw error;
        }
        return { report };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/repositories/:name/verification',
      tag,
      summary: "the repository's newest verification and what it found (null: never verified)",
      access: 'viewer',
      params: nameParams,
      response: z.object({ verification: verificationSchema.nullable() }),
      async handler({ params }) {
        const repository = await ctx.store.getRepository(params.name);
        const last = await ctx.store.lastVerification(repository.id);
        return { verification: last ? present(last) : null };
      },
    }),
  ];
}
