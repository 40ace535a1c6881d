/**
 * The HTTP surface: POST /graphql, GET /healthz, GET /metrics, GET / (the results page), and GET /images/slices/:id.png
 * (signed URLs from Slice.imageUrl: the stored original; with ?window= from Slice.displayUrl: its 8-bit display rendition).
 */
import type http from 'node:http';
import { expressMiddleware } from '@as-integrations/express5';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import type { ApiKeyRing } from '../auth/api-keys.ts';
import type { ImageUrlSigner } from '../auth/image-urls.ts';
import { isDatabaseUnavailable } from '../db/postgres-errors.ts';
import { parseDisplayWindow } from '../imaging/display.ts';
import { createContext } from '../resolvers/context.ts';
import type { Loaders } from '../services/loaders.ts';
import type { Services } from '../services/index.ts';
import { resultsPage } from '../web/results-page.ts';
import { errorAnswer } from './error-status.ts';
import { createApolloServer } from './graphql.ts';
import type { Metrics } from './metrics.ts';
import { bindRequestLog, requestLog, requestLogging } from './request-id.ts';

/** The parts of AppConfig the HTTP surface reads. */
export interface HttpSettings {
  /** Absolute base for imageUrl (FCDN_PUBLIC_URL); default taken from the request's Host. */
  publicUrl?: string;
  maxRequestBytes: number;
  introspection: boolean;
}

export interface HttpDeps {
  settings: HttpSettings;
  services: Services;
  /** A fresh set of DataLoaders for each GraphQL request (made in the composition root). */
  newLoaders: () => Loaders;
  keyRing: ApiKeyRing;
  signer: ImageUrlSigner;
  metrics: Metrics;
  log: Logger;
}

function baseUrl(settings: HttpSettings, req: Request): string {
  return settings.publicUrl?.replace(/\/$/, '') ?? `${req.protocol}://${req.get('host')}`;
}

/** A route's failure as JSON with the status of its code (./error-status.ts); internal errors go on to the last handler. */
function answerError(err: unknown, res: Response, next: NextFunction): void {
  const answer = errorAnswer(err);
  if (answer.source === 'internal') return next(err);
  res.status(answer.status).json({ error: answer.message, code: answer.code });
}

/**
 * Answering before the request's body is read: nothing of it is buffered, and the connection
 * closes after the answer (Node closes it then anyway while a body is unread; said here so it does
 * not depend on that), so the rest of the body is never read.
 */
function refuseUnread(res: Response): void {
  res.set('Connection', 'close');
}

