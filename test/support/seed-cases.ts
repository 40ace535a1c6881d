/** Bulk seeding of cases, slices and codes for the search tests (no images, no inference). */
import type { SliceCodeSet } from '../../src/domain/joint-distance.ts';
import type { RawSql } from '../../src/db/database.ts';

export interface SeedCase {
  patientId: number;
  malignancyClass: string | null;
  diameterMm: number | null;
  slices: SliceCodeSet[];
}

/** Inserts the cases with their slices and codes under one model; returns the new case ids in order. */
export async function seedCases(raw: RawSql, modelId: number, cases: readonly SeedCase[]): Promise<number[]> {
  const ids = await raw.query<{ id: number }>(
    `INSERT INTO nodule_cases (patient_id, malignancy_class, diameter_mm)
     SELECT * FROM unnest($1::int[], $2::text[], $3::float8[]) RETURNING id`,
    [cases.map((c) => c.patientId), cases.map((c) => c.malignancyClass), cases.map((c) => c.diameterMm)],
  );
  const flat = cases.flatMap((c, i) => c.slices.map((s) => ({ caseId: ids[i]!.id, ...s })));
  await raw.query(
    `WITH s AS (
       INSERT INTO slices (case_id, slice_offset, image_key)
       SELECT c, o, 'k/' || c || '/' || o FROM unnest($1::int[], $2::int[]) AS t(c, o)
       RETURNING id, case_id, slice_offset)
     INSERT INTO slice_codes (model_id, slice_id, case_id, slice_offset, shallow, middle, deep)
     SELECT $3, s.id, s.case_id, s.slice_offset, t.a::bit(64), t.b::bit(64), t.d::bit(64)
     FROM s JOIN unnest($1::int[], $2::int[], $4::text[], $5::text[], $6::text[]) AS t(c, o, a, b, d)
       ON t.c = s.case_id AND t.o = s.slice_offset`,
    [flat.map((s) => s.caseId), flat.map((s) => s.offset), modelId, flat.map((s) => s.shallow), flat.map((s) => s.middle), flat.map((s) => s.deep)],
  );
  return ids.map((r) => r.id);
}
