/**
 * `npm run worker`: a reindex worker without the API, for GPU nodes or extra CPU. Several workers
 * share the Postgres job queue (claims use FOR UPDATE SKIP LOCKED). Needs DATABASE_URL.
 */
import { loadConfig } from './config.ts';
import { buildCore, startWorker } from './core.ts';

const config = loadConfig();
if (!config.databaseUrl) {
  console.error('fcdn worker: set DATABASE_URL; the embedded database is used by the API process alone');
  process.exit(1);
}
// Signing URLs is the API's business; the worker registers no model (it works on the jobs' models).
const core = await buildCore(config, { urlSecret: 'ephemeral', registerModel: false });
const background = startWorker(core);
core.log.info({ workerId: background.worker.workerId }, 'reindex worker started');
// The shutdown lets the current batch finish, within FCDN_SHUTDOWN_TIMEOUT_MS as the API's does
// (src/main.ts): a database that does not answer does not keep the process alive past it.
let closing: string | null = null;
let started = 0;
const step = async (name: string, stop: () => Promise<void> | undefined) => {
  closing = name;
  await stop();
};
const shutdown = (signal: NodeJS.Signals) => {
  if (started) {
    core.log.warn({ signal }, `${signal} again while shutting down: exiting now with status 1. Still open: closing ${closing ?? 'nothing yet'}`);
    process.exit(1);
  }
  started = Date.now();
  core.log.info({ signal, timeoutMs: config.shutdownTimeoutMs }, 'shutting down');
  setTimeout(() => {
    const open = [`closing ${closing ?? 'nothing yet'}`, `${((Date.now() - started) / 1000).toFixed(1)} s since the signal`];
    core.log.error({ signal, timeoutMs: config.shutdownTimeoutMs, stillOpen: open }, `shutdown did not finish within ${config.shutdownTimeoutMs} ms (FCDN_SHUTDOWN_TIMEOUT_MS); exiting with status 1. Still open: ${open.join('; ')}`);
    process.exit(1);
  }, config.shutdownTimeoutMs).unref();
  background
    .stop(step)
    .then(() => core.close(step))
    .then(
      () => {
        core.log.info({ ms: Date.now() - started }, 'shut down');
        process.exit(0);
      },
      (err) => {
        core.log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
};
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
