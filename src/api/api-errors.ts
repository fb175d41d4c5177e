// Every error the API answers is `{code, message}` with the status of its code (src/errors.ts).
// BorgkeepErrors keep their one sentence; zod failures become the CLI's sentence for the fields
// the CLI checks too (input-sentences.ts), else one sentence naming the field;
// Fastify's own 4xx errors (bad JSON, wrong content type, body too large) get a sentence of ours;
// anything else is an internal error whose details go to the log, never to the client: no stack
// trace, no server path, no SQL.

import { z } from 'zod';
import { BorgkeepError, ERROR_CODES, isBorgkeepError, type ErrorCode } from '../errors.js';
import { cliSentence } from './input-sentences.js';

export interface ApiErrorBody {
  code: ErrorCode;
  message: string;
}

export const errorBodySchema = z.object({ code: z.string(), message: z.string() }).meta({ id: 'Error' });

export type InputPart = 'body' | 'query' | 'path';

/** `input` and `url` (the request's part and the route): for the CLI's sentence of a known field (input-sentences.ts). */
export function zodInputError(part: InputPart, error: z.ZodError, input?: unknown, url?: string): BorgkeepError {
  const issue = error.issues[0]!;
  const cli = url === undefined ? null : cliSentence(url, issue.path, input, issue.code === 'invalid_value' ? issue.values : undefined);
  if (cli !== null) return new BorgkeepError('BK_ERR_INVALID_INPUT', cli);
  const where = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') {
    return new BorgkeepError('BK_ERR_INVALID_INPUT', `the ${part === 'path' ? 'path' : part} has an unknown ${part === 'query' ? 'parameter' : 'field'} '${issue.keys[0]}'`);
  }
  const message = issue.message.replace(/^Invalid input: /, '').replace(/, received undefined$/, ' and it is missing');
  if (where === '') return new BorgkeepError('BK_ERR_INVALID_INPUT', part === 'body' ? `the request body must be a JSON object: ${message}` : `the ${part}: ${message}`);
  const label = part === 'body' ? 'field' : part === 'query' ? 'query parameter' : 'path parameter';
  return new BorgkeepError('BK_ERR_INVALID_INPUT', `${label} '${where}': ${message}`);
}

/** Fastify's documented client errors, in our words. */
const FASTIFY_ERRORS: Record<string, [ErrorCode, string]> = {
  FST_ERR_CTP_INVALID_JSON_BODY: ['BK_ERR_INVALID_INPUT', 'the request body is not valid JSON'],
  FST_ERR_CTP_EMPTY_JSON_BODY: ['BK_ERR_INVALID_INPUT', 'the request says it has a JSON body but it is empty'],
  FST_ERR_CTP_INVALID_MEDIA_TYPE: ['BK_ERR_INVALID_INPUT', 'the request body must be JSON (Content-Type: application/json)'],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: ['BK_ERR_INVALID_INPUT', 'the Content-Length header does not match the body'],
  FST_ERR_CTP_BODY_TOO_LARGE: ['BK_ERR_TOO_LARGE', 'the request body is larger than the server accepts'],
};

/** The status and body for any error; `internal` is true when the details belong in the log. */
export function toApiError(error: unknown): { status: number; body: ApiErrorBody; internal: boolean } {
  if (isBorgkeepError(error) && error.code !== 'BK_ERR_INTERNAL') {
    return { status: error.httpStatus, body: { code: error.code, message: error.message }, internal: false };
  }
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    const known = FASTIFY_ERRORS[code];
    if (known) return { status: ERROR_CODES[known[0]], body: { code: known[0], message: known[1] }, internal: false };
    if (code.startsWith('SQLITE_BUSY')) {
      return { status: 503, body: { code: 'BK_ERR_BUSY', message: 'the database is busy; try again in a moment' }, internal: false };
    }
  }
  const status = (error as { statusCode?: unknown } | null)?.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return { status: 400, body: { code: 'BK_ERR_INVALID_INPUT', message: 'the request is malformed' }, internal: false };
  }
  return { status: 500, body: { code: 'BK_ERR_INTERNAL', message: 'internal error; the server log has the details' }, internal: true };
}
