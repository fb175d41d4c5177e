// Console users (admin only): list, add, change role, remove, reset password. A password the
// admin does not give is generated and returned once, in that response only; after a reset the
// user must choose a new one at the next login. Nobody removes themselves, nor the last admin.

import { z } from 'zod';
import { conflict } from '../../errors.js';
import type { ApiContext } from '../api-server.js';
import { checkPassword, generatePassword, MAX_PASSWORD_LENGTH } from '../auth/passwords.js';
import { userJson } from '../presenters.js';
import { defineRoute } from '../route.js';
import { name, nameParams, userRole, userSchema } from '../schemas.js';

const tag = 'users';
const password = z.string().max(MAX_PASSWORD_LENGTH).optional().describe('at least 10 characters; left out: one is generated and returned once');
const withPassword = z.object({ user: userSchema, password: z.string().optional().describe('the generated password, shown this once') });

export function userRoutes(ctx: ApiContext) {
  const hashFor = async (given: string | undefined) => {
    const plain = given === undefined ? generatePassword() : checkPassword(given);
    return { plain, generated: given === undefined, hash: await ctx.passwords.hash(plain) };
  };
  return [
    defineRoute({
      method: 'GET',
      url: '/users',
      tag,
      summary: 'list users',
      access: 'admin',
      response: z.object({ users: z.array(userSchema) }),
      handler: async () => ({ users: (await ctx.store.listUsers()).map(userJson) }),
    }),
    defineRoute({
      method: 'POST',
      url: '/users',
      tag,
      summary: 'add a user',
      access: 'admin',
      status: 201,
      body: z.object({ name, role: userRole, password }).strict(),
      response: withPassword,
      async handler({ body }) {
        const pw = await hashFor(body.password);
        const user = await ctx.store.addUser({ name: body.name, role: body.role, passwordHash: pw.hash });
        return { user: userJson(user), ...(pw.generated && { password: pw.plain }) };
      },
    }),
    defineRoute({
      method: 'PATCH',
      url: '/users/:name',
      tag,
      summary: "change a user's role",
      access: 'admin',
      params: nameParams,
      body: z.object({ role: userRole }).strict(),
      response: z.object({ user: userSchema }),
      handler: async ({ params, body }) => ({ user: userJson(await ctx.store.setUserRole(params.name, body.role)) }),
    }),
    defineRoute({
      method: 'DELETE',
      url: '/users/:name',
      tag,
      summary: 'remove a user, with their console sessions and API tokens',
      access: 'admin',
      params: nameParams,
      response: z.object({ user: userSchema }),
      async handler({ params, principal }) {
        if (params.name === principal!.user.name) throw conflict('you cannot remove your own user; another admin can');
        return { user: userJson(await ctx.store.removeUser(params.name)) };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/users/:name/password',
      tag,
      summary: "reset a user's password (ends their console sessions; they choose a new one at the next login); optionally turn their second factor off",
      access: 'admin',
      params: nameParams,
      body: z.object({ password, removeTotp: z.boolean().optional().describe('for a user who lost their authenticator') }).strict(),
      response: withPassword,
      async handler({ params, body, principal }) {
        const target = await ctx.store.getUser(params.name);
        const pw = await hashFor(body.password);
        // The admin knows this password, so it is not the user's own until they change it.
        const user = await ctx.store.setPasswordHash(target.name, pw.hash, { mustChange: target.id !== principal!.user.id });
        if (body.removeTotp) await ctx.store.setTotp(user.id, { secret: null, enabled: false });
        return { user: userJson(await ctx.store.getUser(user.name)), ...(pw.generated && { password: pw.plain }) };
      },
    }),
  ];
}
