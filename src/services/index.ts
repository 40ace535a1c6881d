/**
 * The service layer, wired: what resolvers, the HTTP routes, the CLI and the background loops
 * call. It hands out services only; repositories, the object store and the database stay below.
 */
import type { Logger } from 'pino';
import type { PatientKeyHasher } from '../auth/patient-keys.ts';
import type { UploadUrlSigner } from '../auth/upload-urls.ts';
import type { DicomwebClient } from '../pacs/dicomweb-client.ts';
import type { Repositories } from '../repositories/index.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import { CaseService } from './case.service.ts';
import { DisplayImageService } from './display-images.ts';
import { HealthService, type Platform } from './health.service.ts';
import { IngestService, type OnIngest } from './ingest.service.ts';
import { ModelService } from './model.service.ts';
import { ObjectJanitor, type ObjectJanitorOptions } from './object-janitor.ts';
import { PacsService } from './pacs.service.ts';
import type { LoadEncoder, PrepareSlice } from './ports.ts';
import { ReindexService } from './reindex.service.ts';
import { searchBlockUpkeep } from './search-block-upkeep.ts';
import { SearchService, type OnSearch } from './search.service.ts';
import { UploadService, type UploadSettings } from './upload.service.ts';
import { ViewerLinks } from './viewer-links.ts';

export interface ServiceDeps {
  repos: Repositories;
  store: ObjectStore;
  loadEncoder: LoadEncoder;
  prepare: PrepareSlice;
  log: Logger;
  /** What this process runs on, read once at start (reported by /healthz). */
  platform: Platform;
  wakeReindexWorker?: () => void;
  onSearch?: OnSearch;
  onIngest?: OnIngest;
  /** The deletion outbox's drainer (its loop is started by startApi). */
  janitor: ObjectJanitorOptions;
  /** How often the search block upkeep loop looks at the models searched (AppConfig.searchBlockUpkeepMs). */
  searchBlockUpkeepMs: number;
  /** Large uploads: the URL signer and AppConfig.uploads. */
  uploads: { signer: UploadUrlSigner; settings: UploadSettings };
  /** The PACS (FCDN_DICOMWEB_URL) and the patient-key hash of its imports; absent: no PACS. */
  pacs?: { client: DicomwebClient; patientKeys: PatientKeyHasher } | null;
  /** FCDN_VIEWER_URL_TEMPLATE (NoduleCase.viewerUrl). */
  viewerUrlTemplate?: string;
}

export function createServices(d: ServiceDeps) {
  const models = new ModelService(d.repos, d.loadEncoder);
  const janitor = new ObjectJanitor(d.repos, d.store, d.log, d.janitor);
  const uploads = new UploadService(d.repos, d.store, d.uploads.signer, d.uploads.settings, d.log);
  const ingest = new IngestService(d.repos, models, d.store, d.prepare, d.log, uploads, janitor, d.onIngest);
  const pacs = new PacsService(d.pacs ?? null, ingest);
  return {
    models,
    janitor,
    uploads,
    ingest,
    pacs,
    search: new SearchService(d.repos, models, d.prepare, d.log, d.onSearch, pacs.configured ? pacs.fetchNodule : undefined),
    viewerLinks: new ViewerLinks(d.viewerUrlTemplate),
    cases: new CaseService(d.repos, janitor),
    reindex: new ReindexService(d.repos, models, d.wakeReindexWorker),
    display: new DisplayImageService(d.repos, d.store),
    health: new HealthService(d.repos, models, d.platform),
    blockUpkeep: searchBlockUpkeep(d.repos.search.blocks, d.searchBlockUpkeepMs, d.log),
  };
}

export type Services = ReturnType<typeof createServices>;
