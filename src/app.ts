/**
 * The composition root: opens the database (and migrates it), the object store and the model,
 * wires repositories -> services -> GraphQL/HTTP, and starts the in-process reindex worker.
 * main.ts, worker.ts and the tests all build the service through here.
 */
import path from 'node:path';
import type http from 'node:http';
import pino, { type Logger } from 'pino';
import { ApiKeyRing, embeddedAdminKey } from './auth/api-keys.ts';
import { ImageUrlSigner } from './auth/image-urls.ts';
import { UploadUrlSigner } from './auth/upload-urls.ts';
import { urlSigningSecret } from './auth/url-secret.ts';
import type { AppConfig } from './config.ts';
import { openDatabase, type Database } from './db/database.ts';
import { migrate } from './db/migrator.ts';
import { createHttpApp } from './http/http-app.ts';
import { createMetrics } from './http/metrics.ts';
import { FcdnEncoder, SlicePreparer } from './inference/index.ts';
import { createRepositories } from './repositories/index.ts';
import { createServices, type Services } from './services/index.ts';
import { ReindexWorker, type ReindexWorkerOptions } from './services/reindex-worker.ts';
import { UploadSweeper } from './services/upload.service.ts';
import { createObjectStore } from './storage/index.ts';
import type { ObjectStore } from './storage/object-store.ts';

export interface ServiceOverrides {
  log?: Logger;
  /** An already open database (tests share the test-database factory). */
  database?: Database;
  worker?: Partial<ReindexWorkerOptions>;
  /** Wraps the configured object store (tests inject store faults through it). */
  wrapStore?: (store: ObjectStore) => ObjectStore;
}

export interface RunningService {
  config: AppConfig;
  db: Database;
  services: Services;
  worker: ReindexWorker | null;
  /** The slice decoding threads; main.ts starts them early (warmUp). */
  preparer: SlicePreparer;
  log: Logger;
  handler: http.RequestListener;
  /** The generated admin key when no keys are configured. */
  adminKey: string | null;
  close(): Promise<void>;
  /** While close() runs: the part it is waiting for (for the log line of a shutdown that overruns its bound). */
  closingStep(): string | null;
}

export async function startService(config: AppConfig, overrides: ServiceOverrides = {}): Promise<RunningService> {
  const log = overrides.log ?? pino({ level: config.logLevel, redact: ['req.headers.authorization'] });
  const db = overrides.database ?? (await openDatabase({ databaseUrl: config.databaseUrl, pgliteDir: path.join(config.dataDir, 'pglite'), timeouts: config.databaseTimeouts }));
  let closeOnFailure = async () => {};
  try {
    const applied = await migrate(db.raw);
    if (applied.length) log.info({ applied }, 'database migrated');

    let adminKey: string | null = null;
    let keys = config.apiKeys;
    if (keys.length === 0) {
      const made = embeddedAdminKey(config.dataDir);
      adminKey = made.key;
      keys = [{ role: 'admin', key: made.key }];
      log.info({ file: made.file }, made.created ? 'no FCDN_API_KEYS configured: created an admin key' : 'no FCDN_API_KEYS configured: using the admin key in the data folder');
    }
    const keyRing = new ApiKeyRing(keys);
    // Never derived from the keys (issue 13, item 7): src/auth/url-secret.ts.
    const urlSecret = urlSigningSecret({ configured: config.urlSecret, keysConfigured: config.apiKeys.length > 0, dataDir: config.dataDir });
    if (urlSecret.created) log.info({ file: urlSecret.file }, 'no FCDN_URL_SECRET configured: created a URL signing secret in the data folder');
    const secret = urlSecret.secret;
    const signer = new ImageUrlSigner(Buffer.from(secret));

    const configured = await createObjectStore(config);
    const store = overrides.wrapStore ? overrides.wrapStore(configured) : configured;
    const metrics = createMetrics({ poolStats: db.poolStats });
    const repos = createRepositories(db.prisma, {
      searchMethod: config.searchMethod,
      sliceWindow: config.sliceWindow,
      onBlockRebuildError: (err) => log.warn({ err }, 'background rebuild of search blocks failed; searches stay exact (plain SQL for what is not in blocks) and it is retried after a later search'),
    });
    const preparer = new SlicePreparer({ ...config.decoding, onAbandoned: (reason) => metrics.decodeAbandoned.inc({ reason }) });
    closeOnFailure = () => preparer.close();
    let worker: ReindexWorker | null = null;
    const services = createServices({
      repos,
      store,
      loadEncoder: (modelPath) =>
        FcdnEncoder.load(modelPath, config.executionProvider, log, {
          threads: config.inferenceThreads,
          onRun: (seconds, patches) => {
            metrics.inferenceSeconds.observe(seconds);
            metrics.inferencePatches.inc(patches);
          },
        }),
      prepare: preparer.prepare,
      log,
      wakeReindexWorker: () => worker?.notify(),
      onSearch: (ms, kind) => metrics.searchSeconds.observe({ query_kind: kind }, ms / 1000),
      onIngest: (outcome, slices) => {
        metrics.ingestCases.inc({ outcome });
        metrics.ingestSlices.inc(slices);
      },
      janitor: config.objectJanitor,
      uploads: { signer: new UploadUrlSigner(Buffer.from(secret)), settings: config.uploads },
    });
    // A missing or corrupt model stops the start here, with the loader's message.
    const model = await services.models.register(config.modelPath);
    log.info({ model: model.name, id: model.id, active: model.active }, 'model registered');

    if (config.inProcessWorker) {
      worker = new ReindexWorker(repos, services.models, store, preparer.prepareInBackground, log, {
        ...config.reindex,
        // PGlite allows one process, so a RUNNING job found at start was orphaned by a previous run.
        staleAfterMs: db.kind === 'pglite' ? 0 : config.reindex.staleAfterMs,
        pollMs: 2000,
        onProgress: (job) => metrics.reindexDone.set({ job_id: String(job.id) }, job.done),
        ...overrides.worker,
      });
      worker.start();
    }
    // Background work beside the reindex worker: removes uploads that expired without becoming a case.
    const sweeper = config.inProcessWorker ? new UploadSweeper(services.uploads, config.uploads.sweepIntervalMs, log) : null;
    sweeper?.start();
    // Removes images whose rows are gone or never committed, retrying while the store is down.
    services.janitor.start();

    const handler = await createHttpApp({ config, services, keyRing, signer, metrics, log, db });
    let closingStep: string | null = null;
    const step = async (name: string, stop: () => Promise<void> | undefined) => {
      closingStep = name;
      await stop();
    };
    return {
      config,
      db,
      services,
      worker,
      preparer,
      log,
      handler: handler.listener,
      adminKey,
      async close() {
        await step('the reindex worker', () => worker?.stop());
        await step('the upload sweeper', () => sweeper?.stop());
        await step('the object janitor', () => services.janitor.stop());
        await step('the GraphQL server (requests in flight)', () => handler.stop());
        await step('the slice decoding threads', () => preparer.close());
        await step(`the ${db.kind} database`, () => (overrides.database ? undefined : db.close()));
        closingStep = null;
      },
      closingStep: () => closingStep,
    };
  } catch (err) {
    await closeOnFailure();
    if (!overrides.database) await db.close().catch(() => {});
    throw err;
  }
}
