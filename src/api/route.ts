// One API endpoint as data: method, path, who may call it, the zod schemas of its input (and of
// its output, for the OpenAPI document and the tests' response checks), and a thin handler that
// calls the stores and features. api-server.ts registers these with Fastify; openapi.ts
// describes the same objects, so the document cannot drift from what is validated.

import type { FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import type { UserRole } from '../store/user-store.js';
import type { Principal } from './auth/authenticator.js';

/** public: no credentials; signed-in: any user; a role: at least that role. */
export type Access = 'public' | 'signed-in' | UserRole;
export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface HandlerInput<P, Q, B> {
  params: P;
  query: Q;
  body: B;
  /** Null only on public routes. */
  principal: Principal | null;
  request: FastifyRequest;
  reply: FastifyReply;
}

export interface ApiRoute<P = any, Q = any, B = any> {
  method: Method;
  /** Below /api/v1, Fastify syntax: '/repositories/:name'. */
  url: string;
  summary: string;
  tag: string;
  access: Access;
  /** Refused for API tokens: a token cannot mint tokens or change second factors. */
  sessionOnly?: boolean;
  /** Still open to a console session whose password an admin reset (log in, out, choose a new one). */
  allowedBeforePasswordChange?: boolean;
  params?: z.ZodType<P>;
  query?: z.ZodType<Q>;
  body?: z.ZodType<B>;
  response?: z.ZodType;
  /** Of the success response; default application/json. A text/event-stream handler writes the stream itself. */
  contentType?: 'application/json' | 'text/event-stream' | 'text/csv' | 'text/plain' | 'application/octet-stream';
  /** Success status; 204 routes return undefined. Default 200. */
  status?: 200 | 201 | 202 | 204;
  handler(input: HandlerInput<P, Q, B>): Promise<unknown>;
}

/** Keeps the handler's input types tied to the schemas. */
export function defineRoute<P = undefined, Q = undefined, B = undefined>(route: ApiRoute<P, Q, B>): ApiRoute<P, Q, B> {
  return route;
}

/**
 * A JSON answer a handler serialised itself (the dashboard keeps each repository's JSON while it
 * is unchanged); sent as it is, and checked against the route's schema like any other.
 */
export class JsonText {
  constructor(readonly text: string) {}
}
