/**
 * The composition root. buildCore(config) makes what every process of this service shares: the
 * database (opened and migrated), the extensions it has, the repositories, the object store, the
 * slice decoding threads, the model encoder loader, the metrics and the services, and registers
 * FCDN_MODEL. On top of it:
 *   - startApi(core) (./app.ts): GraphQL and HTTP, the object janitor, and by default the
 *     in-process background work (startWorker);
 *   - startWorker(core) (here): the reindex worker and the upload sweeper (`npm run worker`, or
 *     inside the API process);
 *   - the import CLI, `npm run eval` and the benchmarks call the services of a core directly.
 * Nothing else opens a database, builds repositories or loads a model for the service.
 */
import crypto from 'node:crypto';
import path from 'node:path';
import pino, { type Logger } from 'pino';
import { PatientKeyHasher, patientKeySecret } from './auth/patient-keys.ts';
import { UploadUrlSigner } from './auth/upload-urls.ts';
import { urlSigningSecret } from './auth/url-secret.ts';
import type { AppConfig } from './config.ts';
import { openDatabase, type Database } from './db/database.ts';
import { ReadNodes, readNodeName, type ReadNode } from './db/read-nodes.ts';
import { migrate } from './db/migrator.ts';
import type { ModelVersion } from './repositories/records.ts';
import { createMetrics, type Metrics } from './http/metrics.ts';
import { SlicePreparer } from './imaging/index.ts';
import { FcdnEncoder } from './inference/index.ts';
import { DicomwebClient } from './pacs/dicomweb-client.ts';
import { createRepositories, type Repositories } from './repositories/index.ts';
import { SystemRepository, type DatabaseExtensions } from './repositories/system.repository.ts';
import { createLoaders, type Loaders } from './services/loaders.ts';
import { createServices, type Services } from './services/index.ts';
import { ReindexWorker, type ReindexWorkerOptions } from './services/reindex-worker.ts';
import { UploadSweeper } from './services/upload.service.ts';
import { createObjectStore } from './storage/index.ts';
import type { ObjectStore } from './storage/object-store.ts';

export interface CoreOverrides {
  log?: Logger;
  /** An already open (and migrated) database, which the core does not close (tests share the test-database factory). */
  database?: Database;
  /** Wraps the configured object store (tests inject store faults through it). */
  wrapStore?: (store: ObjectStore) => ObjectStore;
  /**
   * The secret of signed URLs: `configured` (the API, the import): FCDN_URL_SECRET or the one in
   * the data folder (src/auth/url-secret.ts); `ephemeral`: random, valid in this process only
   * (a worker or a tool serves no URLs). Default configured.
   */
  urlSecret?: 'configured' | 'ephemeral';
  /** Register FCDN_MODEL at start (the first model registered becomes active). Default true. */
  registerModel?: boolean;
}

export interface Core {
  config: AppConfig;
  log: Logger;
  db: Database;
  /** For the composition root, the tests and the benchmarks; the HTTP layer sees services only. */
  repos: Repositories;
  store: ObjectStore;
  /** Installed and available versions of vector and fcdn_search, read once at start. */
  extensions: DatabaseExtensions;
  metrics: Metrics;
  /** The slice decoding threads; main.ts starts them early (warmUp). */
  preparer: SlicePreparer;
  services: Services;
  /** The secret of signed image and upload URLs. */
  urlSecret: Buffer;
  /** FCDN_MODEL as registered at start (null with registerModel: false). */
  model: ModelVersion | null;
  /** A new set of per-request DataLoaders (GraphQL). */
  newLoaders(): Loaders;
  /** A reindex job was queued: wakes this process's reindex worker, if startWorker made one. */
  reindexQueued: { notify(): void; subscribe(listener: () => void): void };
  /** Closes the decoding threads and the database (unless it was given); `step` names each part while it runs. */
  close(step?: CloseStep): Promise<void>;
}

export type CloseStep = (name: string, stop: () => Promise<void> | undefined) => Promise<void>;
const justRun: CloseStep = async (_name, stop) => void (await stop());

