/**
 * Works through reindex jobs: re-encodes stored slice images with the job's model, batch by
 * batch, recording a cursor after each batch so that a killed worker's job resumes where it
 * stopped (another worker, or this one after a restart, claims it once its heartbeat is stale).
 *
 * The new model's codes are written beside the old ones; searches keep using the active model.
 * When every slice has codes under the job's model, the model is activated in the same
 * transaction that checks this, after the locks of a switch (ModelRepository.lockForSwitch: the
 * active model's row, then slices in SHARE mode, the order an ingest takes them), so no case can
 * slip in without codes for the model that search switches to.
 */
import os from 'node:os';
import type { Logger } from 'pino';
import type { ReindexJob, Slice } from '../repositories/records.ts';
import { BadInputError, NotFoundError } from '../errors.ts';
import type { Repositories } from '../repositories/index.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import { SWITCH_TRANSACTION, type ModelService } from './model.service.ts';
import { PollingLoop } from './polling-loop.ts';
import type { PrepareSlice, SliceEncoder } from './ports.ts';

export interface ReindexWorkerOptions {
  batchSize: number;
  /** A job whose worker has not reported for this long is taken over. */
  staleAfterMs: number;
  pollMs: number;
  /** Pause between batches, leaving CPU to searches on small machines. */
  batchDelayMs: number;
  onProgress?: (job: ReindexJob) => void;
  /**
   * Pauses before each retry of an image GET that failed for a reason other than a missing object
   * (an S3 503, a timeout, a reset connection). When they are used up the batch fails as a whole
   * (nothing recorded, no slice counted as failed) and the job resumes from its cursor at the next poll.
   */
  storeRetryDelaysMs?: readonly number[];
}

export const DEFAULT_STORE_RETRY_DELAYS_MS: readonly number[] = [200, 500, 1_000, 2_000, 4_000];

class JobCancelled extends Error {}

/** The object store kept failing a GET through every retry: the batch is retried later, not failed. */
class StoreStillFailing extends Error {}

export class ReindexWorker {
  readonly workerId = `${os.hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`;
  private readonly loop: PollingLoop;

  constructor(
    private readonly repos: Repositories,
    private readonly models: ModelService,
    private readonly store: ObjectStore,
    private readonly prepare: PrepareSlice,
    private readonly log: Logger,
    private readonly options: ReindexWorkerOptions,
  ) {
    this.loop = new PollingLoop('reindex worker', options.pollMs, () => this.claimAndProcess(), log);
  }

  start(): void {
    this.loop.start();
  }

  /** Lets the current batch finish; the job stays RUNNING and is resumed later. */
  stop(): Promise<void> {
    return this.loop.stop();
  }

  /** Looks for work now instead of at the next poll. */
  notify(): void {
    this.loop.wake();
  }

  /** One pass: true when a job was worked on (look for the next one at once). */
  private async claimAndProcess(): Promise<boolean> {
    let job: ReindexJob | null = null;
    try {
      job = await this.repos.jobs.claim(this.workerId, this.options.staleAfterMs);
      if (job) await this.process(job);
      return job !== null;
    } catch (err) {
      // E.g. the database went away: wait a poll, then claim the job again and resume.
      this.log.error({ err, jobId: job?.id }, 'reindex worker error; retrying later');
      return false;
    }
  }

