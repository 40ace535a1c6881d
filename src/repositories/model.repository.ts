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

  async activate(db: Executor, id: number): Promise<ModelVersion> {
    await db.modelVersion.updateMany({ where: { active: true, NOT: { id } }, data: { active: false } });
    return db.modelVersion.update({ where: { id }, data: { active: true } });
  }
}
