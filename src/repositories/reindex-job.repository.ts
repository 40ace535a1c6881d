/**
 * The reindex job queue, kept in Postgres so that it survives restarts and can be shared by
 * several worker processes: a worker claims a job with FOR UPDATE SKIP LOCKED, heartbeats while
 * it works, and a job whose heartbeat went stale (its worker died) is claimed again and resumes
 * from cursor_slice_id.
 */
import type { ReindexJob } from '../generated/prisma/client.ts';
import type { Executor, PrismaClient } from './executor.ts';

export type JobStatus = 'QUEUED' | 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'CANCELLED';

export class ReindexJobRepository {
  constructor(private readonly prisma: PrismaClient) {}

  async create(modelId: number, total: number): Promise<ReindexJob> {
    return this.prisma.reindexJob.create({ data: { modelId, total } });
  }

  async findByIds(ids: readonly number[]): Promise<ReindexJob[]> {
    return this.prisma.reindexJob.findMany({ where: { id: { in: [...ids] } } });
  }

  async findOpenForModel(modelId: number): Promise<ReindexJob | null> {
    return this.prisma.reindexJob.findFirst({ where: { modelId, status: { in: ['QUEUED', 'RUNNING'] } }, orderBy: { id: 'asc' } });
  }

  /** Takes the oldest queued job, this worker's own running one, or one whose worker stopped heartbeating. */
  async claim(workerId: string, staleAfterMs: number): Promise<ReindexJob | null> {
    const rows = await this.prisma.$queryRawUnsafe<{ id: number }[]>(
      `UPDATE reindex_jobs SET status = 'RUNNING', worker_id = $1, heartbeat_at = now(),
              started_at = coalesce(started_at, now())
       WHERE id = (
         SELECT id FROM reindex_jobs
         WHERE status = 'QUEUED'
            -- its own job: a batch failed (the database went away) and the worker picks it up again
            OR (status = 'RUNNING' AND worker_id = $1)
            OR (status = 'RUNNING' AND (heartbeat_at IS NULL OR heartbeat_at < now() - make_interval(secs => $2::float8 / 1000)))
         ORDER BY id
         FOR UPDATE SKIP LOCKED
         LIMIT 1)
       RETURNING id`,
      workerId,
      staleAfterMs,
    );
    if (rows.length === 0) return null;
    return this.prisma.reindexJob.findUniqueOrThrow({ where: { id: rows[0]!.id } });
  }

  /** Records a finished batch; returns the job so the worker sees a cancel request. */
  async advance(db: Executor, id: number, workerId: string, cursorSliceId: number, done: number, failed: number, total: number): Promise<ReindexJob> {
    return db.reindexJob.update({
      where: { id, workerId },
      data: { cursorSliceId, done: { increment: done }, failed: { increment: failed }, total, heartbeatAt: new Date() },
    });
  }

  /**
   * A worker's end of its job: only while the job is RUNNING under this worker's id. False when it
   * is not (another worker took it over after this one's heartbeat went stale, or it ended): the
   * caller then leaves the job, and the model switch, to its owner (issue 13, item 11).
   */
  async finishOwned(id: number, workerId: string, status: JobStatus, error: string | null = null, db: Executor = this.prisma): Promise<boolean> {
    const { count } = await db.reindexJob.updateMany({ where: { id, workerId, status: 'RUNNING' }, data: { status, error, finishedAt: new Date() } });
    return count === 1;
  }

  async finish(id: number, status: JobStatus, error: string | null = null, db: Executor = this.prisma): Promise<ReindexJob> {
    return db.reindexJob.update({ where: { id }, data: { status, error, finishedAt: new Date() } });
  }

  async requestCancel(id: number): Promise<ReindexJob | null> {
    const job = await this.prisma.reindexJob.findUnique({ where: { id } });
    if (!job) return null;
    if (job.status === 'QUEUED') return this.finish(id, 'CANCELLED');
    if (job.status === 'RUNNING') return this.prisma.reindexJob.update({ where: { id }, data: { cancelRequested: true } });
    return job;
  }

  async list(first: number): Promise<ReindexJob[]> {
    return this.prisma.reindexJob.findMany({ orderBy: { id: 'desc' }, take: first });
  }

  async findById(id: number): Promise<ReindexJob | null> {
    return this.prisma.reindexJob.findUnique({ where: { id } });
  }
}
