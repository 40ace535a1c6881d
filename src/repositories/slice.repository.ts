/** Slices of a case (their stored image keys and offsets), through Prisma. */
import type { Slice } from '../generated/prisma/client.ts';
import type { Executor, PrismaClient } from './executor.ts';

export interface NewSlice {
  offset: number;
  sopInstanceUid: string | null;
  imageKey: string;
}

export class SliceRepository {
  constructor(private readonly prisma: PrismaClient) {}

  async findByCaseIds(caseIds: readonly number[], db: Executor = this.prisma): Promise<Slice[]> {
    return db.slice.findMany({ where: { caseId: { in: [...caseIds] } }, orderBy: [{ caseId: 'asc' }, { sliceOffset: 'asc' }] });
  }

  async findByIds(ids: readonly number[]): Promise<Slice[]> {
    return this.prisma.slice.findMany({ where: { id: { in: [...ids] } } });
  }

  async findById(id: number): Promise<Slice | null> {
    return this.prisma.slice.findUnique({ where: { id } });
  }

  /** Inserts the slices in one statement and returns their ids in the order given. */
  async createMany(db: Executor, caseId: number, slices: readonly NewSlice[]): Promise<number[]> {
    const rows = await db.slice.createManyAndReturn({
      data: slices.map((s) => ({ caseId, sliceOffset: s.offset, sopInstanceUid: s.sopInstanceUid, imageKey: s.imageKey })),
      select: { id: true, sliceOffset: true },
    });
    const idByOffset = new Map(rows.map((r) => [r.sliceOffset, r.id]));
    return slices.map((s) => idByOffset.get(s.offset)!);
  }

  async deleteByCase(db: Executor, caseId: number): Promise<void> {
    await db.slice.deleteMany({ where: { caseId } });
  }

  /** The next slices in id order after a reindex cursor. */
  async pageAfter(cursorSliceId: number, limit: number): Promise<Slice[]> {
    return this.prisma.slice.findMany({ where: { id: { gt: cursorSliceId } }, orderBy: { id: 'asc' }, take: limit });
  }

  async count(): Promise<number> {
    return this.prisma.slice.count();
  }
}