  private async process(claimed: ReindexJob): Promise<void> {
    const version = await this.models.get(claimed.modelId);
    let encoder: SliceEncoder;
    try {
      encoder = await this.models.encoder(version);
    } catch (err) {
      await this.repos.jobs.finishOwned(claimed.id, this.workerId, 'FAILED', `model ${version.id} could not be loaded: ${(err as Error).message}`);
      return;
    }
    this.log.info({ jobId: claimed.id, modelId: version.id, cursor: claimed.cursorSliceId }, claimed.cursorSliceId > 0 ? 'resuming reindex job' : 'starting reindex job');
    let job = claimed;
    try {
      // Pass 1: every slice in id order from the cursor.
      for (;;) {
        if (!this.loop.isRunning) return;
        const page = await this.repos.slices.pageAfter(job.cursorSliceId, this.options.batchSize);
        if (page.length === 0) break;
        job = await this.encodeBatch(job, encoder, page, page[page.length - 1]!.id);
      }
      if (job.failed > 0) {
        await this.repos.jobs.finishOwned(job.id, this.workerId, 'FAILED', `${job.failed} slice image(s) could not be re-encoded; model ${version.id} was not activated`);
        return;
      }
      // The new model's search blocks before the switch, so searches right after it use them
      // (issue 13, item 10); slices encoded in pass 2 are marked dirty in them, and stay exact.
      if (!version.active) await this.models.prepareBlocks(version.id);
      // Pass 2: slices ingested meanwhile under the old model; then activate atomically.
      for (;;) {
        if (!this.loop.isRunning) return;
        // Model row first, then slices: the order of an ingest (issue 13, item 2). The job ends only
        // if this worker still holds it: after a stale heartbeat another worker may have taken it
        // over, ended it and even seen the model switched away since (issue 13, item 11).
        const outcome = await this.repos.transaction(async (tx) => {
          const retiring = await this.repos.models.lockForSwitch(tx);
          if ((await this.repos.codes.slicesWithoutCodes(version.id, 1, tx)).length > 0) return 'codes missing';
          if (!(await this.repos.jobs.finishOwned(job.id, this.workerId, 'SUCCEEDED', null, tx))) return 'taken over';
          if (!version.active) await this.models.switchWithin(tx, version.id, retiring);
          return 'activated';
        }, SWITCH_TRANSACTION);
        if (outcome === 'taken over') {
          this.log.warn({ jobId: job.id, modelId: version.id, workerId: this.workerId }, 'reindex job taken over by another worker; leaving it to that worker');
          return;
        }
        if (outcome === 'activated') break;
        const missing = await this.repos.codes.slicesWithoutCodes(version.id, this.options.batchSize);
        const slices = await this.repos.slices.findByIds(missing);
        job = await this.encodeBatch(job, encoder, slices, job.cursorSliceId);
      }
      this.log.info({ jobId: job.id, modelId: version.id, done: job.done }, 'reindex job finished; model active');
    } catch (err) {
      if (err instanceof JobCancelled) {
        // Blocks built for a switch that will not happen would be kept up to date for nothing; but
        // only this job's owner drops them, and only while the model is still not the active one.
        if (await this.repos.jobs.finishOwned(job.id, this.workerId, 'CANCELLED')) {
          const active = await this.repos.models.findActive();
          if (active?.id !== version.id) await this.repos.search.blocks.drop(version.id);
        }
        this.log.info({ jobId: job.id }, 'reindex job cancelled');
        return;
      }
      throw err;
    }
  }

  private async encodeBatch(job: ReindexJob, encoder: SliceEncoder, slices: Slice[], cursor: number): Promise<ReindexJob> {
    const prepared: { slice: Slice; patch: Float32Array }[] = [];
    let failed = 0;
    // Fetched and decoded concurrently (the decoder pool bounds the parallelism).
    const outcomes = await Promise.allSettled(
      slices.map(async (slice) => {
        const data = await this.fetchImage(slice, job.id);
        return data && { slice, patch: (await this.prepare({ data, offset: slice.sliceOffset, stored: true }, encoder.card)).patch };
      }),
    );
    const unavailable = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected' && o.reason instanceof StoreStillFailing);
    if (unavailable) throw unavailable.reason;
    outcomes.forEach((outcome, i) => {
      if (outcome.status === 'fulfilled') {
        if (outcome.value) prepared.push(outcome.value); // null: the slice is gone, skipped
        return;
      }
      failed++;
      this.log.warn({ err: outcome.reason, sliceId: slices[i]!.id, jobId: job.id }, 'slice could not be re-encoded');
    });
    const codes = await encoder.encode(prepared.map((p) => p.patch));
    const total = await this.repos.slices.count();
    const next = await this.repos.transaction(async (tx) => {
      await this.repos.codes.upsert(tx, job.modelId, prepared.map((p, i) => ({ sliceId: p.slice.id, caseId: p.slice.caseId, offset: p.slice.sliceOffset, ...codes[i]! })));
      return this.repos.jobs.advance(tx, job.id, this.workerId, cursor, prepared.length, failed, total);
    });
    this.options.onProgress?.(next);
    if (next.cancelRequested) throw new JobCancelled();
    if (this.options.batchDelayMs > 0) await new Promise((r) => setTimeout(r, this.options.batchDelayMs));
    return next;
  }

  /**
   * The slice's stored image; null when the slice no longer exists (its case was deleted or
   * re-ingested since the page was read), so there is nothing to re-encode. A missing object of a
   * slice that still exists is a real failure; other store errors are retried with backoff, then
   * fail the batch as a whole (StoreStillFailing).
   */
  private async fetchImage(slice: Slice, jobId: number): Promise<Buffer | null> {
    const delays = this.options.storeRetryDelaysMs ?? DEFAULT_STORE_RETRY_DELAYS_MS;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.store.get(slice.imageKey);
      } catch (err) {
        if (err instanceof NotFoundError) {
          const now = await this.repos.slices.findById(slice.id);
          if (now?.imageKey === slice.imageKey) throw err;
          this.log.info({ sliceId: slice.id, jobId }, 'slice removed while the reindex ran; skipped');
          return null;
        }
        if (err instanceof BadInputError) throw err;
        if (attempt >= delays.length) {
          throw new StoreStillFailing(`the object store failed ${attempt + 1} times to return ${slice.imageKey}: ${(err as Error).message}`, { cause: err });
        }
        this.log.warn({ err, sliceId: slice.id, jobId, attempt: attempt + 1 }, 'object store GET failed during reindex; retrying');
        await new Promise((r) => setTimeout(r, delays[attempt]));
      }
    }
  }
}
