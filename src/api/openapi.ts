// The OpenAPI 3.1 document of the API, built from the same route objects and zod schemas that
// validate requests (z.toJSONSchema), so it cannot disagree with the server. Served at
// /api/v1/openapi.json; built once at start-up.

import { z } from 'zod';
import { ERROR_CODES } from '../errors.js';
import { errorBodySchema } from './api-errors.js';
import type { ApiRoute } from './route.js';

type JsonSchema = Record<string, unknown>;

const ACCESS_TEXT: Record<ApiRoute['access'], string> = {
  public: 'No credentials needed.',
  'signed-in': 'Any signed-in user or API token.',
  viewer: 'Role viewer or above.',
  operator: 'Role operator or admin.',
  admin: 'Role admin.',
};

export function buildOpenApiDocument(routes: readonly ApiRoute[], prefix: string): JsonSchema {
  // Schemas with .meta({id}) (the global registry) become components, referenced from operations.
  const components: Record<string, JsonSchema> = {};
  const toSchema = (schema: z.ZodType, io: 'input' | 'output'): JsonSchema => {
    const generated = z.toJSONSchema(schema, { io, unrepresentable: 'any', target: 'draft-2020-12', reused: 'inline' });
    // Named schemas land in $defs; OpenAPI keeps them under components.
    const json = JSON.parse(JSON.stringify(generated).replaceAll('"#/$defs/', '"#/components/schemas/')) as JsonSchema & {
      $defs?: Record<string, JsonSchema>;
    };
    for (const [id, def] of Object.entries(json.$defs ?? {})) components[id] = def;
    delete json.$defs;
    delete json.$schema;
    return json;
  };

  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const path = `${prefix}${route.url}`.replace(/:([A-Za-z]+)/g, '{$1}');
    const parameters: unknown[] = [];
    for (const [where, schema] of [['path', route.params], ['query', route.query]] as const) {
      if (!schema) continue;
      const json = toSchema(schema, 'input') as { properties?: Record<string, JsonSchema>; required?: string[] };
      for (const [name, property] of Object.entries(json.properties ?? {})) {
        const { description, ...rest } = property as { description?: string };
        parameters.push({ name, in: where, required: where === 'path' || (json.required ?? []).includes(name), ...(description && { description }), schema: rest });
      }
    }
    const status = String(route.status ?? 200);
    const errorStatuses = new Set<number>([400, 500]);
    if (route.access !== 'public') [401, 403].forEach((s) => errorStatuses.add(s));
    if (route.url.includes(':')) errorStatuses.add(404);
    paths[path] ??= {};
    paths[path]![route.method.toLowerCase()] = {
      summary: route.summary,
      tags: [route.tag],
      description: `${ACCESS_TEXT[route.access]}${route.sessionOnly ? ' Console sessions only, not API tokens.' : ''}${route.method !== 'GET' && route.access !== 'public' ? ' With a cookie session, send the X-CSRF-Token header.' : ''}`,
      security: route.access === 'public' ? [] : route.sessionOnly ? [{ cookieSession: [] }] : [{ cookieSession: [] }, { bearerToken: [] }],
      ...(parameters.length > 0 && { parameters }),
      ...(route.body && { requestBody: { required: !route.body.safeParse(undefined).success, content: { 'application/json': { schema: toSchema(route.body, 'input') } } } }),
      responses: {
        [status]: status === '204' ? { description: 'done' } : { description: 'success', content: { [route.contentType ?? 'application/json']: { schema: route.response ? toSchema(route.response, 'output') : {} } } },
        ...Object.fromEntries(
          [...errorStatuses].sort().map((s) => [String(s), { description: errorDescription(s), content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } }]),
        ),
      },
    };
  }
  components.Error = { ...toSchema(errorBodySchema, 'output'), description: `code is one of: ${Object.keys(ERROR_CODES).join(', ')}` };

  return {
    openapi: '3.1.0',
    info: {
      title: 'borgkeep API',
      version: '1',
      description:
        'Log in with POST /api/v1/session (sets the HttpOnly cookie bk_session and returns csrfToken, to send as X-CSRF-Token on every state-changing request), or send an API token as Authorization: Bearer bk_.... Every error is {code, message}.',
    },
    paths,
    components: {
      schemas: components,
      securitySchemes: {
        cookieSession: { type: 'apiKey', in: 'cookie', name: 'bk_session' },
        bearerToken: { type: 'http', scheme: 'bearer', description: 'an API token, bk_...' },
      },
    },
  };
}

function errorDescription(status: number): string {
  const codes = Object.entries(ERROR_CODES).filter(([, s]) => s === status).map(([c]) => c);
  return codes.length > 0 ? codes.join(', ') : 'error';
}
