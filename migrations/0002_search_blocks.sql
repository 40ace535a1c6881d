-- Packed code blocks for the exact fast Joint-distance search ("blocks" method; the SQL and its
-- explanation: src/repositories/search-sql.ts; measurements: docs/benchmarks/search.md).
--
-- Per model version, every case's codes are copied into fcdn_search.blocks, ~100 cases per row in
-- one uncompressed bytea (STORAGE PLAIN: a row fits one 8 KB page, is never compressed or moved to
-- TOAST, so the C function fcdn_search.topk reads it in place from the shared buffer). The copy is
-- a snapshot; every later change of a case under a model that has blocks is recorded here by
-- triggers in fcdn_search.dirty, in the writer's own transaction:
--   * slice_codes INSERT / UPDATE / DELETE (ingest, replace under the same externalId, delete
--     (cascade), reindex upserts);
--   * nodule_cases UPDATE of patient_id, malignancy_class or diameter_mm (the filtered fields);
--   * TRUNCATE of slice_codes drops all blocks.
-- A search skips dirty cases inside the blocks and ranks them with the plain SQL instead, so the
-- answer is always that of the plain SQL over the current rows. fcdn_search.rebuild_blocks folds
-- the dirty cases back in (src/repositories/search-methods/blocks.ts runs it when they pile up).
--
-- The tables, triggers and the rebuild function exist everywhere (PGlite too: they cost a few
-- statements per write and do nothing while no model has blocks); the C functions (topk,
-- pack_case) come from the fcdn_search extension (pg/fcdn_search, scripts/install-fcdn-search.sh),
-- created below only where it is installed. The schema is not "public", so Prisma's mirror of the
-- public tables (prisma/schema.prisma) is unaffected.

CREATE SCHEMA IF NOT EXISTS fcdn_search;

-- Which models have blocks (their triggers record changes from the moment a row is here).
CREATE TABLE fcdn_search.block_sets (
  model_id    integer PRIMARY KEY REFERENCES model_versions(id) ON DELETE CASCADE,
  built_at    timestamptz,
  cases       integer NOT NULL DEFAULT 0,
  blocks      integer NOT NULL DEFAULT 0,
  bytes       bigint NOT NULL DEFAULT 0,
  build_ms    double precision
);

CREATE TABLE fcdn_search.blocks (
  model_id  integer NOT NULL REFERENCES model_versions(id) ON DELETE CASCADE,
  block_no  integer NOT NULL,
  n_cases   integer NOT NULL,
  data      bytea NOT NULL,   -- case records in ascending case_id (layout: pg/fcdn_search/fcdn_search.c)
  PRIMARY KEY (model_id, block_no)
);
ALTER TABLE fcdn_search.blocks ALTER COLUMN data SET STORAGE PLAIN;

-- Cases changed since their model's blocks were built: skipped in the blocks, ranked by plain SQL.
CREATE TABLE fcdn_search.dirty (
  model_id   integer NOT NULL REFERENCES model_versions(id) ON DELETE CASCADE,
  case_id    integer NOT NULL,
  marked_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (model_id, case_id)
);

-- ON CONFLICT ... DO UPDATE (not DO NOTHING): re-marking an already dirty case writes a new row
-- version, so a concurrent rebuild in REPEATABLE READ that deletes the old version fails with a
-- serialization error and retries instead of forgetting the newer change.
CREATE FUNCTION fcdn_search.mark_codes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    INSERT INTO fcdn_search.dirty (model_id, case_id)
    SELECT DISTINCT n.model_id, n.case_id FROM new_rows n JOIN fcdn_search.block_sets b ON b.model_id = n.model_id
    ORDER BY 1, 2
    ON CONFLICT (model_id, case_id) DO UPDATE SET marked_at = EXCLUDED.marked_at;
  END IF;
  IF TG_OP IN ('DELETE', 'UPDATE') THEN
    INSERT INTO fcdn_search.dirty (model_id, case_id)
    SELECT DISTINCT o.model_id, o.case_id FROM old_rows o JOIN fcdn_search.block_sets b ON b.model_id = o.model_id
    ORDER BY 1, 2
    ON CONFLICT (model_id, case_id) DO UPDATE SET marked_at = EXCLUDED.marked_at;
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER fcdn_search_codes_ins AFTER INSERT ON slice_codes
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION fcdn_search.mark_codes();
CREATE TRIGGER fcdn_search_codes_upd AFTER UPDATE ON slice_codes
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION fcdn_search.mark_codes();
CREATE TRIGGER fcdn_search_codes_del AFTER DELETE ON slice_codes
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION fcdn_search.mark_codes();

CREATE FUNCTION fcdn_search.mark_cases() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO fcdn_search.dirty (model_id, case_id)
  SELECT DISTINCT b.model_id, x.id
  FROM (SELECT n.id FROM new_rows n LEFT JOIN old_rows o ON o.id = n.id
        WHERE o.id IS NULL
           OR (o.patient_id, o.malignancy_class, o.diameter_mm) IS DISTINCT FROM (n.patient_id, n.malignancy_class, n.diameter_mm)
        UNION
        SELECT o.id FROM old_rows o WHERE NOT EXISTS (SELECT 1 FROM new_rows n WHERE n.id = o.id)) x
  CROSS JOIN fcdn_search.block_sets b
  ORDER BY 1, 2
  ON CONFLICT (model_id, case_id) DO UPDATE SET marked_at = EXCLUDED.marked_at;
  RETURN NULL;
