/**
 * `npm run worker`: a reindex worker without the API, for GPU nodes or extra CPU. Several workers
 * share the Postgres job queue (claims use FOR UPDATE SKIP LOCKED). Needs DATABASE_URL.
 */
import crypto from 'node:crypto';
import pino from 'pino';
import { UploadUrlSigner } from './auth/upload-urls.ts';
import { loadConfig } from './config.ts';
import { openDatabase } from './db/database.ts';
import { migrate } from './db/migrator.ts';
import { FcdnEncoder, SlicePreparer } from './inference/index.ts';
import { createRepositories } from './repositories/index.ts';
import { ModelService } from './services/model.service.ts';
import { ReindexWorker } from './services/reindex-worker.ts';
import { UploadService, UploadSweeper } from './services/upload.service.ts';
import { createObjectStore } from './storage/index.ts';

const config = loadConfig();
const log = pino({ level: config.logLevel });
if (!config.databaseUrl) {
  console.error('fcdn worker: set DATABASE_URL; the embedded database is used by the API process alone');
  process.exit(1);
}
const db = await openDatabase({ databaseUrl: config.databaseUrl, timeouts: config.databaseTimeouts });
await migrate(db.raw);
const repos = createRepositories(db.prisma, {
  searchMethod: config.searchMethod,
  sliceWindow: config.sliceWindow,
  onBlockRebuildError: (err) => log.warn({ err }, 'background rebuild of search blocks failed'),
});
const store = await createObjectStore(config);
const models = new ModelService(repos, (p) => FcdnEncoder.load(p, config.executionProvider, log));
const preparer = new SlicePreparer(config.decoding);
const worker = new ReindexWorker(repos, models, store, preparer.prepareInBackground, log, { ...config.reindex, pollMs: 2000 });
worker.start();
// Also removes uploads that expired without becoming a case (signing is the API's business).
const sweeper = new UploadSweeper(new UploadService(repos, store, new UploadUrlSigner(crypto.randomBytes(32)), config.uploads, log), config.uploads.sweepIntervalMs, log);
sweeper.start();
log.info({ workerId: worker.workerId }, 'reindex worker started');
const shutdown = () => Promise.all([worker.stop(), sweeper.stop()]).then(() => Promise.all([preparer.close(), db.close()])).then(() => process.exit(0));
process.once('SIGINT', shutdown);
process.once('SIGTERM', shutdown);
