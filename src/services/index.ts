import type { Logger } from 'pino';
import type { Repositories } from '../repositories/index.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import { CaseService } from './case.service.ts';
import { IngestService } from './ingest.service.ts';
import { ModelService } from './model.service.ts';
import type { LoadEncoder, PrepareSlice } from './ports.ts';
import { ReindexService } from './reindex.service.ts';
import { SearchService } from './search.service.ts';

export interface ServiceDeps {
  repos: Repositories;
  store: ObjectStore;
  loadEncoder: LoadEncoder;
  prepare: PrepareSlice;
  log: Logger;
  wakeReindexWorker?: () => void;
  onSearch?: (tookMs: number, kind: 'CASE' | 'IMAGES') => void;
}

export function createServices(d: ServiceDeps) {
  const models = new ModelService(d.repos, d.loadEncoder);
  return {
    repos: d.repos,
    store: d.store,
    models,
    ingest: new IngestService(d.repos, models, d.store, d.prepare, d.log),
    search: new SearchService(d.repos, models, d.prepare, d.log, d.onSearch),
    cases: new CaseService(d.repos, d.store, d.log),
    reindex: new ReindexService(d.repos, models, d.wakeReindexWorker),
  };
}

export type Services = ReturnType<typeof createServices>;
