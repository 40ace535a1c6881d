/** Bulk seeding of cases, slices and codes for the search tests (no images, no inference). */
import type { SliceCodeSet } from '../../src/domain/joint-distance.ts';
import type { RawSql } from '../../src/db/database.ts';
import { mulberry32, perturb, randomCode, randomInt } from './random-codes.ts';

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

/**
 * A synthetic archive for the benchmarks: N slices (3 per case) with learned-like codes (per layer
 * 300 cluster centres, per case 8% of bits flipped from one, per slice 4% more; see
 * docs/benchmarks/search.md), 100 pseudonymous patients `<prefix>-<batch>-<n>` per 3,000 cases.
 * Loads in batches through seedCases; returns the new case ids in order.
 */
export async function seedSyntheticArchive(raw: RawSql, modelId: number, slices: number, prefix: string, seed = 7): Promise<number[]> {
  const rand = mulberry32(seed);
  const centres = Array.from({ length: 300 }, () => ({ shallow: randomCode(rand), middle: randomCode(rand), deep: randomCode(rand) }));
  const ids: number[] = [];
  for (let stored = 0, batch = 0; stored < slices; batch++) {
    await raw.query(`INSERT INTO patients (patient_key) SELECT $1 || '-' || $2 || '-' || g FROM generate_series(1, 100) g ON CONFLICT DO NOTHING`, [prefix, batch]);
    const patients = (await raw.query<{ id: number }>(`SELECT id FROM patients WHERE patient_key LIKE $1 || '-' || $2 || '-%'`, [prefix, batch])).map((r) => r.id);
    const cases = Array.from({ length: Math.min(3000, Math.ceil((slices - stored) / 3)) }, () => {
      const c = centres[randomInt(rand, 0, 299)]!;
      const base = { shallow: perturb(c.shallow, rand, 0.08), middle: perturb(c.middle, rand, 0.08), deep: perturb(c.deep, rand, 0.08) };
      return {
        patientId: patients[randomInt(rand, 0, patients.length - 1)]!,
        malignancyClass: rand() < 0.3 ? 'MALIGNANT' : 'BENIGN',
        diameterMm: randomInt(rand, 30, 300) / 10,
        slices: [-1, 0, 1].map((offset) => ({ offset, shallow: perturb(base.shallow, rand, 0.04), middle: perturb(base.middle, rand, 0.04), deep: perturb(base.deep, rand, 0.04) })),
      };
    });
    ids.push(...(await seedCases(raw, modelId, cases)));
    stored += cases.length * 3;
  }
  return ids;
}
