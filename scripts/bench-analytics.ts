/**
 * `DATABASE_URL=postgres://... npx tsx scripts/bench-analytics.ts`
 *
 * How long the analytics views (migrations/0003_analytics_views.sql, docs/analytics.md) take on
 * an archive of 100,000 cases (300,000 slices and codes, 100,000 reports) and 200,000 logged
 * searches over 60 days, generated in SQL in a fresh database (fixtures/test-database.ts; dropped
 * at the end). Prints three timings per query, in milliseconds, as this process sees them.
 */
import { performance } from 'node:perf_hooks';
import { createTestDatabase } from '../fixtures/test-database.ts';

const db = await createTestDatabase();
if (db.kind !== 'postgres') console.error('note: DATABASE_URL is not set, so this runs on in-memory PGlite');
const q = (s: string, p?: unknown[]) => db.raw.query(s, p);
try {
  const t0 = performance.now();
  // HNSW upkeep of 300k codes is not what is measured here; the analytics views never use these indexes.
  await q('DROP INDEX slice_codes_shallow_hnsw, slice_codes_middle_hnsw, slice_codes_deep_hnsw');
  await q(`INSERT INTO model_versions (name, sha256, bits, file_path, card, active) VALUES ('perf-model', 'x', 64, 'x', '{}', true)`);
  await q(`INSERT INTO patients (patient_key) SELECT 'P-' || g FROM generate_series(1, 50000) g`);
  await q(`INSERT INTO nodule_cases (external_id, patient_id, malignancy, malignancy_class, diameter_mm)
           SELECT 'c-' || g, 1 + (g % 50000), 1 + g % 5, CASE WHEN g % 5 < 2 THEN 'BENIGN' WHEN g % 5 = 2 THEN 'INDETERMINATE' ELSE 'MALIGNANT' END, 3 + (g % 30)
           FROM generate_series(1, 100000) g`);
  await q(`INSERT INTO slices (case_id, slice_offset, image_key) SELECT c, o, 'k' FROM generate_series(1, 100000) c, generate_series(-1, 1) o`);
  await q(`INSERT INTO slice_codes (model_id, slice_id, case_id, slice_offset, shallow, middle, deep)
           SELECT 1, id, case_id, slice_offset, (random() * 9e18)::bigint::bit(64), (random() * 9e18)::bigint::bit(64), (random() * 9e18)::bigint::bit(64) FROM slices`);
  await q(`INSERT INTO diagnostic_reports (case_id, text, impression) SELECT g, 'report text of case ' || g, 'imp' FROM generate_series(1, 100000) g`);
  await q(`INSERT INTO search_log (searched_at, took_ms, k, model_id, query_kind, query_case_id, query_slices, weights, result_case_ids)
           SELECT now() - (g % 60) * interval '1 day' - random() * interval '1 day', 20 + random() * 200, 10, 1,
                  CASE WHEN g % 3 = 0 THEN 'IMAGES' ELSE 'CASE' END, CASE WHEN g % 3 = 0 THEN NULL ELSE 1 + g % 100000 END, 3,
                  '{"shallow":1,"middle":1,"deep":1}', ARRAY(SELECT 1 + ((g * 7919 + i * 104729) % 100000) FROM generate_series(1, 10) i)
           FROM generate_series(1, 200000) g`);
  await q('ANALYZE');
  console.log(`${db.kind}: filled in ${((performance.now() - t0) / 1000).toFixed(1)} s (100000 cases, 300000 slices and codes, 100000 reports, 200000 logged searches)`);
  const queries: [string, string][] = [
    ['one case from analytics.cases', `SELECT * FROM analytics.cases WHERE case_id = 54321`],
    ['cases by diagnosis (whole view)', `SELECT malignancy_class, count(*), sum(report_count), bool_and(coded_by_active_model) FROM analytics.cases GROUP BY 1`],
    ['daily_search_stats (60 days)', `SELECT * FROM analytics.daily_search_stats`],
    ['searches of the last day', `SELECT count(*) FROM analytics.searches WHERE searched_at > now() - interval '1 day'`],
    ['case_retrieval_stats top 5', `SELECT * FROM analytics.case_retrieval_stats ORDER BY times_returned DESC LIMIT 5`],
    ['search_hits same-class share', `SELECT query_malignancy_class, avg((case_malignancy_class = query_malignancy_class)::int) FROM analytics.search_hits WHERE query_kind = 'CASE' AND rank <= 5 GROUP BY 1`],
    ['models', `SELECT * FROM analytics.models`],
  ];
  for (const [name, sql] of queries) {
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t = performance.now();
      await q(sql);
      times.push(performance.now() - t);
    }
    console.log(`${name}: ${times.map((t) => t.toFixed(0)).join(' / ')} ms`);
  }
} finally {
  await db.close();
}
