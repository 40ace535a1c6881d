/**
 * The repositories over one database, and the one way to run several of their statements as a
 * transaction. Services see only these: every SQL statement, lock and Prisma call lives below here.
 */
import { retryOnDeadlock, retryReadOnDisconnect } from '../db/postgres-errors.ts';
import type { Database } from '../db/database.ts';
import { ReadNodes } from '../db/read-nodes.ts';
import type { Transaction } from './executor.ts';
import { ReadSession } from './read-session.ts';
import { CaseRepository } from './case.repository.ts';
import { CodeRepository } from './code.repository.ts';
import { ModelRepository } from './model.repository.ts';
import { ObjectDeletionRepository } from './object-deletion.repository.ts';
import { ReindexJobRepository } from './reindex-job.repository.ts';
import { ReportRepository } from './report.repository.ts';
import { SearchLogRepository } from './search-log.repository.ts';
import { SearchRepository, type SearchMethodSetting } from './search.repository.ts';
import { SliceRepository } from './slice.repository.ts';
import { SystemRepository } from './system.repository.ts';
import { UploadRepository } from './upload.repository.ts';

export type { Transaction };
export type { ReadRepositories, ReadSession } from './read-session.ts';

export interface RepositoryOptions {
  searchMethod?: SearchMethodSetting;
  /** AppConfig.sliceWindow (FCDN_SLICE_WINDOW); default DEFAULT_SLICE_WINDOW. */
  sliceWindow?: number;
  /** Whether the fcdn_search extension is installed, as read at start (buildCore); unset: asked when needed. */
  fcdnSearchInstalled?: boolean;
  /** Where a failed background rebuild of the search blocks is reported (the service's logger). */
  onBlockRebuildError?: (err: unknown) => void;
  /** A search found a model's blocks missing: wake the upkeep loop (SearchBlockUpkeep). */
  onBlocksNeeded?: () => void;
  /** Where reads may go (FCDN_READ_DATABASE_URL: ./read-session.ts); unset: the primary only. */
  readNodes?: ReadNodes;
}

export interface TransactionOptions {
  /** How long the transaction may run, and wait for a connection (Prisma's defaults: 5 s and 2 s). */
  timeout?: number;
  maxWait?: number;
  /**
   * Run the whole transaction again when the database aborted it to break a deadlock or a
   * serialization conflict: only for transactions that are all or nothing (issue 13, item 2).
   */
  retryOnDeadlock?: boolean;
}

export function createRepositories(db: Pick<Database, 'prisma' | 'raw'>, options: RepositoryOptions = {}) {
  const prisma = db.prisma;
  const search = new SearchRepository(prisma, { method: options.searchMethod, sliceWindow: options.sliceWindow, blocksAvailable: options.fcdnSearchInstalled, maintenance: { onError: options.onBlockRebuildError, onNeeded: options.onBlocksNeeded } });
  const readNodes = options.readNodes ?? new ReadNodes({ name: 'primary', db }, [], { probeEveryMs: 60_000 });
  const once = <T>(fn: (tx: Transaction) => Promise<T>, o: TransactionOptions) =>
    prisma.$transaction(fn, { ...(o.timeout != null && { timeout: o.timeout }), ...(o.maxWait != null && { maxWait: o.maxWait }) });
  return {
    /** Runs fn in one transaction; the repositories' methods that take a `tx` run inside it. */
    transaction<T>(fn: (tx: Transaction) => Promise<T>, o: TransactionOptions = {}): Promise<T> {
      return o.retryOnDeadlock ? retryOnDeadlock(() => once(fn, o)) : once(fn, o);
    },
    /**
     * Runs a read-only step again when the connection died under it (the pool has dropped the dead
     * client by then, so a terminated backend costs the caller nothing). Never for writes: a
     * COMMIT whose answer was lost may have happened.
     */
    read<T>(fn: () => Promise<T>): Promise<T> {
      return retryReadOnDisconnect(fn);
    },
    /**
     * A unit of read-only work (a search, a request's listings, an image) that may run on a read
     * node: ./read-session.ts. `primary`: read on the primary (a mutation reading back its writes).
     */
    reads(o: { primary?: boolean } = {}): ReadSession {
      return new ReadSession(readNodes, search, o.primary);
    },
    cases: new CaseRepository(prisma),
    slices: new SliceRepository(prisma),
    codes: new CodeRepository(prisma),
    reports: new ReportRepository(prisma),
    models: new ModelRepository(prisma),
    jobs: new ReindexJobRepository(prisma),
    objectDeletions: new ObjectDeletionRepository(prisma),
    searchLog: new SearchLogRepository(prisma),
    search,
    uploads: new UploadRepository(prisma),
    system: new SystemRepository(db.raw),
  };
}

export type Repositories = ReturnType<typeof createRepositories>;
