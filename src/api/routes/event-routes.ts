// GET /api/v1/events: the live events of features/live-events.ts (sessions, denials, pull jobs) as server-sent events
// (text/event-stream), authenticated like every other endpoint (cookie session or token; viewer
// and up). Every role may read the whole ledger (GET /sessions), so every caller gets every
// event; `?repository=NAME` narrows the stream to one repository. A comment line every 15 s
// keeps proxies from closing a quiet stream, and the caller's credentials are checked again
// then: a stream ends when its console session or token does. On server shutdown every stream
// gets a last `end` event and is closed, so shutdown never waits on a browser.

import { parse as parseCookies } from 'cookie';
import { z } from 'zod';
import type { ApiContext } from '../api-server.js';
import { SESSION_COOKIE } from '../auth/authenticator.js';
import type { LiveEvent, LiveEvents } from '../features/live-events.js';
import { defineRoute } from '../route.js';
import { denialListItem, name, sessionSchema } from '../schemas.js';
import { pullJobJson, pullJobSchema } from './pull-routes.js';

const tag = 'events';
export const HEARTBEAT_MS = 15_000;
/** What EventSource waits before reconnecting after a dropped stream. */
const RETRY_MS = 3000;

const liveSession = sessionSchema.omit({ transactions: true, denials: true }).meta({ id: 'LiveSession' });
const message = <E extends string, D extends z.ZodType>(event: E, data: D, description: string) =>
  z.object({ event: z.literal(event), data }).describe(description);
/** The stream's messages, for the OpenAPI document: each is `event: NAME` and one `data: JSON` line. */
const eventStreamSchema = z
  .union([
    message('snapshot', z.object({ open: z.array(liveSession), pullJobs: z.array(pullJobSchema) }), 'first message: the sessions open now, and the pull jobs queued or under way'),
    message('session.started', z.object({ session: liveSession }), 'a session began (its repository may still be null until the client opens one)'),
    message('session.progress', z.object({ session: liveSession }), 'bytes in/out, repository, role or client version changed (about every 2 s while data flows)'),
    message('session.ended', z.object({ session: liveSession }), 'a session ended; result says how'),
    message('denial', z.object({ denial: denialListItem }), 'a call or a session was refused'),
    message('pull.started', z.object({ job: pullJobSchema }), 'a pull job was queued (or is seen for the first time already under way)'),
    message('pull.progress', z.object({ job: pullJobSchema }), "a pull job's state, bytes, files or current path changed (about every second while borg reads)"),
    message('pull.ended', z.object({ job: pullJobSchema }), 'a pull job ended: done, or failed with its reason'),
    message('end', z.object({ reason: z.string() }), 'the server ends the stream (shutdown, or the credentials ended); reconnect or log in again'),
  ])
  .describe('server-sent events; a comment line (": keep-alive") every 15 s')
  .meta({ id: 'LiveEvent' });

export interface EventStreams {
  routes: ReturnType<typeof defineRoute>[];
  /** Ends every open stream (server shutdown). */
  close(reason: string): void;
}

export function createEventStreams(ctx: ApiContext, hub: LiveEvents, options: { heartbeatMs?: number } = {}): EventStreams {
  const heartbeatMs = options.heartbeatMs ?? HEARTBEAT_MS;
  const streams = new Set<(reason: string) => void>();

  const route = defineRoute({
    method: 'GET',
    url: '/events',
    tag,
    summary: 'live events as server-sent events: sessions started, progress (bytes in/out), ended; denials; pull jobs queued, progress (bytes, files, path), ended',
    access: 'viewer',
    contentType: 'text/event-stream',
    query: z.object({ repository: name.optional().describe('only events of this repository') }).strict(),
    response: eventStreamSchema,
    async handler({ query, request, reply }) {
      const only = query.repository === undefined ? null : (await ctx.store.getRepository(query.repository)).name;
      const visible = (event: LiveEvent) =>
        only === null ||
        (event.type === 'denial' ? event.denial.repositoryName === only : 'job' in event ? event.job.repositoryName === only : event.session.repositoryName === only);
      const credentials = {
        authorization: request.headers.authorization,
        cookie: request.headers.cookie ? parseCookies(request.headers.cookie)[SESSION_COOKIE] : undefined,
      };

      const res = reply.raw;
      let ended = false;
      let ready = false;
      const queued: LiveEvent[] = [];
      const send = (event: string, data: unknown) => {
        if (!ended) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
      };
      const forward = (event: LiveEvent) => {
        if (!visible(event)) return;
        if (!ready) queued.push(event);
        else send(event.type, event.type === 'denial' ? { denial: event.denial } : 'job' in event ? { job: pullJobJson(event.job) } : { session: event.session });
      };
      const subscription = await hub.subscribe(forward);
      if (res.destroyed) {
        subscription.unsubscribe(); // the client left while the hub took its first look
        reply.hijack();
        return reply;
      }

      reply.hijack();
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        'x-content-type-options': 'nosniff',
        // nginx buffers responses unless told otherwise.
        'x-accel-buffering': 'no',
      });
      res.write(`retry: ${RETRY_MS}\n\n`);
      send('snapshot', {
        open: subscription.open.filter((session) => only === null || session.repositoryName === only),
        pullJobs: subscription.pullJobs.filter((job) => only === null || job.repositoryName === only).map(pullJobJson),
      });
      ready = true;
      for (const event of queued.splice(0)) forward(event);

      const finish = (reason: string | null) => {
        if (ended) return;
        if (reason !== null) send('end', { reason });
        ended = true;
        clearInterval(heartbeat);
        subscription.unsubscribe();
        streams.delete(finish);
        res.end();
      };
      const heartbeat = setInterval(() => {
        res.write(': keep-alive\n\n');
        ctx.authenticator.authenticate(credentials).then(
          (found) => {
            if (!found) finish('the credentials of this stream are gone; log in again');
          },
          (error: unknown) => finish(error instanceof Error ? error.message : 'the credentials of this stream are no longer valid'),
        );
      }, heartbeatMs);
      heartbeat.unref();
      streams.add(finish);
      res.on('close', () => finish(null));
      return reply;
    },
  });

  return {
    routes: [route],
    close(reason) {
      for (const finish of [...streams]) finish(reason);
      hub.close();
    },
  };
}