export async function buildCore(config: AppConfig, overrides: CoreOverrides = {}): Promise<Core> {
  const log = overrides.log ?? pino({ level: config.logLevel, redact: ['req.headers.authorization'] });
  const db = overrides.database ?? (await openDatabase({ databaseUrl: config.databaseUrl, pgliteDir: path.join(config.dataDir, 'pglite'), timeouts: config.databaseTimeouts }));
  let preparer: SlicePreparer | null = null;
  let readNodes: ReadNodes | null = null;
  try {
    const applied = await migrate(db.raw);
    if (applied.length) log.info({ applied }, 'database migrated');
    const extensions = await new SystemRepository(db.raw).extensions();
    log.info({ vector: extensions.vector, fcdn_search: extensions.fcdnSearch }, 'database extensions');

    let urlSecret: Buffer;
    if ((overrides.urlSecret ?? 'configured') === 'configured') {
      // Never derived from the keys (issue 13, item 7): src/auth/url-secret.ts.
      const made = urlSigningSecret({ configured: config.urlSecret, keysConfigured: config.apiKeys.length > 0, dataDir: config.dataDir });
      if (made.created) log.info({ file: made.file }, 'no FCDN_URL_SECRET configured: created a URL signing secret in the data folder');
      urlSecret = Buffer.from(made.secret);
    } else {
      urlSecret = crypto.randomBytes(32);
    }

    // The PACS, when configured; its imports' patient keys need a secret shared by every replica.
    let pacs: { client: DicomwebClient; patientKeys: PatientKeyHasher } | null = null;
    if (config.dicomweb) {
      const made = patientKeySecret({ configured: config.patientKeySecret, keysConfigured: config.apiKeys.length > 0, sharedDatabase: config.databaseUrl !== undefined, dataDir: config.dataDir });
      if (made.created) log.info({ file: made.file }, 'no FCDN_PATIENT_KEY_SECRET configured: created a patient key secret in the data folder');
      const client = new DicomwebClient(config.dicomweb);
      pacs = { client, patientKeys: new PatientKeyHasher(made.secret) };
      log.info({ pacs: client.origin, auth: config.dicomweb.auth.kind }, 'PACS configured (DICOMweb)');
    }

    const configured = await createObjectStore(config);
    const store = overrides.wrapStore ? overrides.wrapStore(configured) : configured;
    const metrics = createMetrics({ poolStats: db.poolStats, decodeWaiting: () => preparer?.waiting ?? { requests: 0, background: 0 } });
    readNodes = await openReadNodes(config, db, metrics, log);
    const repos = createRepositories(db, {
      readNodes,
      searchMethod: config.searchMethod,
      sliceWindow: config.sliceWindow,
      fcdnSearchInstalled: extensions.fcdnSearch.installed != null,
      onBlockRebuildError: (err) => log.warn({ err }, 'background rebuild of search blocks failed; searches stay exact (plain SQL for what is not in blocks) and it is retried after a later search'),
      onBlocksNeeded: () => services.blockUpkeep.wake(),
    });
    preparer = new SlicePreparer({ ...config.decoding, onAbandoned: (reason) => metrics.decodeAbandoned.inc({ reason }) });
    const listeners: (() => void)[] = [];
    const reindexQueued = { notify: () => listeners.forEach((l) => l()), subscribe: (l: () => void) => void listeners.push(l) };
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
      platform: { database: db.kind, objectStore: store.kind, extensions },
      wakeReindexWorker: reindexQueued.notify,
      onSearch: (ms, kind, stages) => {
        metrics.searchSeconds.observe({ query_kind: kind }, ms / 1000);
        for (const [stage, stageMs] of Object.entries(stages)) if (stageMs !== undefined) metrics.searchStageSeconds.observe({ stage }, stageMs / 1000);
      },
      onIngest: (outcome, slices) => {
        metrics.ingestCases.inc({ outcome });
        metrics.ingestSlices.inc(slices);
      },
      janitor: config.objectJanitor,
      searchBlockUpkeepMs: config.searchBlockUpkeepMs,
      uploads: { signer: new UploadUrlSigner(urlSecret), settings: config.uploads },
      pacs,
      viewerUrlTemplate: config.viewerUrlTemplate,
    });
    let model: ModelVersion | null = null;
    if (overrides.registerModel ?? true) {
      // A missing or corrupt model stops the start here, with the loader's message.
      model = await services.models.register(config.modelPath);
      log.info({ model: model.name, id: model.id, active: model.active }, 'model registered');
    }
    const threads = preparer;
    const replicas = readNodes;
    return {
      config,
      log,
      db,
      repos,
      store,
      extensions,
      metrics,
      preparer: threads,
      services,
      urlSecret,
      model,
      newLoaders: () => createLoaders(repos),
      reindexQueued,
      async close(step = justRun) {
        await step('the slice decoding threads', () => threads.close());
        if (replicas.replicas.length) await step('the read replicas', () => replicas.close());
        await step(`the ${db.kind} database`, () => (overrides.database ? undefined : db.close()));
      },
    };
  } catch (err) {
    await preparer?.close();
    await readNodes?.close();
    if (!overrides.database) await db.close().catch(() => {});
    throw err;
  }
}

