/**
 * One error class per failure class. Services throw these; the GraphQL layer maps
 * `code` to `extensions.code` (see src/schema/format-error.ts). Anything else that
 * escapes is reported as INTERNAL_SERVER_ERROR without its internals.
 */
export type ErrorCode = 'BAD_USER_INPUT' | 'NOT_FOUND' | 'UNAUTHENTICATED' | 'FORBIDDEN' | 'SERVICE_UNAVAILABLE';

export abstract class DomainError extends Error {
  abstract readonly code: ErrorCode;
}

/** The caller sent something we cannot use: a corrupt image, a bad argument. */
export class BadInputError extends DomainError {
  readonly code = 'BAD_USER_INPUT' as const;
}

/** An id or key that names nothing stored. */
export class NotFoundError extends DomainError {
  readonly code = 'NOT_FOUND' as const;
}

/** No key, or a key we do not know. */
export class UnauthenticatedError extends DomainError {
  readonly code = 'UNAUTHENTICATED' as const;
}

/** A known key whose role is below what the operation needs. */
export class ForbiddenError extends DomainError {
  readonly code = 'FORBIDDEN' as const;
}

/** A setting that cannot be used (src/config.ts, and secrets read at start): the service does not start. */
export class ConfigError extends Error {}

/** The database or the object store cannot be reached right now; nothing was written, retry later. */
export class UnavailableError extends DomainError {
  readonly code = 'SERVICE_UNAVAILABLE' as const;
}
