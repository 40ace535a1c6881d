import type { SearchMethodSetting } from '../config.ts';
import type { PrismaClient } from './executor.ts';
import { CaseRepository } from './case.repository.ts';
import { CodeRepository } from './code.repository.ts';
import { ModelRepository } from './model.repository.ts';
import { ObjectDeletionRepository } from './object-deletion.repository.ts';
import { ReindexJobRepository } from './reindex-job.repository.ts';
import { ReportRepository } from './report.repository.ts';
import { SearchLogRepository } from './search-log.repository.ts';
import { SearchRepository } from './search.repository.ts';
import { SliceRepository } from './slice.repository.ts';
import { UploadRepository } from './upload.repository.ts';

export interface RepositoryOptions {
  searchMethod?: SearchMethodSetting;
  /** AppConfig.sliceWindow (FCDN_SLICE_WINDOW); default DEFAULT_SLICE_WINDOW. */
  sliceWindow?: number;
  /** Where a failed background rebuild of the search blocks is reported (the service's logger). */
  onBlockRebuildError?: (err: unknown) => void;
}

export function createRepositories(prisma: PrismaClient, options: RepositoryOptions = {}) {
  return {
    prisma,
    cases: new CaseRepository(prisma),
    slices: new SliceRepository(prisma),
    codes: new CodeRepository(prisma),
    reports: new ReportRepository(prisma),
    models: new ModelRepository(prisma),
    jobs: new ReindexJobRepository(prisma),
    objectDeletions: new ObjectDeletionRepository(prisma),
    searchLog: new SearchLogRepository(prisma),
    search: new SearchRepository(prisma, { method: options.searchMethod, sliceWindow: options.sliceWindow, maintenance: options.onBlockRebuildError ? { onError: options.onBlockRebuildError } : {} }),
    uploads: new UploadRepository(prisma),
  };
}

export type Repositories = ReturnType<typeof createRepositories>;
