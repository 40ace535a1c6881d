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
import type { AppConfig } from '../config.ts';
import { isDatabaseUnavailable } from '../db/connection-errors.ts';
import type { Database } from '../db/database.ts';
import { BadInputError, DomainError, NotFoundError } from '../errors.ts';
import { parseDisplayWindow } from '../inference/display.ts';
import { createContext } from '../resolvers/context.ts';
import { createLoaders } from '../resolvers/loaders.ts';
import type { Services } from '../services/index.ts';
import { resultsPage } from '../web/results-page.ts';
import { createApolloServer } from './graphql.ts';
import type { Metrics } from './metrics.ts';
import { bindRequestLog, requestLog, requestLogging } from './request-id.ts';

export interface HttpDeps {
  config: AppConfig;
  services: Services;
  keyRing: ApiKeyRing;
  signer: ImageUrlSigner;
  metrics: Metrics;
  log: Logger;
  db: Database;
}

function baseUrl(config: AppConfig, req: Request): string {
  return config.publicUrl?.replace(/\/$/, '') ?? `${req.protocol}://${req.get('host')}`;
}

export async function createHttpApp(d: HttpDeps): Promise<{ listener: http.RequestListener; stop(): Promise<void> }> {
  const app = express();
  app.disable('x-powered-by');
  app.use(requestLogging(d.log));
  const apollo = createApolloServer(d.log, d.metrics, d.config.introspection);
  await apollo.start();

  app.get('/healthz', async (_req, res) => {
    let databaseAnswered = false;
    try {
      await d.db.raw.query('SELECT 1');
      databaseAnswered = true;
      const model = await d.services.models.active();
      res.json({ status: 'ok', database: d.db.kind, objectStore: d.services.store.kind, model: model.version.name, executionProvider: model.encoder.executionProvider });
    } catch (err) {
      // No key is needed here, so the answer is a code only; the error's own text (hosts, users,
      // paths) goes to the log (issue 13, item 11).
      const error = isDatabaseUnavailable(err) || !databaseAnswered ? 'DATABASE_UNAVAILABLE' : 'MODEL_UNAVAILABLE';
      requestLog(res, d.log).warn({ err, error }, 'health check failed');
      res.status(503).json({ status: 'unavailable', error });
    }
  });

  app.get('/metrics', async (_req, res) => {
    res.type(d.metrics.registry.contentType).send(await d.metrics.registry.metrics());
  });

  // The results page at / (src/web): static files; it calls /graphql with the user's own key.
  app.use(resultsPage(d.config.publicUrl));

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
      if (err instanceof BadInputError) {
        res.status(400).json({ error: err.message, code: err.code });
        return;
      }
      next(err);
    }
  });

  // Large uploads on the filesystem store (S3 gets presigned URLs instead): the signed URL from
  // createSliceUpload is the credential; the body must have the declared length.
  app.put(
    '/uploads/:id',
    (req: Request, res: Response, next: NextFunction) => {
      const declared = Number(req.get('content-length'));
      if (declared > d.services.uploads.maxBytes) {
        res.status(413).json({ error: `the upload is larger than ${d.services.uploads.maxBytes} bytes (FCDN_MAX_UPLOAD_BYTES)` });
        return;
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
        if (err instanceof DomainError) {
          const status = ({ FORBIDDEN: 403, NOT_FOUND: 404, BAD_USER_INPUT: 400, UNAUTHENTICATED: 401 } as Record<string, number>)[err.code] ?? 503;
          res.status(status).json({ error: err.message, code: err.code });
          return;
        }
        next(err);
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
    express.json({ limit: d.config.maxRequestBytes }),
    bindRequestLog(d.log),
    expressMiddleware(apollo, {
      context: async ({ req, res }) =>
        createContext(d.services, createLoaders(d.services.repos), d.keyRing, d.signer, req.headers.authorization, baseUrl(d.config, req), requestLog(res, d.log)),
    }),
  );

  // Body-parser errors (too large, not JSON) answer in GraphQL's error shape with a code.
  app.use((err: Error & { type?: string; status?: number }, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(err);
    if (err instanceof NotFoundError) return res.status(404).json({ error: err.message });
    if (err.type === 'entity.too.large') {
      return res.status(413).json({ errors: [{ message: `the request is larger than ${d.config.maxRequestBytes} bytes; send fewer or smaller slices`, extensions: { code: 'BAD_USER_INPUT' } }] });
    }
    if (err.type === 'entity.parse.failed') {
      return res.status(400).json({ errors: [{ message: 'the request body is not valid JSON', extensions: { code: 'BAD_USER_INPUT' } }] });
    }
    requestLog(res, d.log).error({ err }, 'unhandled HTTP error');
    res.status(500).json({ errors: [{ message: 'internal error', extensions: { code: 'INTERNAL_SERVER_ERROR' } }] });
  });

  return { listener: app, stop: () => apollo.stop() };
}
