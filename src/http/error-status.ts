/**
 * The one mapping from a failure to what HTTP answers, used by every error path of the HTTP
 * surface: GraphQL's formatError (extensions.code), the /images and /uploads routes, and the
 * last-resort handler. A DomainError keeps its code and message; a database that went away is
 * SERVICE_UNAVAILABLE (503); anything else is an internal error whose details stay in the log.
 */
import { isDatabaseUnavailable } from '../db/postgres-errors.ts';
import { DomainError, type ErrorCode } from '../errors.ts';

export type ResponseCode = ErrorCode | 'INTERNAL_SERVER_ERROR';

export const HTTP_STATUS: Record<ResponseCode, number> = {
  BAD_USER_INPUT: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  SERVICE_UNAVAILABLE: 503,
  INTERNAL_SERVER_ERROR: 500,
};

export const DATABASE_UNREACHABLE = 'the database is unreachable right now; retry shortly';

export interface ErrorAnswer {
  code: ResponseCode;
  status: number;
  message: string;
  /**
   * domain: a DomainError the service threw on purpose (its message is for the caller);
   * database: the database went away (worth a warning in the log); internal: a bug or an
   * unexpected failure (log it with its details; the caller gets no internals).
   */
  source: 'domain' | 'database' | 'internal';
}

export function errorAnswer(err: unknown): ErrorAnswer {
  if (err instanceof DomainError) return { code: err.code, status: HTTP_STATUS[err.code], message: err.message, source: 'domain' };
  if (isDatabaseUnavailable(err)) return { code: 'SERVICE_UNAVAILABLE', status: HTTP_STATUS.SERVICE_UNAVAILABLE, message: DATABASE_UNREACHABLE, source: 'database' };
  return { code: 'INTERNAL_SERVER_ERROR', status: HTTP_STATUS.INTERNAL_SERVER_ERROR, message: 'internal error; the details are in the service log', source: 'internal' };
}
