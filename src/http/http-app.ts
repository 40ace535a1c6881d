/**
 * The HTTP surface: POST /graphql, GET /healthz, GET /metrics, and GET /images/slices/:id.png
 * (signed URLs from Slice.imageUrl).
 */
import type http from 'node:http';
import { expressMiddleware } from '@as-integrations/express5';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import type { ApiKeyRing } from '../auth/api-keys.ts';
import type { ImageUrlSigner } from '../auth/image-urls.ts';
import type { AppConfig } from '../config.ts';
import type { Database } from '../db/database.ts';
import { NotFoundError } from '../errors.ts';
import { createContext } from '../resolvers/context.ts';
import { createLoaders } from '../resolvers/loaders.ts';
import type { Services } from '../services/index.ts';
import { createApolloServer } from './graphql.ts';
import type { Metrics } from './metrics.ts';

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
  const apollo = createApolloServer(d.log, d.metrics, true);
  await apollo.start();

  app.get('/healthz', async (_req, res) => {
    try {
      await d.db.raw.query('SELECT 1');
      const model = await d.services.models.active();
      res.json({ status: 'ok', database: d.db.kind, objectStore: d.services.store.kind, model: model.version.name, executionProvider: model.encoder.executionProvider });
    } catch (err) {
      d.log.warn({ err }, 'health check failed');
      res.status(503).json({ status: 'unavailable', error: (err as Error).message });
    }
  });

  app.get('/metrics', async (_req, res) => {
    res.type(d.metrics.registry.contentType).send(await d.metrics.registry.metrics());
  });

  app.get('/images/slices/:file', async (req, res, next) => {
    try {
      const match = /^(\d{1,10})\.png$/.exec(String(req.params.file));
      const sliceId = Number(match?.[1]);
      if (!match || !d.signer.verify(sliceId, Number(req.query.expires), String(req.query.sig ?? ''))) {
        res.status(403).json({ error: 'the image URL is invalid or has expired; ask the API for a new imageUrl' });
        return;
      }
      const slice = await d.services.repos.slices.findById(sliceId);
      if (!slice) throw new NotFoundError('no such slice');
      const png = await d.services.store.get(slice.imageKey);
      res.type('image/png').set('Cache-Control', 'private, max-age=3600').send(png);
    } catch (err) {
      next(err);
    }
  });

  app.use(
    '/graphql',
    express.json({ limit: d.config.maxRequestBytes }),
    expressMiddleware(apollo, {
      context: async ({ req }) =>
        createContext(d.services, createLoaders(d.services.repos), d.keyRing, d.signer, req.headers.authorization, baseUrl(d.config, req)),
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
    d.log.error({ err }, 'unhandled HTTP error');
    res.status(500).json({ errors: [{ message: 'internal error', extensions: { code: 'INTERNAL_SERVER_ERROR' } }] });
  });

  return { listener: app, stop: () => apollo.stop() };
}
