-- Read-only views for analysts (docs/analytics.md has example queries and their output).
--
-- They live in their own schema "analytics", so Prisma's mirror of the public tables
-- (prisma/schema.prisma, checked by test/db/schema-agreement.test.ts) is unaffected, and an
-- analyst role can be granted USAGE on this schema alone. Days are UTC calendar days, whatever
-- the session's TimeZone. Percentiles are percentile_cont (linear interpolation), which
-- Postgres and PGlite both have. No view exposes images, and the search views carry ids only:
-- search_log never stores a patient key or an image.

CREATE SCHEMA IF NOT EXISTS analytics;
COMMENT ON SCHEMA analytics IS 'Documented read-only views for analysts: the search log, cases with labels and reports, retrieval statistics (docs/analytics.md).';

-- ------------------------------------------------------------------ the search log
CREATE VIEW analytics.searches AS
SELECT
  l.id                                   AS search_id,
  l.searched_at,
  (l.searched_at AT TIME ZONE 'UTC')::date AS search_day,
  l.took_ms,
  l.k,
  l.model_id,
  m.name                                 AS model_name,
  l.query_kind,
  l.query_case_id,
  l.query_slices,
  (l.weights ->> 'shallow')::double precision AS weight_shallow,
  (l.weights ->> 'middle')::double precision  AS weight_middle,
  (l.weights ->> 'deep')::double precision    AS weight_deep,
  cardinality(l.result_case_ids)         AS result_count,
  l.result_case_ids,
  l.result_case_ids[1]                   AS top_case_id
FROM search_log l
JOIN model_versions m ON m.id = l.model_id;

COMMENT ON VIEW analytics.searches IS 'One row per answered similarCases search (failed searches are not logged). Ids and timings only: no images, no patient keys.';
COMMENT ON COLUMN analytics.searches.search_id IS 'search_log.id, increasing in the order searches were logged';
COMMENT ON COLUMN analytics.searches.searched_at IS 'when the search was logged (just after it was answered)';
COMMENT ON COLUMN analytics.searches.search_day IS 'UTC calendar day of searched_at';
COMMENT ON COLUMN analytics.searches.took_ms IS 'server-side time of the whole search in milliseconds, inference included (SimilarCasesResult.tookMs)';
COMMENT ON COLUMN analytics.searches.k IS 'number of hits asked for';
COMMENT ON COLUMN analytics.searches.model_id IS 'model version whose codes ranked the cases (model_versions.id)';
COMMENT ON COLUMN analytics.searches.model_name IS 'name of that model version';
COMMENT ON COLUMN analytics.searches.query_kind IS 'CASE: the query was a stored case (query_case_id); IMAGES: new slices sent with the request';
COMMENT ON COLUMN analytics.searches.query_case_id IS 'the stored case searched with (CASE queries), else null';
COMMENT ON COLUMN analytics.searches.query_slices IS 'number of query slices';
COMMENT ON COLUMN analytics.searches.weight_shallow IS 'Joint-distance weight of DL (layer-4 codes)';
COMMENT ON COLUMN analytics.searches.weight_middle IS 'Joint-distance weight of DM (layer-17 codes)';
COMMENT ON COLUMN analytics.searches.weight_deep IS 'Joint-distance weight of DD (layer-25 codes)';
COMMENT ON COLUMN analytics.searches.result_count IS 'number of hits returned (at most k; fewer when filters leave fewer cases)';
COMMENT ON COLUMN analytics.searches.result_case_ids IS 'ids of the returned cases in rank order (rank 1 first)';
COMMENT ON COLUMN analytics.searches.top_case_id IS 'id of the rank-1 case, null when nothing was returned';

-- One row per (search, returned case): rank and label of every hit, for "what comes back" questions.
CREATE VIEW analytics.search_hits AS
SELECT
  l.id                 AS search_id,
  l.searched_at,
  (l.searched_at AT TIME ZONE 'UTC')::date AS search_day,
  l.model_id,
  l.query_kind,
  l.query_case_id,
  h.rank::integer      AS rank,
  h.case_id,
  c.malignancy_class   AS case_malignancy_class,
  q.malignancy_class   AS query_malignancy_class
FROM search_log l
CROSS JOIN LATERAL unnest(l.result_case_ids) WITH ORDINALITY AS h(case_id, rank)
LEFT JOIN nodule_cases c ON c.id = h.case_id
LEFT JOIN nodule_cases q ON q.id = l.query_case_id;

