/** The registry of model versions; exactly one is active (a partial unique index enforces it). */
import type { ModelVersion, Prisma } from '../generated/prisma/client.ts';
import type { Executor, PrismaClient } from './executor.ts';

export interface NewModelVersion {
  name: string;
  sha256: string;
  bits: number;
  filePath: string;
  card: Prisma.InputJsonValue;
  metrics: Prisma.InputJsonValue | undefined;
}

export class ModelRepository {
  constructor(private readonly prisma: PrismaClient) {}

  async all(): Promise<ModelVersion[]> {
    return this.prisma.modelVersion.findMany({ orderBy: { id: 'asc' } });
  }

  async findByIds(ids: readonly number[]): Promise<ModelVersion[]> {
    return this.prisma.modelVersion.findMany({ where: { id: { in: [...ids] } } });
  }

  async findActive(): Promise<ModelVersion | null> {
    return this.prisma.modelVersion.findFirst({ where: { active: true } });
  }

  /** Registers a model file once (by content hash); a moved file updates its path. */
  async register(model: NewModelVersion): Promise<ModelVersion> {
    return this.prisma.modelVersion.upsert({
      where: { sha256: model.sha256 },
      create: model,
      update: { filePath: model.filePath, card: model.card, metrics: model.metrics, name: model.name },
    });
  }

  /**
   * The locks of a model switch, in the one order every writer uses (issue 13, items 1 and 2):
   * first the active model's row, the row an ingest holds FOR SHARE for its whole transaction
   * (so the switch waits for ingests in flight, and new ones wait for the switch), then `slices`
   * in SHARE mode (no slice can be added or removed until the switch commits). An ingest locks
   * the model row and then writes slices, so the two can wait for each other but never deadlock.
   * Call it first in the switch's transaction, before checking for missing codes. Returns the
   * model active now (the one the switch retires), null when none is.
   */
  async lockForSwitch(tx: Executor): Promise<number | null> {
    const [active] = await tx.$queryRawUnsafe<{ id: number }[]>('SELECT id FROM model_versions WHERE active FOR NO KEY UPDATE');
    await tx.$executeRawUnsafe('LOCK TABLE slices IN SHARE MODE');
    return active?.id ?? null;
  }

  /**
   * Inside an ingest transaction: the active model's id, its row held FOR SHARE until commit, so
   * a switch (lockForSwitch) waits for the ingest, and an ingest that encoded under a model
   * switched away meanwhile sees it and encodes again.
   */
  async lockActiveForIngest(tx: Executor): Promise<number | null> {
    const [active] = await tx.$queryRawUnsafe<{ id: number }[]>('SELECT id FROM model_versions WHERE active FOR SHARE');
    return active?.id ?? null;
  }

  async activate(db: Executor, id: number): Promise<ModelVersion> {
    await db.modelVersion.updateMany({ where: { active: true, NOT: { id } }, data: { active: false } });
    return db.modelVersion.update({ where: { id }, data: { active: true } });
  }
}
