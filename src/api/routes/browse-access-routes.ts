// Whether console viewers may browse a repository's archives (issue 18 point 2): the switch, shown
// to everyone signed in and set by admins, and the one check the browse routes make before a
// viewer sees names and metadata of an archive's folders. Downloads never consult it: they need
// the operator role. Thin: the switch lives in the store (browse-access-store.ts).

import { z } from 'zod';

import { BorgkeepError } from '../../errors.js';
import type { Principal } from '../auth/authenticator.js';
import type { ApiContext } from '../api-server.js';
import { actorOf } from '../presenters.js';
import { defineRoute } from '../route.js';
import { nameParams, time } from '../schemas.js';

const tag = 'repositories';
const accessSchema = z.object({
  repository: z.string(),
  viewersMayBrowse: z.boolean().describe("whether console viewers may list this repository's archives' folders and search them (names and metadata; never downloads)"),
  updatedAt: time.nullable(),
  updatedBy: z.string().nullable(),
});

/**
 * Refuses a viewer (a user, or a token acting as one) the browse routes of a repository whose
 * switch is off, with the sentence every route gives a role below its own: operators and admins
 * pass without a look at the store.
 */
export async function allowBrowse(ctx: ApiContext, principal: Principal | null, repositoryName: string): Promise<void> {
  if (!principal || principal.role !== 'viewer') return;
  const repository = await ctx.store.getRepository(repositoryName);
  if ((await ctx.store.getBrowseAccess(repository.id)).viewersMayBrowse) return;
  throw new BorgkeepError('BK_ERR_DENIED', `this needs the operator role; ${principal.via === 'token' ? 'this token acts as' : 'you are'} viewer`);
}

export function browseAccessRoutes(ctx: ApiContext) {
  const shown = async (name: string) => {
    const repository = await ctx.store.getRepository(name);
    const a = await ctx.store.getBrowseAccess(repository.id);
    return { repository: repository.name, viewersMayBrowse: a.viewersMayBrowse, updatedAt: a.updatedAt?.toISOString() ?? null, updatedBy: a.updatedBy };
  };
  return [
    defineRoute({
      method: 'GET',
      url: '/repositories/:name/browse-access',
      tag,
      summary: "whether console viewers may browse this repository's archives (names and metadata only)",
      access: 'viewer',
      params: nameParams,
      response: z.object({ browseAccess: accessSchema }),
      async handler({ params }) {
        return { browseAccess: await shown(params.name) };
      },
    }),
    defineRoute({
      method: 'PUT',
      url: '/repositories/:name/browse-access',
      tag,
      summary: "let console viewers browse this repository's archives (names and metadata; downloads stay with operators and admins), or stop them",
      access: 'admin',
      params: nameParams,
      body: z.object({ viewersMayBrowse: z.boolean() }).strict(),
      response: z.object({ browseAccess: accessSchema }),
      async handler({ params, body, principal }) {
        const repository = await ctx.store.getRepository(params.name);
        await ctx.store.setBrowseAccess(repository.id, body.viewersMayBrowse, actorOf(principal!));
        return { browseAccess: await shown(params.name) };
      },
    }),
  ];
}