COMMENT ON VIEW analytics.search_hits IS 'One row per returned case of each logged search, with its rank and diagnosis (and the query case''s diagnosis for CASE queries). Deleted cases keep their row with null classes.';
COMMENT ON COLUMN analytics.search_hits.search_id IS 'analytics.searches.search_id';
COMMENT ON COLUMN analytics.search_hits.searched_at IS 'when the search was logged';
COMMENT ON COLUMN analytics.search_hits.search_day IS 'UTC calendar day of searched_at';
COMMENT ON COLUMN analytics.search_hits.model_id IS 'model version of the search';
COMMENT ON COLUMN analytics.search_hits.query_kind IS 'CASE or IMAGES';
COMMENT ON COLUMN analytics.search_hits.query_case_id IS 'the stored case searched with (CASE queries), else null';
COMMENT ON COLUMN analytics.search_hits.rank IS '1 = most similar';
COMMENT ON COLUMN analytics.search_hits.case_id IS 'the returned case';
COMMENT ON COLUMN analytics.search_hits.case_malignancy_class IS 'diagnosis of the returned case now (null if unlabelled or deleted since)';
COMMENT ON COLUMN analytics.search_hits.query_malignancy_class IS 'diagnosis of the query case now (CASE queries), else null';

-- ------------------------------------------------------------------ cases
-- Pre-aggregated joins rather than per-row subqueries: a whole-table scan stays one pass over
-- slices, reports and codes, and a filter on case_id is still pushed into each aggregate.
CREATE VIEW analytics.cases AS
SELECT
  c.id                   AS case_id,
  c.external_id,
  p.patient_key,
  s.study_instance_uid,
  c.series_instance_uid,
  c.malignancy,
  c.malignancy_class,
  c.diameter_mm,
  c.created_at,
  COALESCE(sl.slice_count, 0)        AS slice_count,
  COALESCE(rc.report_count, 0)       AS report_count,
  lr.impression                      AS latest_impression,
  left(lr.text, 200)                 AS latest_report_excerpt,
  am.name                            AS active_model_name,
  COALESCE(cm.coded_by_active, false) AS coded_by_active_model,
  COALESCE(cm.model_names, '{}')     AS code_model_names
FROM nodule_cases c
JOIN patients p ON p.id = c.patient_id
LEFT JOIN studies s ON s.id = c.study_id
LEFT JOIN (SELECT case_id, count(*)::integer AS slice_count FROM slices GROUP BY case_id) sl ON sl.case_id = c.id
LEFT JOIN (SELECT case_id, count(*)::integer AS report_count FROM diagnostic_reports GROUP BY case_id) rc ON rc.case_id = c.id
LEFT JOIN (SELECT DISTINCT ON (case_id) case_id, impression, text FROM diagnostic_reports
           WHERE case_id IS NOT NULL ORDER BY case_id, issued_at DESC NULLS LAST, id DESC) lr ON lr.case_id = c.id
LEFT JOIN (SELECT sc.case_id, array_agg(DISTINCT m.name ORDER BY m.name) AS model_names, bool_or(m.active) AS coded_by_active
           FROM slice_codes sc JOIN model_versions m ON m.id = sc.model_id GROUP BY sc.case_id) cm ON cm.case_id = c.id
LEFT JOIN model_versions am ON am.active;

COMMENT ON VIEW analytics.cases IS 'One row per stored nodule case: its labels, counts of slices and reports, the latest report, and the models its codes were made with.';
COMMENT ON COLUMN analytics.cases.case_id IS 'nodule_cases.id (the GraphQL NoduleCase.id)';
COMMENT ON COLUMN analytics.cases.external_id IS 'the caller''s idempotency key of the case (NoduleCase.externalId)';
COMMENT ON COLUMN analytics.cases.patient_key IS 'pseudonymous patient key as the hospital sent it (never a name or MRN)';
COMMENT ON COLUMN analytics.cases.study_instance_uid IS 'DICOM StudyInstanceUID of the case''s study, if given';
COMMENT ON COLUMN analytics.cases.series_instance_uid IS 'DICOM SeriesInstanceUID, if given';
COMMENT ON COLUMN analytics.cases.malignancy IS 'malignancy rating 1-5 (LIDC scale), if given';
COMMENT ON COLUMN analytics.cases.malignancy_class IS 'BENIGN (1-2), INDETERMINATE (3) or MALIGNANT (4-5)';
COMMENT ON COLUMN analytics.cases.diameter_mm IS 'nodule diameter in millimetres, if given';
COMMENT ON COLUMN analytics.cases.created_at IS 'when the case (or its latest replacement under the same external_id) was stored';
COMMENT ON COLUMN analytics.cases.slice_count IS 'number of stored slices';
COMMENT ON COLUMN analytics.cases.report_count IS 'number of reports attached to the case itself (reports attached only to the study are in analytics.reports)';
COMMENT ON COLUMN analytics.cases.latest_impression IS 'impression of the latest case report (by issued_at, then id)';
COMMENT ON COLUMN analytics.cases.latest_report_excerpt IS 'first 200 characters of the latest case report';
COMMENT ON COLUMN analytics.cases.active_model_name IS 'name of the model that serves searches now';
COMMENT ON COLUMN analytics.cases.coded_by_active_model IS 'true when the case has codes of the active model, i.e. searches can find it';
COMMENT ON COLUMN analytics.cases.code_model_names IS 'names of every model version with codes for this case, sorted';

