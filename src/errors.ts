// One error type for everything borgkeep refuses or fails at. The code is stable: the ledger
// records it for denials, the CLI and (later) the API map it to exit codes and HTTP statuses.
// Messages are one clear sentence meant for the person who caused them; never a stack trace.

export const ERROR_CODES = {
  BK_ERR_INVALID_INPUT: 400,
  BK_ERR_DENIED: 403,
  BK_ERR_NOT_FOUND: 404,
  BK_ERR_CONFLICT: 409,
  BK_ERR_REPO_LOCKED: 423,
  BK_ERR_PROTOCOL: 400,
  BK_ERR_INTERNAL: 500,
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
