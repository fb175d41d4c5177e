// Grants: what one key may do on one repository. Create (refused if one exists), change
// (the given terms replace those fields, the others stay), remove.

import { z } from 'zod';
import { conflict, notFound } from '../../errors.js';
import type { GrantTerms } from '../../store/grant-terms.js';
import type { ApiContext } from '../api-server.js';
import { grantJson } from '../presenters.js';
import { defineRoute } from '../route.js';
import { grantParams, grantSchema, grantTermsInput, keyRef, name } from '../schemas.js';

const tag = 'grants';

export function grantRoutes(ctx: ApiContext) {
  const view = async (keyRefText: string, repositoryName: string) => {
    const key = await ctx.store.getKey(keyRefText);
    const repository = await ctx.store.getRepository(repositoryName);
    const found = (await ctx.store.listGrants({ keyId: key.id, repositoryId: repository.id }))[0];
    return { key, repository, found };
  };
  return [
    defineRoute({
      method: 'GET',
      url: '/grants',
      tag,
      summary: 'list grants, optionally of one repository or one key',
      access: 'viewer',
      query: z.object({ repository: name.optional(), key: keyRef.optional() }).strict(),
      response: z.object({ grants: z.array(grantSchema) }),
      async handler({ query }) {
        const repositoryId = query.repository === undefined ? undefined : (await ctx.store.getRepository(query.repository)).id;
        const keyId = query.key === undefined ? undefined : (await ctx.store.getKey(query.key)).id;
        return {
          grants: (await ctx.store.listGrants({ ...(repositoryId !== undefined && { repositoryId }), ...(keyId !== undefined && { keyId }) })).map(grantJson),
        };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/grants',
      tag,
      summary: 'give a key a role on a repository',
      access: 'operator',
      status: 201,
      body: z.object({ key: keyRef, repository: name, ...grantTermsInput }).strict(),
      response: z.object({ grant: grantSchema }),
      async handler({ body }) {
        const { key, repository, found } = await view(body.key, body.repository);
        if (found) throw conflict(`key '${key.name}' already has a grant on repository '${repository.name}'; change it with PATCH`);
        const terms: GrantTerms = {
          role: body.role,
          writesPerDay: body.writesPerDay ?? null,
          fromCidrs: body.fromCidrs ?? null,
          expiresAt: body.expiresAt ?? null,
          minAgeSeconds: body.minAgeSeconds ?? null,
          keepLast: body.keepLast ?? null,
          prefix: body.prefix ?? null,
          maxRemovalsPerDay: body.maxRemovalsPerDay ?? null,
          verifyObjects: body.verifyObjects ?? false,
        };
        await ctx.store.setGrant(String(key.id), repository.name, terms);
        return { grant: grantJson((await view(body.key, body.repository)).found!) };
      },
    }),
    defineRoute({
      method: 'PATCH',
      url: '/grants/:key/:repository',
      tag,
      summary: "change a grant's role or limits (fields left out keep their value; null removes a limit)",
      access: 'operator',
      params: grantParams,
      body: z.object({ ...grantTermsInput, role: grantTermsInput.role.optional() }).strict(),
      response: z.object({ grant: grantSchema }),
      async handler({ params, body }) {
        const { key, repository, found } = await view(params.key, params.repository);
        if (!found) throw notFound(`key '${key.name}' has no grant on repository '${repository.name}'`);
        const g = found.grant;
        const role = body.role ?? g.role;
        // A rule the new role cannot have is not carried over from the old one (a prune grant
        // made append loses its retention rule); one given with the change is checked as given.
        const kept = <T>(given: T | undefined, old: T, fits: boolean, none: T): T => (given !== undefined ? given : fits ? old : none);
        const terms: GrantTerms = {
          role,
          writesPerDay: body.writesPerDay === undefined ? g.writesPerDay : body.writesPerDay,
          fromCidrs: body.fromCidrs === undefined ? g.fromCidrs : body.fromCidrs,
          expiresAt: body.expiresAt === undefined ? g.expiresAt : body.expiresAt,
          minAgeSeconds: kept(body.minAgeSeconds, g.minAgeSeconds, role === 'prune', null),
          keepLast: kept(body.keepLast, g.keepLast, role === 'prune', null),
          prefix: kept(body.prefix, g.prefix, role === 'prune', null),
          maxRemovalsPerDay: kept(body.maxRemovalsPerDay, g.maxRemovalsPerDay, role === 'prune', null),
          verifyObjects: kept(body.verifyObjects, g.verifyObjects, role !== 'read', false),
        };
        await ctx.store.setGrant(String(key.id), repository.name, terms);
        return { grant: grantJson((await view(params.key, params.repository)).found!) };
      },
    }),
    defineRoute({
      method: 'DELETE',
      url: '/grants/:key/:repository',
      tag,
      summary: "remove a key's grant on a repository",
      access: 'operator',
      params: grantParams,
      status: 204,
      async handler({ params }) {
        await ctx.store.removeGrant(params.key, params.repository);
        return undefined;
      },
    }),
  ];
}
