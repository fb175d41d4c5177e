// A repository's archive checks (src/checks, issue 18 point 5): the rules each new archive must
// pass and how many archives passed or failed them; admins set or clear the rules. The verdict of
// each archive is shown in the archive list (archive-routes.ts). Thin: the rules are checked by
// checks/check-rules.ts, with the CLI's sentences.

import { z } from 'zod';

import { NO_RULES, describeCheckRules, parseCheckRules, type CheckRules } from '../../checks/check-rules.js';
import type { ArchiveCheckRecord, StoredCheckRules } from '../../store/archive-check-store.js';
import type { Repository } from '../../store/types.js';
import type { ApiContext } from '../api-server.js';
import { actorOf } from '../presenters.js';
import { defineRoute } from '../route.js';
import { nameParams, time } from '../schemas.js';

const tag = 'repositories';
const percent = z.number().nullable();

export const checkRulesSchema = z.object({
  requiredPaths: z.array(z.string()).describe("shell-style patterns ('etc/passwd', 'home/*/'); each must match a path of every new archive; a trailing '/' matches folders only"),
  maxCountChange: percent.describe('the most the file count may differ from the previous archive of the same prefix, per cent; null: not checked'),
  maxSizeChange: percent.describe('the most the original size may differ from the previous archive of the same prefix, per cent'),
  maxChanged: percent.describe('the largest share of files that may be new or have new content, per cent'),
  maxNewData: percent.describe("the largest share of the archive's bytes that may be in chunks the previous archive did not reference, per cent"),
});

const checksSchema = z.object({
  repository: z.string(),
  rules: checkRulesSchema.extend({ updatedAt: time, updatedBy: z.string() }).nullable().describe('null: no rules set; every new archive is still checked for being readable'),
  description: z.string().describe('the rules in words, after "each new archive must"'),
  passed: z.number(),
  failed: z.number().describe('archives still in the repository whose checks failed'),
  skipped: z.number().describe('archives that were in the repository before its first check and were not checked'),
});

const percentInput = z.number().nullable().optional();
const rulesInput = z
  .object({
    requiredPaths: z.array(z.string().max(1024)).max(1000).nullable().optional().describe("path patterns every new archive must hold (at most 50)"),
    maxCountChange: percentInput.describe('0 to 100,000 per cent, or null'),
    maxSizeChange: percentInput.describe('0 to 100,000 per cent, or null'),
    maxChanged: percentInput.describe('0 to 100 per cent, or null'),
    maxNewData: percentInput.describe('0 to 100 per cent, or null'),
  })
  .strict();

const rulesJson = (r: CheckRules) => ({ requiredPaths: [...r.requiredPaths], maxCountChange: r.maxCountChange, maxSizeChange: r.maxSizeChange, maxChanged: r.maxChanged, maxNewData: r.maxNewData });

function checksJson(repository: Repository, rules: StoredCheckRules | null, verdicts: readonly ArchiveCheckRecord[]) {
  const live = verdicts.filter((v) => v.goneAt === null);
  return {
    repository: repository.name,
    rules: rules ? { ...rulesJson(rules), updatedAt: rules.updatedAt.toISOString(), updatedBy: rules.updatedBy } : null,
    description: describeCheckRules(rules ?? NO_RULES),
    passed: live.filter((v) => v.verdict === 'passed').length,
    failed: live.filter((v) => v.verdict === 'failed').length,
    skipped: live.filter((v) => v.verdict === 'skipped').length,
  };
}

export function archiveCheckRoutes(ctx: ApiContext) {
  const show = async (name: string) => {
    const repository = await ctx.store.getRepository(name);
    return checksJson(repository, await ctx.store.getCheckRules(repository.id), await ctx.store.listArchiveChecks(repository.id));
  };
  return [
    defineRoute({
      method: 'GET',
      url: '/repositories/:name/archive-checks',
      tag,
      summary: "a repository's archive check rules, and how many of its archives passed or failed them",
      access: 'viewer',
      params: nameParams,
      response: z.object({ checks: checksSchema }),
      async handler({ params }) {
        return { checks: await show(params.name) };
      },
    }),
    defineRoute({
      method: 'PUT',
      url: '/repositories/:name/archive-checks',
      tag,
      summary: "set a repository's whole set of archive check rules (what is left out is no longer a rule); archives checked from now on are judged by them",
      access: 'admin',
      params: nameParams,
      body: rulesInput,
      response: z.object({ checks: checksSchema }),
      async handler({ params, body, principal }) {
        const rules = parseCheckRules(body);
        const repository = await ctx.store.getRepository(params.name);
        await ctx.store.setCheckRules(repository.id, rules, actorOf(principal!));
        return { checks: await show(params.name) };
      },
    }),
    defineRoute({
      method: 'DELETE',
      url: '/repositories/:name/archive-checks',
      tag,
      summary: "clear a repository's archive check rules (new archives are still checked for being readable)",
      access: 'admin',
      params: nameParams,
      response: z.object({ repository: z.string(), removed: z.boolean() }),
      async handler({ params }) {
        const repository = await ctx.store.getRepository(params.name);
        return { repository: repository.name, removed: await ctx.store.removeCheckRules(repository.id) };
      },
    }),
  ];
}

/** An archive's verdict as the archive list shows it; null: not checked yet. */
export const archiveCheckSchema = z
  .object({
    verdict: z.enum(['passed', 'failed', 'skipped']),
    findings: z.array(z.object({ rule: z.string(), sentence: z.string() })).describe('each failed rule in one sentence'),
    notes: z.array(z.string()).describe('what was not compared, and why'),
    comparedWith: z.string().nullable().describe('the previous archive of the same prefix it was compared with'),
    checkedAt: time,
  })
  .nullable();
