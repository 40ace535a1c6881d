import crypto from 'node:crypto';
import type { Logger } from 'pino';
import { UploadUrlSigner } from '../auth/upload-urls.ts';
import type { Repositories } from '../repositories/index.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import { CaseService } from './case.service.ts';
import { DisplayImageService } from './display-images.ts';
import { IngestService, type OnIngest } from './ingest.service.ts';
import { ModelService } from './model.service.ts';
import { DEFAULT_JANITOR_OPTIONS, ObjectJanitor, type ObjectJanitorOptions } from './object-janitor.ts';
import type { LoadEncoder, PrepareSlice } from './ports.ts';
import { ReindexService } from './reindex.service.ts';
import { SearchService } from './search.service.ts';
import { UploadService, type UploadSettings } from './upload.service.ts';

export interface ServiceDeps {
  repos: Repositories;
  store: ObjectStore;
  loadEncoder: LoadEncoder;
  prepare: PrepareSlice;
  log: Logger;
  wakeReindexWorker?: () => void;
  onSearch?: (tookMs: number, kind: 'CASE' | 'IMAGES') => void;
  onIngest?: OnIngest;
  /** The deletion outbox's drainer (its loop is started by startService). */
  janitor?: ObjectJanitorOptions;
  /** Large uploads; default: a random URL secret (URLs valid in this process only) and 1 h / 64 MiB. */
  uploads?: { signer: UploadUrlSigner; settings: UploadSettings };
}

export function createServices(d: ServiceDeps) {
  const models = new ModelService(d.repos, d.loadEncoder);
  const janitor = new ObjectJanitor(d.repos, d.store, d.log, d.janitor ?? DEFAULT_JANITOR_OPTIONS);
  const u = d.uploads ?? { signer: new UploadUrlSigner(crypto.randomBytes(32)), settings: { ttlSeconds: 3600, maxBytes: 64 * 1024 * 1024 } };
  const uploads = new UploadService(d.repos, d.store, u.signer, u.settings, d.log);
  return {
    repos: d.repos,
    store: d.store,
    models,
    janitor,
    uploads,
    ingest: new IngestService(d.repos, models, d.store, d.prepare, d.log, uploads, janitor, d.onIngest),
    search: new SearchService(d.repos, models, d.prepare, d.log, d.onSearch),
    cases: new CaseService(d.repos, d.store, d.log, janitor),
    reindex: new ReindexService(d.repos, models, d.wakeReindexWorker),
    display: new DisplayImageService(d.repos, d.store),
  };
}

export type Services = ReturnType<typeof createServices>;
