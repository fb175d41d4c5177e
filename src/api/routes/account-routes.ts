// The signed-in user's recovery codes for the second factor: how many are left, and a new set
// (the old set stops working). Codes are returned once, in the answer that made them; the store
// keeps their hashes only. Never for an API token (sessionOnly): a token cannot touch a factor.

import { z } from 'zod';
import { BorgkeepError, conflict } from '../../errors.js';
import type { ApiContext } from '../api-server.js';
import { MAX_PASSWORD_LENGTH } from '../auth/passwords.js';
import { generateRecoveryCodes, hashRecoveryCode, normaliseRecoveryCode } from '../auth/recovery-codes.js';
import { defineRoute } from '../route.js';

const tag = 'session';

/** A fresh set for the user (replacing any older one); the plain codes, to show once. */
export async function newRecoveryCodes(ctx: Pick<ApiContext, 'store'>, userId: number): Promise<string[]> {
  const codes = generateRecoveryCodes();
  await ctx.store.replaceRecoveryCodes(userId, codes.map((c) => hashRecoveryCode(normaliseRecoveryCode(c)!)));
  return codes;
}

export function accountRoutes(ctx: ApiContext) {
  return [
    defineRoute({
      method: 'GET',
      url: '/me/recovery-codes',
      tag,
      summary: 'how many unused recovery codes you have left',
      access: 'signed-in',
      sessionOnly: true,
      response: z.object({ left: z.number().int() }),
      handler: async ({ principal }) => ({ left: await ctx.store.countRecoveryCodes(principal!.user.id) }),
    }),
    defineRoute({
      method: 'POST',
      url: '/me/recovery-codes',
      tag,
      summary: 'make a new set of recovery codes (the old ones stop working); shown in this response only',
      access: 'signed-in',
      sessionOnly: true,
      body: z.object({ password: z.string().min(1).max(MAX_PASSWORD_LENGTH) }).strict(),
      response: z.object({ recoveryCodes: z.array(z.string()) }),
      async handler({ body, principal }) {
        const me = (await ctx.store.getUserCredentialsById(principal!.user.id))!;
        if (!me.user.totpEnabled) throw conflict('the second factor is not on; turn it on first and its recovery codes come with it');
        if (me.passwordHash === null || !(await ctx.passwords.verify(me.passwordHash, body.password))) throw new BorgkeepError('BK_ERR_DENIED', 'the current password is wrong');
        return { recoveryCodes: await newRecoveryCodes(ctx, me.user.id) };
      },
    }),
  ];
}