CREATE VIEW analytics.reports AS
SELECT
  r.id               AS report_id,
  r.case_id,
  c.external_id      AS case_external_id,
  s.study_instance_uid,
  c.malignancy_class AS case_malignancy_class,
  r.impression,
  r.text,
  length(r.text)     AS text_length,
  r.issued_at,
  r.created_at
FROM diagnostic_reports r
LEFT JOIN nodule_cases c ON c.id = r.case_id
LEFT JOIN studies s ON s.id = COALESCE(r.study_id, c.study_id);

COMMENT ON VIEW analytics.reports IS 'One row per diagnostic report, attached to a case, a study, or both. The author column of the table is left out on purpose (a person''s name).';
COMMENT ON COLUMN analytics.reports.report_id IS 'diagnostic_reports.id';
COMMENT ON COLUMN analytics.reports.case_id IS 'the case the report belongs to, null for a study-level report';
COMMENT ON COLUMN analytics.reports.case_external_id IS 'that case''s external id';
COMMENT ON COLUMN analytics.reports.study_instance_uid IS 'the report''s study, else its case''s study';
COMMENT ON COLUMN analytics.reports.case_malignancy_class IS 'diagnosis of the case, null for study-level reports';
COMMENT ON COLUMN analytics.reports.impression IS 'the report''s impression, if given';
COMMENT ON COLUMN analytics.reports.text IS 'full report text';
COMMENT ON COLUMN analytics.reports.text_length IS 'length of the text in characters';
COMMENT ON COLUMN analytics.reports.issued_at IS 'when the report was issued, if given';
COMMENT ON COLUMN analytics.reports.created_at IS 'when the report was stored';

CREATE VIEW analytics.models AS
SELECT
  m.id        AS model_id,
  m.name      AS model_name,
  m.sha256,
  m.bits,
  m.active,
  m.created_at,
  (SELECT count(DISTINCT sc.case_id) FROM slice_codes sc WHERE sc.model_id = m.id)::integer AS coded_cases,
  (SELECT count(*) FROM slice_codes sc WHERE sc.model_id = m.id)::integer AS coded_slices,
  (SELECT count(*) FROM search_log l WHERE l.model_id = m.id)::integer AS searches
FROM model_versions m;

COMMENT ON VIEW analytics.models IS 'One row per registered model version: how many cases and slices it has codes for, and how many searches it answered.';
COMMENT ON COLUMN analytics.models.model_id IS 'model_versions.id';
COMMENT ON COLUMN analytics.models.model_name IS 'name from the model card';
COMMENT ON COLUMN analytics.models.sha256 IS 'SHA-256 of the ONNX file';
COMMENT ON COLUMN analytics.models.bits IS 'code length in bits';
COMMENT ON COLUMN analytics.models.active IS 'true for the one model that serves searches and ingests';
COMMENT ON COLUMN analytics.models.created_at IS 'when the model was registered';
COMMENT ON COLUMN analytics.models.coded_cases IS 'cases with at least one slice coded by this model';
COMMENT ON COLUMN analytics.models.coded_slices IS 'slices coded by this model';
COMMENT ON COLUMN analytics.models.searches IS 'logged searches this model answered';

-- ------------------------------------------------------------------ retrieval statistics
CREATE VIEW analytics.daily_search_stats AS
SELECT
  (l.searched_at AT TIME ZONE 'UTC')::date AS search_day,
  l.model_id,
  m.name                                   AS model_name,
  count(*)::integer                        AS searches,
  count(*) FILTER (WHERE l.query_kind = 'CASE')::integer   AS case_searches,
  count(*) FILTER (WHERE l.query_kind = 'IMAGES')::integer AS image_searches,
  percentile_cont(0.5)  WITHIN GROUP (ORDER BY l.took_ms) AS p50_ms,
  percentile_cont(0.95) WITHIN GROUP (ORDER BY l.took_ms) AS p95_ms,
  percentile_cont(0.99) WITHIN GROUP (ORDER BY l.took_ms) AS p99_ms,
  avg(l.took_ms)                           AS mean_ms,
  max(l.took_ms)                           AS max_ms,
  avg(l.k)                                 AS mean_k,
  avg(cardinality(l.result_case_ids))      AS mean_results
FROM search_log l
JOIN model_versions m ON m.id = l.model_id
GROUP BY 1, l.model_id, m.name;

