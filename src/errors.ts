// One error type for everything borgkeep refuses or fails at. The code is stable: the ledger
// records it for denials, the CLI maps it to exit codes and the HTTP API (src/api) answers
// `{code, message}` with the status listed here, as Fastify documents its FST_ERR_* codes.
// Messages are one clear sentence meant for the person who caused them; never a stack trace.

export const ERROR_CODES = {
  /** Bad input: a field, a name, a size, a time, a body that is not JSON. */
  BK_ERR_INVALID_INPUT: 400,
  /** No credentials, or wrong or expired ones (HTTP API). */
  BK_ERR_UNAUTHENTICATED: 401,
  /** The password was right and the user has a second factor: the TOTP code is needed too. */
  BK_ERR_TOTP_REQUIRED: 401,
  /** Not allowed: a guard denial, or a role below what an API request needs. */
  BK_ERR_DENIED: 403,
  /** A state-changing request with a cookie session but without its X-CSRF-Token. */
  BK_ERR_CSRF: 403,
  BK_ERR_NOT_FOUND: 404,
  BK_ERR_CONFLICT: 409,
  /** A request body over the server's limit. */
  BK_ERR_TOO_LARGE: 413,
  BK_ERR_REPO_LOCKED: 423,
  /** Too many failed logins for this user or from this address; try again later. */
  BK_ERR_THROTTLED: 429,
  BK_ERR_PROTOCOL: 400,
  BK_ERR_INTERNAL: 500,
  /** The database stayed locked by another process for longer than its busy timeout. */
  BK_ERR_BUSY: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class BorgkeepError extends Error {
  readonly code: ErrorCode;
  readonly httpStatus: number;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BorgkeepError';
    this.code = code;
    this.httpStatus = ERROR_CODES[code];
  }
}

export const invalidInput = (message: string): BorgkeepError => new BorgkeepError('BK_ERR_INVALID_INPUT', message);
export const notFound = (message: string): BorgkeepError => new BorgkeepError('BK_ERR_NOT_FOUND', message);
export const conflict = (message: string): BorgkeepError => new BorgkeepError('BK_ERR_CONFLICT', message);

export function isBorgkeepError(e: unknown): e is BorgkeepError {
  return e instanceof BorgkeepError;
}