export async function createHttpApp(d: HttpDeps): Promise<{ listener: http.RequestListener; stop(): Promise<void> }> {
  const app = express();
  app.disable('x-powered-by');
  app.use(requestLogging(d.log));
  const apollo = createApolloServer(d.log, d.metrics, d.settings.introspection);
  await apollo.start();

  app.get('/healthz', async (_req, res) => {
    const health = await d.services.health.check();
    if (health.status === 'ok') {
      res.json(health);
      return;
    }
    // No key is needed here, so the answer is a code only; the error's own text (hosts, users,
    // paths) goes to the log (issue 13, item 11).
    const error = health.failed === 'database' || isDatabaseUnavailable(health.err) ? 'DATABASE_UNAVAILABLE' : 'MODEL_UNAVAILABLE';
    requestLog(res, d.log).warn({ err: health.err, error }, 'health check failed');
    res.status(503).json({ status: 'unavailable', error });
  });

  app.get('/metrics', async (_req, res) => {
    res.type(d.metrics.registry.contentType).send(await d.metrics.registry.metrics());
  });

  // The results page at / (src/web): static files; it calls /graphql with the user's own key.
  app.use(resultsPage(d.settings.publicUrl));

  app.get('/images/slices/:file', async (req, res, next) => {
    try {
      const match = /^(\d{1,10})\.png$/.exec(String(req.params.file));
      const sliceId = Number(match?.[1]);
      if (!match || !d.signer.verify(sliceId, Number(req.query.expires), String(req.query.sig ?? ''))) {
        res.status(403).json({ error: 'the image URL is invalid or has expired; ask the API for a new imageUrl' });
        return;
      }
      // ?window=lung|mediastinal: the 8-bit display rendition (Slice.displayUrl); without it the
      // stored original (Slice.imageUrl). The signature covers the slice, not the rendition.
      const window = req.query.window == null ? null : parseDisplayWindow(String(req.query.window));
      const png = await d.services.display.slicePng(sliceId, window);
      res.type('image/png').set('Cache-Control', 'private, max-age=3600').send(png);
    } catch (err) {
      answerError(err, res, next);
    }
  });

  // Large uploads on the filesystem store (S3 gets presigned URLs instead): the signed URL from
  // createSliceUpload is the credential; the body must have the declared length.
  app.put(
    '/uploads/:id',
    async (req: Request, res: Response, next: NextFunction) => {
      const declared = Number(req.get('content-length'));
      if (declared > d.services.uploads.maxBytes) {
        refuseUnread(res);
        res.status(413).json({ error: `the upload is larger than ${d.services.uploads.maxBytes} bytes (FCDN_MAX_UPLOAD_BYTES)` });
        return;
      }
      // The signature (and the upload's declared length) before the body is read (issue 13, item 4).
      try {
        const length = req.get('content-length') == null ? null : declared;
        await d.services.uploads.admit(`uploads/${String(req.params.id)}`, Number(req.query.expires), String(req.query.sig ?? ''), length);
      } catch (err) {
        refuseUnread(res);
        return answerError(err, res, next);
      }
      next();
    },
    express.raw({ type: () => true, limit: d.services.uploads.maxBytes }),
    async (req: Request, res: Response, next: NextFunction) => {
      try {
        const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
        await d.services.uploads.receive(`uploads/${String(req.params.id)}`, Number(req.query.expires), String(req.query.sig ?? ''), body);
        res.status(200).json({ key: `uploads/${String(req.params.id)}`, bytes: body.length });
      } catch (err) {
        answerError(err, res, next);
      }
    },
    // A body without Content-Length that grows past the limit.
    (err: Error & { type?: string }, _req: Request, res: Response, next: NextFunction) => {
      if (err.type !== 'entity.too.large' || res.headersSent) return next(err);
      res.status(413).json({ error: `the upload is larger than ${d.services.uploads.maxBytes} bytes (FCDN_MAX_UPLOAD_BYTES)` });
    },
  );

  app.use(
    '/graphql',
    // The caller before the body (issue 13, item 4): every operation needs a key of some role, so
    // a request without a valid one is UNAUTHENTICATED before express.json reads up to
    // FCDN_MAX_REQUEST_BYTES. The operation's own role is checked by its resolver, after parsing.
    (req: Request, res: Response, next: NextFunction) => {
      // Any request with a body, whatever its method (express.json reads a GET's or PUT's too).
      if (req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined) return next();
      try {
        d.keyRing.authenticate(req.headers.authorization);
      } catch (err) {
        refuseUnread(res);
        const answer = errorAnswer(err);
        res.status(answer.status).json({ errors: [{ message: answer.message, extensions: { code: answer.code } }] });
        return;
      }
      next();
    },
    express.json({ limit: d.settings.maxRequestBytes }),
    bindRequestLog(d.log),
    expressMiddleware(apollo, {
      context: async ({ req, res }) =>
        createContext(d.services, d.newLoaders(), d.keyRing, d.signer, req.headers.authorization, baseUrl(d.settings, req), requestLog(res, d.log)),
    }),
  );

  // The last handler: body-parser errors (too large, not JSON) and whatever a route did not
  // answer, in GraphQL's error shape with a code.
  app.use((err: Error & { type?: string; status?: number }, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(err);
    if (err.type === 'entity.too.large') {
      return res.status(413).json({ errors: [{ message: `the request is larger than ${d.settings.maxRequestBytes} bytes; send fewer or smaller slices`, extensions: { code: 'BAD_USER_INPUT' } }] });
    }
    if (err.type === 'entity.parse.failed') {
      return res.status(400).json({ errors: [{ message: 'the request body is not valid JSON', extensions: { code: 'BAD_USER_INPUT' } }] });
    }
    const answer = errorAnswer(err);
    if (answer.source === 'internal') requestLog(res, d.log).error({ err }, 'unhandled HTTP error');
    res.status(answer.status).json({ errors: [{ message: answer.source === 'internal' ? 'internal error' : answer.message, extensions: { code: answer.code } }] });
  });

  return { listener: app, stop: () => apollo.stop() };
}
