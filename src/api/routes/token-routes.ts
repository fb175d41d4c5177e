// API tokens for automation: `Authorization: Bearer bk_...`. The token is in the creation
// response only; the store keeps its SHA-256. A token acts with a role no higher than its
// creator's (checked here, and again on every request against the user's current role).

import { z } from 'zod';
import { BorgkeepError, notFound } from '../../errors.js';
import { checkUserRole } from '../../store/user-store.js';
import type { ApiContext } from '../api-server.js';
import { roleAtLeast } from '../auth/authenticator.js';
import { tokenJson } from '../presenters.js';
import { defineRoute } from '../route.js';
import { idParams, name, timeInput, tokenSchema, userRole } from '../schemas.js';

const tag = 'tokens';

export function tokenRoutes(ctx: ApiContext) {
  return [
    defineRoute({
      method: 'POST',
      url: '/tokens',
      tag,
      summary: 'create an API token (the token is shown in this response only)',
      access: 'signed-in',
      sessionOnly: true,
      status: 201,
      body: z
        .object({
          name,
          role: userRole.optional().describe("at most the creator's role; default: the creator's role"),
          expiresAt: timeInput.nullable().optional().describe('null or left out: never expires'),
        })
        .strict(),
      response: z.object({ token: z.string().describe('bk_..., shown this once'), apiToken: tokenSchema }),
      async handler({ body, principal }) {
        const creator = principal!;
        const role = checkUserRole(body.role ?? creator.role);
        if (!roleAtLeast(creator.role, role)) {
          throw new BorgkeepError('BK_ERR_DENIED', `a token cannot have a higher role than its creator (${creator.role})`);
        }
        const expiresAt = body.expiresAt ?? null;
        if (expiresAt !== null && expiresAt.getTime() <= ctx.now().getTime()) {
          throw new BorgkeepError('BK_ERR_INVALID_INPUT', `the expiry time ${expiresAt.toISOString()} has already passed`);
        }
        const secret = ctx.authenticator.newToken();
        const apiToken = await ctx.store.createApiToken({ userId: creator.user.id, name: body.name, tokenHash: secret.hash, prefix: secret.prefix, role, expiresAt });
        return { token: secret.token, apiToken: tokenJson(apiToken) };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/tokens',
      tag,
      summary: "list API tokens: your own; an admin's list has everyone's",
      access: 'signed-in',
      response: z.object({ tokens: z.array(tokenSchema) }),
      async handler({ principal }) {
        const p = principal!;
        return { tokens: (await ctx.store.listApiTokens(p.role === 'admin' ? undefined : p.user.id)).map(tokenJson) };
      },
    }),
    defineRoute({
      method: 'DELETE',
      url: '/tokens/:id',
      tag,
      summary: 'revoke an API token (your own; an admin may revoke any)',
      access: 'signed-in',
      params: idParams,
      response: z.object({ apiToken: tokenSchema }),
      async handler({ params, principal }) {
        const p = principal!;
        const token = await ctx.store.getApiToken(params.id);
        // Someone else's token is answered like a missing one, so ids cannot be probed.
        if (token.userId !== p.user.id && p.role !== 'admin') throw notFound(`no API token with id ${params.id}`);
        return { apiToken: tokenJson(await ctx.store.revokeApiToken(token.id)) };
      },
    }),
  ];
}