END $$;

CREATE TRIGGER fcdn_search_cases_upd AFTER UPDATE ON nodule_cases
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION fcdn_search.mark_cases();

CREATE FUNCTION fcdn_search.forget_all() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM fcdn_search.blocks;
  DELETE FROM fcdn_search.dirty;
  DELETE FROM fcdn_search.block_sets;
  RETURN NULL;
END $$;

CREATE TRIGGER fcdn_search_codes_truncate AFTER TRUNCATE ON slice_codes
  FOR EACH STATEMENT EXECUTE FUNCTION fcdn_search.forget_all();

-- (Re)builds one model's blocks from the rows this transaction sees and forgets the dirty marks
-- it saw. Exact only if no change can slip between what it reads and what it forgets:
--   * in REPEATABLE READ (how src/repositories/search-methods/blocks.ts calls it, after
--     registering the model in block_sets and waiting out the writers that started before), one
--     snapshot covers both, and later changes stay marked;
--   * in READ COMMITTED it takes SHARE locks on nodule_cases and slice_codes first (writers wait).
-- Cases without codes for the centre slice (offset 0) are left out, as the plain SQL leaves them
-- out. Records are placed by a running byte sum: a block ends within ~7 KB + one record, so a row
-- fits one page (cases have 1..64 slices, 32 + 16 bytes per slice; pack_block's layout is no
-- larger than the records it is made of).
CREATE FUNCTION fcdn_search.rebuild_blocks(p_model integer, p_block_bytes integer DEFAULT 7000)
RETURNS TABLE (built_cases integer, built_blocks integer, built_bytes bigint)
LANGUAGE plpgsql AS $$
DECLARE
  t0 timestamptz := clock_timestamp();
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'fcdn_search') THEN
    RAISE EXCEPTION 'the fcdn_search extension is not installed here (scripts/install-fcdn-search.sh)';
  END IF;
  IF current_setting('transaction_isolation') = 'read committed' THEN
    LOCK TABLE nodule_cases, slice_codes IN SHARE MODE;
  END IF;
  INSERT INTO fcdn_search.block_sets (model_id) VALUES (p_model) ON CONFLICT (model_id) DO NOTHING;
  DELETE FROM fcdn_search.dirty d WHERE d.model_id = p_model;
  DELETE FROM fcdn_search.blocks b WHERE b.model_id = p_model;
  INSERT INTO fcdn_search.blocks (model_id, block_no, n_cases, data)
  WITH per_case AS (
    SELECT sc.case_id,
           array_agg(sc.shallow::int8 ORDER BY sc.slice_offset) AS sh,
           array_agg(sc.deep::int8 ORDER BY sc.slice_offset) AS dp,
           min(sc.middle::int8) FILTER (WHERE sc.slice_offset = 0) AS m0
    FROM slice_codes sc
    WHERE sc.model_id = p_model
    GROUP BY sc.case_id
  ), recs AS (
    SELECT pc.case_id,
           fcdn_search.pack_case(pc.case_id, c.patient_id,
             CASE c.malignancy_class WHEN 'BENIGN' THEN 1 WHEN 'INDETERMINATE' THEN 2 WHEN 'MALIGNANT' THEN 3 ELSE 0 END,
             c.diameter_mm, pc.m0, pc.sh, pc.dp) AS rec
    FROM per_case pc JOIN nodule_cases c ON c.id = pc.case_id
    WHERE pc.m0 IS NOT NULL
  ), placed AS (
    SELECT r.case_id, r.rec, ((sum(length(r.rec)) OVER (ORDER BY r.case_id) - 1) / p_block_bytes)::integer AS block_no
    FROM recs r
  )
  SELECT p_model, pl.block_no, count(*)::integer, fcdn_search.pack_block(string_agg(pl.rec, ''::bytea ORDER BY pl.case_id))
  FROM placed pl
  GROUP BY pl.block_no;
  -- At least one row per built model: "no row at all" means "not built" to fcdn_search.topk.
  INSERT INTO fcdn_search.blocks (model_id, block_no, n_cases, data)
  SELECT p_model, -1, 0, ''::bytea
  WHERE NOT EXISTS (SELECT 1 FROM fcdn_search.blocks b WHERE b.model_id = p_model);
  UPDATE fcdn_search.block_sets s
     SET built_at = now(),
         cases = (SELECT coalesce(sum(b.n_cases), 0) FROM fcdn_search.blocks b WHERE b.model_id = p_model),
         blocks = (SELECT count(*) FROM fcdn_search.blocks b WHERE b.model_id = p_model),
         bytes = (SELECT coalesce(sum(length(b.data)), 0) FROM fcdn_search.blocks b WHERE b.model_id = p_model),
         build_ms = extract(epoch FROM clock_timestamp() - t0) * 1000
   WHERE s.model_id = p_model;
  RETURN QUERY SELECT s.cases, s.blocks, s.bytes FROM fcdn_search.block_sets s WHERE s.model_id = p_model;
END $$;

-- The compiled part, where it is installed (never on PGlite). Without the privilege to create it
-- the migration still succeeds and the service ranks with the plain SQL.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'fcdn_search') THEN
    BEGIN
      CREATE EXTENSION IF NOT EXISTS fcdn_search SCHEMA fcdn_search;
    EXCEPTION WHEN insufficient_privilege THEN
      RAISE NOTICE 'fcdn_search is available but could not be created (%); searches use the plain SQL', SQLERRM;
    END;
  END IF;
END $$;
