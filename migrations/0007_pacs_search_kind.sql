-- Searches by PACS nodule (issue 15: the service fetches the slices over DICOMweb) were logged as
-- IMAGES because the CHECK allowed only CASE and IMAGES: an analyst could not tell them apart.
-- They are PACS now; rows logged before this migration stay IMAGES (what they were can no longer
-- be told). daily_search_stats gains pacs_searches at its end (CREATE OR REPLACE VIEW may only
-- append columns), so queries written against it keep working.

ALTER TABLE search_log DROP CONSTRAINT search_log_query_kind_check;
ALTER TABLE search_log ADD CONSTRAINT search_log_query_kind_check CHECK (query_kind IN ('CASE', 'IMAGES', 'PACS'));

COMMENT ON COLUMN analytics.searches.query_kind IS 'CASE: the query was a stored case (query_case_id); IMAGES: new slices sent with the request; PACS: slices the service fetched from the PACS by their UIDs';
COMMENT ON COLUMN analytics.search_hits.query_kind IS 'CASE, IMAGES or PACS';

CREATE OR REPLACE VIEW analytics.daily_search_stats AS
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
  avg(cardinality(l.result_case_ids))      AS mean_results,
  count(*) FILTER (WHERE l.query_kind = 'PACS')::integer   AS pacs_searches
FROM search_log l
JOIN model_versions m ON m.id = l.model_id
GROUP BY 1, l.model_id, m.name;

COMMENT ON COLUMN analytics.daily_search_stats.image_searches IS 'of which with new slices sent with the request as the query';
COMMENT ON COLUMN analytics.daily_search_stats.pacs_searches IS 'of which with slices fetched from the PACS as the query';
