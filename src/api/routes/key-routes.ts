// SSH keys: add from an OpenSSH public key line (optionally with a first grant), list, show,
// revoke. Keys are never deleted (see key-store.ts).

import { z } from 'zod';
import { checkGrantTerms } from '../../store/grant-terms.js';
import { MAX_KEY_LINE_LENGTH, parseSshPublicKey } from '../../store/ssh-public-key.js';
import type { ApiContext } from '../api-server.js';
import { grantJson, keyJson } from '../presenters.js';
import { JsonText, defineRoute } from '../route.js';
import { grantSchema, grantTermsInput, keyParams, keySchema, name } from '../schemas.js';

const tag = 'keys';
const keyListed = keySchema.extend({
  lastUsedAt: z.string().nullable().describe("the start of the key's newest session, on any repository and with any result; null: never used"),
  grants: z.array(grantSchema),
});

/**
 * The key list as sent, kept between requests: each key's JSON is made again only when its last
 * use changed (a session of the key started since), and everything only when keys, grants or
 * repository names changed (the store's access version, bumped by triggers in any process). A
 * console open on the Keys page and the API's clients then cost two small reads per request, not
 * every key, every grant and each key's newest session (about 17 ms of SQLite and a megabyte of
 * JSON at 1,000 keys).
 */
function keyListCache(ctx: ApiContext) {
  type Listed = ReturnType<typeof keyJson> & { lastUsedAt: string | null; grants: ReturnType<typeof grantJson>[] };
  let held: { access: number; newestSession: number; keys: Map<number, Listed>; parts: Map<number, string>; order: number[]; text: string } | null = null;
  const join = (h: NonNullable<typeof held>) => `{"keys":[${h.order.map((id) => h.parts.get(id)).join(',')}]}`;
  return async (): Promise<string> => {
    const marks = await ctx.store.keyListMarks();
    if (held && held.access === marks.access) {
      if (held.newestSession !== marks.newestSession) {
        const used = await ctx.store.keysUsedSince(held.newestSession);
        let moved = false;
        for (const [id, at] of used) {
          const key = held.keys.get(id);
          if (!key) continue; // a key added since would have changed the access version
          const iso = at.toISOString();
          if (key.lastUsedAt !== null && key.lastUsedAt >= iso) continue;
          key.lastUsedAt = iso;
          held.parts.set(id, JSON.stringify(key));
          moved = true;
        }
        held.newestSession = marks.newestSession;
        if (moved) held.text = join(held);
      }
      return held.text;
    }
    // Three queries whatever the number of keys: the keys, every grant, each key's newest session.
    const [keys, grants, lastUsed] = await Promise.all([ctx.store.listKeys(), ctx.store.listGrants(), ctx.store.keysLastUsed()]);
    const byKey = new Map<number, ReturnType<typeof grantJson>[]>();
    for (const g of grants) byKey.set(g.grant.keyId, [...(byKey.get(g.grant.keyId) ?? []), grantJson(g)]);
    const listed = new Map<number, Listed>(keys.map((k) => [k.id, { ...keyJson(k), lastUsedAt: lastUsed.get(k.id)?.toISOString() ?? null, grants: byKey.get(k.id) ?? [] }]));
    const next = {
      access: marks.access,
      newestSession: marks.newestSession,
      keys: listed,
      parts: new Map([...listed].map(([id, k]) => [id, JSON.stringify(k)])),
      order: keys.map((k) => k.id),
      text: '',
    };
    next.text = join(next);
    // Sessions that started while the lists were read are counted again at the next request.
    held = next;
    return next.text;
  };
}

export function keyRoutes(ctx: ApiContext) {
  const keyList = keyListCache(ctx);
  return [
    defineRoute({
      method: 'GET',
      url: '/keys',
      tag,
      summary: 'list SSH keys, each with its grants and when it was last used (its newest session)',
      access: 'viewer',
      response: z.object({ keys: z.array(keyListed) }),
      async handler() {
        return new JsonText(await keyList());
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/keys/:key',
      tag,
      summary: 'a key with its grants',
      access: 'viewer',
      params: keyParams,
      response: z.object({ key: keySchema, grants: z.array(grantSchema) }),
      async handler({ params }) {
        const key = await ctx.store.getKey(params.key);
        return { key: keyJson(key), grants: (await ctx.store.listGrants({ keyId: key.id })).map(grantJson) };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/keys',
      tag,
      summary: 'register an SSH public key (one line as in a .pub file), optionally granting it a role on a repository',
      access: 'operator',
      status: 201,
      body: z
        .object({
          name,
          publicKey: z.string().max(MAX_KEY_LINE_LENGTH).describe("'TYPE BASE64 [comment]'"),
          grant: z.object({ repository: name, ...grantTermsInput }).strict().optional(),
        })
        .strict(),
      response: z.object({ key: keySchema, grant: grantSchema.nullable() }),
      async handler({ body }) {
        const publicKey = parseSshPublicKey(body.publicKey);
        const g = body.grant;
        const terms = g && checkGrantTerms({ ...g, writesPerDay: g.writesPerDay ?? null, fromCidrs: g.fromCidrs ?? null, expiresAt: g.expiresAt ?? null }, ctx.now());
        const added = await ctx.store.addKey({ name: body.name, publicKey, ...(g && terms && { grant: { repositoryName: g.repository, ...terms } }) });
        const grant = added.grant ? (await ctx.store.listGrants({ keyId: added.key.id }))[0] : undefined;
        return { key: keyJson(added.key), grant: grant ? grantJson(grant) : null };
      },
    }),
    defineRoute({
      method: 'DELETE',
      url: '/keys/:key',
      tag,
      summary: 'revoke a key for good: its grants go and its sessions are refused',
      access: 'operator',
      params: keyParams,
      response: z.object({ key: keySchema, alreadyRevoked: z.boolean(), grantsRemoved: z.number() }),
      async handler({ params }) {
        const r = await ctx.store.revokeKey(params.key);
        return { key: keyJson(r.key), alreadyRevoked: r.alreadyRevoked, grantsRemoved: r.grantsRemoved };
      },
    }),
  ];
}
