/** Admin side of reindexing: queue a job, cancel it, read its progress. The work: ./reindex-worker.ts. */
import { NotFoundError } from '../errors.ts';
import type { ReindexJob } from '../repositories/records.ts';
import type { Repositories } from '../repositories/index.ts';
import type { ModelService } from './model.service.ts';

export class ReindexService {
  constructor(
    private readonly repos: Repositories,
    private readonly models: ModelService,
    private readonly wakeWorker: () => void = () => {},
  ) {}

  /** Queues a re-encoding of every stored slice with the model (default: the active one). */
  async start(modelId?: number | null): Promise<ReindexJob> {
    const version = modelId != null ? await this.models.get(modelId) : (await this.models.active()).version;
    await this.models.encoder(version); // a model whose file cannot be loaded is refused now, not mid-job
    const open = await this.repos.jobs.findOpenForModel(version.id);
    if (open) return open;
    const job = await this.repos.jobs.create(version.id, await this.repos.slices.count());
    this.wakeWorker();
    return job;
  }

  async list(first: number): Promise<ReindexJob[]> {
    return this.repos.jobs.list(Math.min(Math.max(first, 0), 100));
  }

  async cancel(id: number): Promise<ReindexJob> {
    const job = await this.repos.jobs.requestCancel(id);
    if (!job) throw new NotFoundError(`no reindex job with id ${id}`);
    return job;
  }
}
