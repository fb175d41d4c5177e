// Conditional GETs for the API's JSON answers: every successful GET answer under /api/v1 carries
// an ETag (a hash of its body), and a request whose If-None-Match names the body it would get is
// answered 304 Not Modified with no body. The console polls its lists (the dashboard, the open
// alerts) and keeps its copy (web/src/api.ts), so an unchanged list costs a few hundred bytes on
// the wire instead of the whole list.
//
// The answers stay `cache-control: no-store` (they are personal): the console keeps its copy in
// memory and sends If-None-Match itself; no browser or proxy cache is asked to keep anything.
// Never: answers 304 to anything but a GET with a 200 answer, hashes a stream, or derives the tag
// from anything but the exact bytes sent (two users seeing the same bytes may share a tag; a tag
// says nothing a body would not).

import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';

/** The tag of a body: a strong ETag (the exact bytes), quoted as HTTP wants. */
export function etagOf(body: string | Buffer): string {
  return `"${createHash('sha1').update(body).digest('base64url')}"`;
}

/** Whether an If-None-Match header names `etag` (a list of tags, weak or strong, or `*`). */
export function matchesIfNoneMatch(header: string | string[] | undefined, etag: string): boolean {
  if (header === undefined) return false;
  const value = Array.isArray(header) ? header.join(',') : header;
  if (value.trim() === '*') return true;
  return value.split(',').some((t) => t.trim().replace(/^W\//, '') === etag);
}

/** Bodies at least this long are remembered with their tag (hashing a small one costs less than keeping it). */
const REMEMBER_FROM_BYTES = 16 * 1024;
/** How many big bodies are remembered: a few lists polled, each up to about a megabyte. */
const MAX_REMEMBERED = 8;

/**
 * Adds the ETag / 304 handling to GET answers under `prefix`. The tags of the last few big
 * answers are kept with their bodies, so a list polled while unchanged (the same string, as the
 * dashboard keeps it) is not hashed again; a bounded few, so nothing grows with the paths asked.
 */
export function registerConditionalGets(app: FastifyInstance, prefix: string): void {
  const last = new Map<string, { body: string; etag: string }>();
  app.addHook('onSend', async (request, reply, payload) => {
    if (request.method !== 'GET' || reply.statusCode !== 200 || !request.url.startsWith(prefix)) return payload;
    if (typeof payload !== 'string' && !Buffer.isBuffer(payload)) return payload; // a stream (events, exports)
    let etag: string;
    const path = request.url;
    const seen = typeof payload === 'string' ? last.get(path) : undefined;
    if (seen && seen.body === payload) etag = seen.etag;
    else {
      etag = etagOf(payload);
      if (typeof payload === 'string' && payload.length >= REMEMBER_FROM_BYTES) {
        last.delete(path);
        last.set(path, { body: payload, etag });
        if (last.size > MAX_REMEMBERED) last.delete(last.keys().next().value!);
      }
    }
    reply.header('etag', etag);
    if (matchesIfNoneMatch(request.headers['if-none-match'], etag)) {
      reply.code(304);
      reply.removeHeader('content-type');
      reply.removeHeader('content-length');
      return '';
    }
    return payload;
  });
}
