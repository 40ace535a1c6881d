/**
 * Slice codes: three bit(64) columns per slice and model version. Prisma cannot type bit(n), so
 * this repository speaks SQL; codes cross the boundary as '0'/'1' strings.
 */
import type { SliceCodeStrings } from '../inference/types.ts';
import type { Executor, PrismaClient } from './executor.ts';

export interface SliceCodeRow extends SliceCodeStrings {
  sliceId: number;
  caseId: number;
  offset: number;
}

const SELECT_CODES = `SELECT slice_id AS "sliceId", case_id AS "caseId", slice_offset AS "offset",
  shallow::text AS shallow, middle::text AS middle, deep::text AS deep FROM slice_codes`;

export class CodeRepository {
  constructor(private readonly prisma: PrismaClient) {}

  /**
   * Writes (or overwrites) the codes of these slices under one model. A row whose codes are
   * unchanged is not rewritten, so reindexing the active model marks no case dirty in the search
   * blocks (issue 13, item 10): only cases whose codes did change leave the blocks.
   */
  async upsert(db: Executor, modelId: number, rows: readonly SliceCodeRow[]): Promise<void> {
    if (rows.length === 0) return;
    await db.$executeRawUnsafe(
      `INSERT INTO slice_codes (model_id, slice_id, case_id, slice_offset, shallow, middle, deep)
       SELECT $1, s.slice_id, s.case_id, s.slice_offset, s.shallow::bit(64), s.middle::bit(64), s.deep::bit(64)
       FROM unnest($2::int[], $3::int[], $4::int[], $5::text[], $6::text[], $7::text[])
            AS s(slice_id, case_id, slice_offset, shallow, middle, deep)
       ON CONFLICT (model_id, slice_id) DO UPDATE
         SET shallow = EXCLUDED.shallow, middle = EXCLUDED.middle, deep = EXCLUDED.deep
         WHERE (slice_codes.shallow, slice_codes.middle, slice_codes.deep) IS DISTINCT FROM (EXCLUDED.shallow, EXCLUDED.middle, EXCLUDED.deep)`,
      modelId,
      rows.map((r) => r.sliceId),
      rows.map((r) => r.caseId),
      rows.map((r) => r.offset),
      rows.map((r) => r.shallow),
      rows.map((r) => r.middle),
      rows.map((r) => r.deep),
    );
  }

  async findForSlices(modelId: number, sliceIds: readonly number[]): Promise<SliceCodeRow[]> {
    return this.prisma.$queryRawUnsafe<SliceCodeRow[]>(`${SELECT_CODES} WHERE model_id = $1 AND slice_id = ANY ($2::int[])`, modelId, [...sliceIds]);
  }

  async findForCase(modelId: number, caseId: number): Promise<SliceCodeRow[]> {
    return this.prisma.$queryRawUnsafe<SliceCodeRow[]>(`${SELECT_CODES} WHERE model_id = $1 AND case_id = $2 ORDER BY slice_offset`, modelId, caseId);
  }

  /** Slices that have no codes under this model yet (reindex's final sweep). */
  async slicesWithoutCodes(modelId: number, limit: number, db: Executor = this.prisma): Promise<number[]> {
    const rows = await db.$queryRawUnsafe<{ id: number }[]>(
      `SELECT s.id FROM slices s
       WHERE NOT EXISTS (SELECT 1 FROM slice_codes c WHERE c.model_id = $1 AND c.slice_id = s.id)
       ORDER BY s.id LIMIT $2`,
      modelId,
      limit,
    );
    return rows.map((r) => r.id);
  }
}