COMMENT ON VIEW analytics.daily_search_stats IS 'Searches and their latency per UTC day and model version. Percentiles are percentile_cont (linear interpolation between the two nearest searches).';
COMMENT ON COLUMN analytics.daily_search_stats.search_day IS 'UTC calendar day';
COMMENT ON COLUMN analytics.daily_search_stats.model_id IS 'model version that answered';
COMMENT ON COLUMN analytics.daily_search_stats.model_name IS 'its name';
COMMENT ON COLUMN analytics.daily_search_stats.searches IS 'number of logged searches';
COMMENT ON COLUMN analytics.daily_search_stats.case_searches IS 'of which with a stored case as the query';
COMMENT ON COLUMN analytics.daily_search_stats.image_searches IS 'of which with new slices as the query';
COMMENT ON COLUMN analytics.daily_search_stats.p50_ms IS 'median took_ms';
COMMENT ON COLUMN analytics.daily_search_stats.p95_ms IS '95th percentile of took_ms';
COMMENT ON COLUMN analytics.daily_search_stats.p99_ms IS '99th percentile of took_ms';
COMMENT ON COLUMN analytics.daily_search_stats.mean_ms IS 'mean took_ms';
COMMENT ON COLUMN analytics.daily_search_stats.max_ms IS 'slowest search';
COMMENT ON COLUMN analytics.daily_search_stats.mean_k IS 'mean k asked for';
COMMENT ON COLUMN analytics.daily_search_stats.mean_results IS 'mean number of hits returned';

CREATE VIEW analytics.model_search_stats AS
SELECT
  l.model_id,
  m.name                   AS model_name,
  count(*)::integer        AS searches,
  min(l.searched_at)       AS first_search_at,
  max(l.searched_at)       AS last_search_at,
  percentile_cont(0.5)  WITHIN GROUP (ORDER BY l.took_ms) AS p50_ms,
  percentile_cont(0.95) WITHIN GROUP (ORDER BY l.took_ms) AS p95_ms,
  percentile_cont(0.99) WITHIN GROUP (ORDER BY l.took_ms) AS p99_ms,
  avg(l.took_ms)           AS mean_ms
FROM search_log l
JOIN model_versions m ON m.id = l.model_id
GROUP BY l.model_id, m.name;

COMMENT ON VIEW analytics.model_search_stats IS 'Searches and their latency per model version over the whole log.';
COMMENT ON COLUMN analytics.model_search_stats.model_id IS 'model version that answered';
COMMENT ON COLUMN analytics.model_search_stats.model_name IS 'its name';
COMMENT ON COLUMN analytics.model_search_stats.searches IS 'number of logged searches';
COMMENT ON COLUMN analytics.model_search_stats.first_search_at IS 'first logged search';
COMMENT ON COLUMN analytics.model_search_stats.last_search_at IS 'latest logged search';
COMMENT ON COLUMN analytics.model_search_stats.p50_ms IS 'median took_ms';
COMMENT ON COLUMN analytics.model_search_stats.p95_ms IS '95th percentile of took_ms';
COMMENT ON COLUMN analytics.model_search_stats.p99_ms IS '99th percentile of took_ms';
COMMENT ON COLUMN analytics.model_search_stats.mean_ms IS 'mean took_ms';

CREATE VIEW analytics.case_retrieval_stats AS
SELECT
  c.id                                         AS case_id,
  c.external_id,
  c.malignancy_class,
  count(h.case_id)::integer                    AS times_returned,
  count(h.case_id) FILTER (WHERE h.rank = 1)::integer AS times_rank1,
  avg(h.rank)                                  AS mean_rank,
  max(l.searched_at)                           AS last_returned_at
FROM nodule_cases c
LEFT JOIN (search_log l
           CROSS JOIN LATERAL unnest(l.result_case_ids) WITH ORDINALITY AS h(case_id, rank))
       ON h.case_id = c.id
GROUP BY c.id, c.external_id, c.malignancy_class;

COMMENT ON VIEW analytics.case_retrieval_stats IS 'How often each stored case was returned by logged searches, and at which ranks (cases never returned have times_returned = 0).';
COMMENT ON COLUMN analytics.case_retrieval_stats.case_id IS 'nodule_cases.id';
COMMENT ON COLUMN analytics.case_retrieval_stats.external_id IS 'the case''s external id';
COMMENT ON COLUMN analytics.case_retrieval_stats.malignancy_class IS 'its diagnosis';
COMMENT ON COLUMN analytics.case_retrieval_stats.times_returned IS 'number of logged searches that returned it';
COMMENT ON COLUMN analytics.case_retrieval_stats.times_rank1 IS 'of which as the most similar case';
COMMENT ON COLUMN analytics.case_retrieval_stats.mean_rank IS 'mean rank when returned (null if never)';
COMMENT ON COLUMN analytics.case_retrieval_stats.last_returned_at IS 'latest search that returned it';
