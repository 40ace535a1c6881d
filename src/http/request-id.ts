/**
 * One id per HTTP request: taken from the caller's `x-request-id` when it is a safe token (so a
 * PACS gateway's id follows the request through our logs), generated otherwise, and echoed in
 * the response header. Every log line of the request comes from a pino child carrying it as
 * `reqId`. The closing line names method, route path, status and duration only: never the
 * query string (signed URLs carry signatures), headers (API keys), bodies (images, variables).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import crypto from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from 'pino';

export const REQUEST_ID_HEADER = 'x-request-id';
/** Letters, digits and . _ : - only, up to 128 characters: nothing a log reader could be fooled by. */
const SAFE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function requestIdOf(incoming: string | string[] | undefined): string {
  const id = Array.isArray(incoming) ? incoming[0] : incoming;
  return id !== undefined && SAFE_ID.test(id) ? id : crypto.randomUUID();
}

/** The request's logger, set by requestLogging (the root logger outside a request). */
export function requestLog(res: Response, fallback: Logger): Logger {
  return (res.locals.log as Logger | undefined) ?? fallback;
}

const current = new AsyncLocalStorage<Logger>();

/** The logger of the request this code runs for, for code that only has the root logger. */
export function currentLog(fallback: Logger): Logger {
  return current.getStore() ?? fallback;
}

/**
 * Makes the request's logger current for what follows. Body parsers resume in the socket's
 * async context, so a route that parses a body binds again after parsing.
 */
export function bindRequestLog(fallback: Logger) {
  return (_req: Request, res: Response, next: NextFunction) => current.run(requestLog(res, fallback), next);
}

export function requestLogging(log: Logger) {
  return (req: Request, res: Response, next: NextFunction) => {
    const reqId = requestIdOf(req.headers[REQUEST_ID_HEADER]);
    const reqLog = log.child({ reqId });
    res.locals.requestId = reqId;
    res.locals.log = reqLog;
    res.setHeader(REQUEST_ID_HEADER, reqId);
    const started = process.hrtime.bigint();
    const path = req.path; // before mounted routers rewrite req.url
    res.on('finish', () => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      // Health checks and scrapes are frequent and uninteresting: debug; the rest info.
      const quiet = path === '/healthz' || path === '/metrics';
      reqLog[quiet ? 'debug' : 'info'](
        { method: req.method, path, status: res.statusCode, ms: Math.round(ms * 10) / 10 },
        'request finished',
      );
    });
    current.run(reqLog, next);
  };
}