/**
 * The read replicas of FCDN_READ_DATABASE_URL, opened like the primary (a replica that does not
 * answer at start is only left out: reads go to the primary until a probe reaches it), with
 * their metrics and log lines.
 */
async function openReadNodes(config: AppConfig, db: Database, metrics: Metrics, log: Logger): Promise<ReadNodes> {
  const replicas: ReadNode[] = [];
  for (const url of config.readNodes.urls) {
    replicas.push({ name: readNodeName(url), db: await openDatabase({ databaseUrl: url, timeouts: config.databaseTimeouts }) });
  }
  for (const node of replicas) metrics.readNodeUp.set({ node: node.name }, 1);
  const nodes = new ReadNodes({ name: 'primary', db }, replicas, {
    probeEveryMs: config.readNodes.probeEveryMs,
    onDown(node, err) {
      metrics.readNodeUp.set({ node }, 0);
      metrics.readNodeFallbacks.inc({ node });
      log.warn({ err, node }, 'read replica unreachable: its reads go to the primary until it answers again');
    },
    onUp(node) {
      metrics.readNodeUp.set({ node }, 1);
      log.info({ node }, 'read replica answers again: reads go to it');
    },
    onRead: (node) => metrics.reads.inc({ node }),
  });
  if (replicas.length) log.info({ replicas: replicas.map((n) => n.name) }, 'searches, listings and image reads go to the read replicas');
  return nodes;
}

export interface BackgroundWork {
  worker: ReindexWorker;
  sweeper: UploadSweeper;
  /** Lets the current reindex batch and sweep finish. */
  stop(step?: CloseStep): Promise<void>;
}

/**
 * The reindex worker (several processes share the Postgres job queue; claims use FOR UPDATE SKIP
 * LOCKED) and the sweeper of expired uploads, started.
 */
export function startWorker(core: Core, options: Partial<ReindexWorkerOptions> = {}): BackgroundWork {
  const { config, db, repos, services, store, preparer, log, metrics } = core;
  const worker = new ReindexWorker(repos, services.models, store, preparer.prepareInBackground, log, {
    ...config.reindex,
    // PGlite allows one process, so a RUNNING job found at start was orphaned by a previous run.
    staleAfterMs: db.kind === 'pglite' ? 0 : config.reindex.staleAfterMs,
    pollMs: 2000,
    onProgress: (job) => metrics.reindexDone.set({ job_id: String(job.id) }, job.done),
    ...options,
  });
  core.reindexQueued.subscribe(() => worker.notify());
  worker.start();
  // Removes uploads that expired without becoming a case.
  const sweeper = new UploadSweeper(services.uploads, config.uploads.sweepIntervalMs, log);
  sweeper.start();
  return {
    worker,
    sweeper,
    async stop(step = justRun) {
      await step('the reindex worker', () => worker.stop());
      await step('the upload sweeper', () => sweeper.stop());
    },
  };
}
