/**
 * The API process on top of the composition root (./core.ts): GraphQL and HTTP, the object
 * janitor, and (FCDN_IN_PROCESS_WORKER, on by default) the reindex worker and upload sweeper.
 * main.ts and the tests start the service through startService.
 */
import type http from 'node:http';
import { ApiKeyRing, embeddedAdminKey } from './auth/api-keys.ts';
import { ImageUrlSigner } from './auth/image-urls.ts';
import type { AppConfig } from './config.ts';
import { buildCore, startWorker, type BackgroundWork, type Core, type CoreOverrides } from './core.ts';
import { createHttpApp } from './http/http-app.ts';
import type { ReindexWorker, ReindexWorkerOptions } from './services/reindex-worker.ts';

export interface ServiceOverrides extends CoreOverrides {
  worker?: Partial<ReindexWorkerOptions>;
}

export interface RunningService extends Core {
  worker: ReindexWorker | null;
  handler: http.RequestListener;
  /** The generated admin key when no keys are configured. */
  adminKey: string | null;
  /** Stops the API, its background work and the core, in order. */
  close(): Promise<void>;
  /** While close() runs: the part it is waiting for (for the log line of a shutdown that overruns its bound). */
  closingStep(): string | null;
}

export async function startService(config: AppConfig, overrides: ServiceOverrides = {}): Promise<RunningService> {
  return startApi(await buildCore(config, overrides), overrides.worker);
}

export async function startApi(core: Core, workerOptions: Partial<ReindexWorkerOptions> = {}): Promise<RunningService> {
  const { config, log, services } = core;
  let background: BackgroundWork | null = null;
  try {
    let adminKey: string | null = null;
    let keys = config.apiKeys;
    if (keys.length === 0) {
      const made = embeddedAdminKey(config.dataDir);
      adminKey = made.key;
      keys = [{ role: 'admin', key: made.key }];
      log.info({ file: made.file }, made.created ? 'no FCDN_API_KEYS configured: created an admin key' : 'no FCDN_API_KEYS configured: using the admin key in the data folder');
    }
    const keyRing = new ApiKeyRing(keys);
    const signer = new ImageUrlSigner(core.urlSecret);

    background = config.inProcessWorker ? startWorker(core, workerOptions) : null;
    // Removes images whose rows are gone or never committed, retrying while the store is down.
    services.janitor.start();
    // Rebuilds the searched models' blocks of the compiled search when missing or too dirty.
    services.blockUpkeep.start();

    const handler = await createHttpApp({ settings: config, services, newLoaders: core.newLoaders, keyRing, signer, metrics: core.metrics, log });
    let closingStep: string | null = null;
    const step = async (name: string, stop: () => Promise<void> | undefined) => {
      closingStep = name;
      await stop();
    };
    const work = background;
    return {
      ...core,
      worker: work?.worker ?? null,
      handler: handler.listener,
      adminKey,
      async close() {
        await work?.stop(step);
        await step('the object janitor', () => services.janitor.stop());
        await step('the search block upkeep', () => services.blockUpkeep.stop());
        await step('the GraphQL server (requests in flight)', () => handler.stop());
        await core.close(step);
        closingStep = null;
      },
      closingStep: () => closingStep,
    };
  } catch (err) {
    await background?.stop();
    await services.janitor.stop();
    await services.blockUpkeep.stop();
    await core.close();
    throw err;
  }
}
