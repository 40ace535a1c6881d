/**
 * GET /healthz: does the database answer, and can the active model encode? Also what the
 * service runs on (database kind, object store, execution provider, database extensions).
 */
import type { Repositories } from '../repositories/index.ts';
import type { DatabaseExtensions } from '../repositories/system.repository.ts';
import type { ModelService } from './model.service.ts';

/** What this process runs on, fixed at start. */
export interface Platform {
  database: 'postgres' | 'pglite';
  objectStore: 's3' | 'filesystem';
  /** Read once at start (buildCore); they decide FCDN_SEARCH_METHOD=auto. */
  extensions: DatabaseExtensions;
}

export type Health =
  | { status: 'ok'; database: Platform['database']; objectStore: Platform['objectStore']; model: string; executionProvider: string; extensions: Record<string, string | null> }
  /** failed: which part failed first; the error itself is for the log only (it can name hosts and users). */
  | { status: 'unavailable'; failed: 'database' | 'model'; err: unknown };

export class HealthService {
  constructor(
    private readonly repos: Repositories,
    private readonly models: ModelService,
    readonly platform: Platform,
  ) {}

  async check(): Promise<Health> {
    try {
      await this.repos.system.ping();
    } catch (err) {
      return { status: 'unavailable', failed: 'database', err };
    }
    try {
      const model = await this.models.active();
      const { database, objectStore, extensions } = this.platform;
      return {
        status: 'ok',
        database,
        objectStore,
        model: model.version.name,
        executionProvider: model.encoder.executionProvider,
        // The installed versions (null: not installed).
        extensions: { vector: extensions.vector.installed, fcdn_search: extensions.fcdnSearch.installed },
      };
    } catch (err) {
      return { status: 'unavailable', failed: 'model', err };
    }
  }
}
