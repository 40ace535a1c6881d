/**
 * An analyst's story: after cases are ingested and searched through the service layer, the views
 * of the "analytics" schema (migrations/0003_analytics_views.sql) report exactly those searches
 * (ids, k, model, ranked result ids, no patient keys), the cases with their labels, reports and
 * the model of their codes, and per-day latency percentiles that match a reference computation.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { SimilarCasesAnswer } from '../../src/services/search.service.ts';
import { phantomSlices } from '../../fixtures/phantom-cases.ts';
import { databaseLabel } from '../../fixtures/test-database.ts';
import { startTestService, type TestService } from '../../fixtures/test-service.ts';

let svc: TestService;
const caseIds: number[] = [];
const answers: { kind: 'CASE' | 'IMAGES'; k: number; queryCaseId: number | null; answer: SimilarCasesAnswer }[] = [];

const CASES = [
  { externalId: 'an-0', patientKey: 'PSEUDO-AN-1', malignancy: 1, diameterMm: 5.5, diameterPx: 8, report: 'Small solid nodule, left lower lobe.' },
  { externalId: 'an-1', patientKey: 'PSEUDO-AN-1', malignancy: 5, diameterMm: 21, diameterPx: 26, report: 'Spiculated mass, right upper lobe.' },
  { externalId: 'an-2', patientKey: 'PSEUDO-AN-2', malignancy: 3, diameterMm: 11, diameterPx: 14, report: 'Ground-glass nodule, follow up in 6 months.' },
  { externalId: 'an-3', patientKey: 'PSEUDO-AN-3', malignancy: 4, diameterMm: 17, diameterPx: 22, report: 'Part-solid nodule with a growing solid part.' },
  { externalId: 'an-4', patientKey: 'PSEUDO-AN-4', malignancy: 2, diameterMm: 7, diameterPx: 10, report: 'Calcified granuloma.' },
];

/** percentile_cont as Postgres defines it: linear interpolation at position p * (n - 1). */
function percentileCont(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const pos = p * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

async function logRows(): Promise<number> {
  const [row] = await svc.db.raw.query<{ n: number }>('SELECT count(*)::integer AS n FROM search_log');
  return row!.n;
}

before(async () => {
  svc = await startTestService();
  const { ingest, search } = svc.service.services;
  for (const [i, c] of CASES.entries()) {
    caseIds.push(
      await ingest.ingestCase({
        externalId: c.externalId,
        patientKey: c.patientKey,
        studyInstanceUid: `1.2.826.0.1.3680043.10.77.${i}`,
        images: phantomSlices({ seed: 40 + i, diameterPx: c.diameterPx }),
        malignancy: c.malignancy,
        diameterMm: c.diameterMm,
        report: { text: c.report, impression: c.malignancy >= 4 ? 'suspicious' : 'likely benign' },
      }),
    );
  }
  for (const [queryCaseId, k] of [[caseIds[0]!, 2], [caseIds[2]!, 3]] as const) {
    answers.push({ kind: 'CASE', k, queryCaseId, answer: await search.similarCases({ caseId: queryCaseId, k }) });
  }
  answers.push({ kind: 'IMAGES', k: 4, queryCaseId: null, answer: await search.similarCases({ images: phantomSlices({ seed: 99, diameterPx: 20 }), k: 4, weights: { shallow: 0.5, middle: 1, deep: 2 } }) });
  // The service writes the log after answering, without making the caller wait.
  for (let i = 0; i < 100 && (await logRows()) < answers.length; i++) await new Promise((r) => setTimeout(r, 50));
});

after(async () => svc?.stop());

test(`analytics.searches holds each search: kind, k, model, ranked result ids, timings (${databaseLabel})`, async () => {
  const rows = await svc.db.raw.query<Record<string, any>>('SELECT * FROM analytics.searches ORDER BY search_id');
  assert.equal(rows.length, 3);
  const active = (await svc.service.services.models.active()).version;
  for (const [i, row] of rows.entries()) {
    const { kind, k, queryCaseId, answer } = answers[i]!;
    assert.equal(row.query_kind, kind);
    assert.equal(row.k, k);
    assert.equal(row.query_case_id, queryCaseId);
    assert.equal(row.model_name, active.name);
    assert.equal(row.model_id, active.id);
    assert.deepEqual(row.result_case_ids, answer.hits.map((h) => h.caseId), 'result ids in rank order');
    assert.equal(row.result_count, answer.hits.length);
    assert.equal(row.top_case_id, answer.hits[0]!.caseId);
    assert.ok(Math.abs(row.took_ms - answer.tookMs) < 1e-6, 'the logged latency is the one the caller saw');
    assert.equal(row.query_slices, 3);
    assert.equal(String(row.search_day instanceof Date ? row.search_day.toISOString().slice(0, 10) : row.search_day), new Date().toISOString().slice(0, 10));
  }
  assert.deepEqual([rows[2]!.weight_shallow, rows[2]!.weight_middle, rows[2]!.weight_deep], [0.5, 1, 2]);
  // k = 2 from a case of PSEUDO-AN-1: the patient's other case is left out, so 2 of the 3 others.
  assert.ok(!rows[0]!.result_case_ids.includes(caseIds[1]), 'the same patient is excluded');
  // No patient key appears in any search view, not even by value.
  for (const view of ['searches', 'search_hits', 'daily_search_stats', 'model_search_stats']) {
    const text = JSON.stringify(await svc.db.raw.query(`SELECT * FROM analytics.${view}`));
    assert.doesNotMatch(text, /PSEUDO-AN/, `${view} carries no patient key`);
  }
});

test('analytics.search_hits and case_retrieval_stats count every returned case at its rank', async () => {
  const hits = await svc.db.raw.query<{ search_id: string; rank: number; case_id: number; case_malignancy_class: string }>(
    'SELECT search_id::text, rank, case_id, case_malignancy_class FROM analytics.search_hits ORDER BY search_id, rank',
  );
  const expected = answers.flatMap(({ answer }) => answer.hits.map((h, i) => ({ rank: i + 1, caseId: h.caseId })));
  assert.deepEqual(hits.map((h) => ({ rank: h.rank, caseId: h.case_id })), expected);
  const classOf = new Map(CASES.map((c, i) => [caseIds[i]!, c.malignancy < 3 ? 'BENIGN' : c.malignancy === 3 ? 'INDETERMINATE' : 'MALIGNANT']));
  for (const h of hits) assert.equal(h.case_malignancy_class, classOf.get(h.case_id));

  const stats = await svc.db.raw.query<{ case_id: number; times_returned: number; times_rank1: number; mean_rank: number | null }>(
    'SELECT case_id, times_returned, times_rank1, mean_rank::float8 AS mean_rank FROM analytics.case_retrieval_stats ORDER BY case_id',
  );
  assert.equal(stats.length, CASES.length, 'every case, returned or not');
  for (const s of stats) {
    const ranks = expected.filter((e) => e.caseId === s.case_id).map((e) => e.rank);
    assert.equal(s.times_returned, ranks.length, `case ${s.case_id} returned`);
    assert.equal(s.times_rank1, ranks.filter((r) => r === 1).length);
    assert.equal(s.mean_rank, ranks.length ? ranks.reduce((a, b) => a + b, 0) / ranks.length : null);
  }
});

test('analytics.cases lists each case with its labels, report and the model of its codes', async () => {
  const rows = await svc.db.raw.query<Record<string, any>>('SELECT * FROM analytics.cases ORDER BY case_id');
  const active = (await svc.service.services.models.active()).version;
  assert.deepEqual(rows.map((r) => r.case_id), caseIds);
  for (const [i, row] of rows.entries()) {
    const c = CASES[i]!;
    assert.equal(row.external_id, c.externalId);
    assert.equal(row.patient_key, c.patientKey);
    assert.equal(row.malignancy, c.malignancy);
    assert.equal(row.diameter_mm, c.diameterMm);
    assert.equal(row.slice_count, 3);
    assert.equal(row.report_count, 1);
    assert.equal(row.latest_report_excerpt, c.report);
    assert.equal(row.latest_impression, c.malignancy >= 4 ? 'suspicious' : 'likely benign');
    assert.equal(row.study_instance_uid, `1.2.826.0.1.3680043.10.77.${i}`);
    assert.equal(row.coded_by_active_model, true);
    assert.deepEqual(row.code_model_names, [active.name]);
    assert.equal(row.active_model_name, active.name);
  }
  const reports = await svc.db.raw.query<{ case_external_id: string; text_length: number }>('SELECT case_external_id, text_length FROM analytics.reports ORDER BY report_id');
  assert.deepEqual(reports, CASES.map((c) => ({ case_external_id: c.externalId, text_length: c.report.length })));
  const [model] = await svc.db.raw.query<{ coded_cases: number; coded_slices: number; searches: number }>(
    'SELECT coded_cases, coded_slices, searches FROM analytics.models WHERE active',
  );
  assert.deepEqual(model, { coded_cases: 5, coded_slices: 15, searches: 3 });
});

test('analytics.daily_search_stats: searches per UTC day and model, with p50/p95/p99 as percentile_cont computes them', async () => {
  const [today] = await svc.db.raw.query<Record<string, any>>(
    `SELECT searches, case_searches, image_searches, p50_ms, p95_ms, p99_ms, max_ms, mean_k::float8 AS mean_k FROM analytics.daily_search_stats
     WHERE search_day = (now() AT TIME ZONE 'UTC')::date`,
  );
  const took = answers.map((a) => a.answer.tookMs);
  assert.equal(today!.searches, 3);
  assert.equal(today!.case_searches, 2);
  assert.equal(today!.image_searches, 1);
  for (const [col, p] of [['p50_ms', 0.5], ['p95_ms', 0.95], ['p99_ms', 0.99]] as const) {
    assert.ok(Math.abs(today![col] - percentileCont(took, p)) < 1e-6, `${col} of the real searches`);
  }
  assert.ok(Math.abs(today!.max_ms - Math.max(...took)) < 1e-6);
  assert.equal(today!.mean_k, 3);

  // A past day with 100 known latencies (1..100 ms, logged in shuffled order) pins the percentiles,
  // and one search at 23:30 UTC must count for that UTC day even in a session west of UTC.
  const modelId = (await svc.service.services.models.active()).version.id;
  const latencies = Array.from({ length: 100 }, (_, i) => ((i * 37) % 100) + 1);
  await svc.db.raw.query(
    `INSERT INTO search_log (searched_at, took_ms, k, model_id, query_kind, query_slices, weights, result_case_ids)
     SELECT '2026-01-15T08:00:00Z'::timestamptz + make_interval(secs => n), t, 10, $1, 'IMAGES', 1, '{"shallow":1,"middle":1,"deep":1}', '{}'
     FROM unnest($2::float8[]) WITH ORDINALITY AS x(t, n)`,
    [modelId, latencies],
  );
  await svc.db.raw.query(
    `INSERT INTO search_log (searched_at, took_ms, k, model_id, query_kind, query_slices, weights, result_case_ids)
     VALUES ('2026-01-16T23:30:00Z', 7, 5, $1, 'CASE', 3, '{"shallow":1,"middle":1,"deep":1}', '{}')`,
    [modelId],
  );
  const days = await svc.db.raw.transaction(async (tx) => {
    await tx.query(`SET LOCAL TimeZone = 'America/New_York'`);
    return tx.query<Record<string, any>>(
      `SELECT search_day::text AS day, searches, p50_ms, p95_ms, p99_ms, mean_ms FROM analytics.daily_search_stats
       WHERE search_day BETWEEN '2026-01-15' AND '2026-01-17' ORDER BY search_day`,
    );
  });
  assert.deepEqual(days.map((d) => [d.day, d.searches]), [['2026-01-15', 100], ['2026-01-16', 1]]);
  assert.deepEqual([days[0]!.p50_ms, days[0]!.p95_ms, days[0]!.p99_ms].map((v) => Math.round(v * 1e6) / 1e6), [50.5, 95.05, 99.01]);
  assert.equal(days[0]!.mean_ms, 50.5);

  const [overall] = await svc.db.raw.query<{ searches: number; p50_ms: number }>('SELECT searches, p50_ms FROM analytics.model_search_stats WHERE model_id = $1', [modelId]);
  assert.equal(overall!.searches, 104);
  assert.ok(Math.abs(overall!.p50_ms - percentileCont([...latencies, 7, ...took], 0.5)) < 1e-6);
});

test('every analytics view and every column has a comment', async () => {
  const undocumented = await svc.db.raw.query<{ what: string }>(
    `SELECT c.relname || coalesce('.' || a.attname, '') AS what
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'analytics'
     LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
     WHERE c.relkind = 'v' AND (obj_description(c.oid, 'pg_class') IS NULL OR col_description(c.oid, a.attnum) IS NULL)`,
  );
  assert.deepEqual(undocumented, []);
  const [views] = await svc.db.raw.query<{ n: number }>(`SELECT count(*)::integer AS n FROM pg_views WHERE schemaname = 'analytics'`);
  assert.equal(views!.n, 8);
});
