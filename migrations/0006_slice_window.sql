-- The slice window of the Joint distance (PRODUCT.md "Joint distance"; FCDN_SLICE_WINDOW, default 1):
-- DL and DD use only the slices at offsets -N..N of the query and of each stored case. Cases may
-- store more slices (the importer keeps up to 64 for display); they must not enter a distance.
--
-- The packed blocks of the compiled search (0002_search_blocks.sql) held every slice of a case, so
-- a block set now records the window it was packed with, rebuild_blocks packs only the slices in
-- that window, and fcdn_search.blocks_for_window hands the blocks to fcdn_search.topk only when
-- they were packed with the window the search asks for: blocks of another window (or of none)
-- count as absent (SQLSTATE FCB01, as "never built"), so the repository answers with the plain SQL
-- and rebuilds them (src/repositories/search-sql.ts). The C extension is unchanged.

-- NULL: not built with a window (every slice): never used.
ALTER TABLE fcdn_search.block_sets ADD COLUMN slice_window integer CHECK (slice_window >= 0);

-- Blocks built before this migration packed every slice: forget them (the first search rebuilds).
DELETE FROM fcdn_search.blocks;
DELETE FROM fcdn_search.dirty;
DELETE FROM fcdn_search.block_sets;

-- The blocks table of one model, if its blocks were packed with this window; else FCB01.
-- STABLE: it reads with the snapshot of the search that calls it, the one fcdn_search.topk reads
-- the blocks with, and rebuild_blocks writes blocks and window in one transaction.
CREATE FUNCTION fcdn_search.blocks_for_window(p_model integer, p_slice_window integer)
RETURNS regclass
LANGUAGE plpgsql STABLE AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM fcdn_search.block_sets s
                 WHERE s.model_id = p_model AND s.built_at IS NOT NULL AND s.slice_window = p_slice_window) THEN
    RAISE EXCEPTION 'fcdn_search: no blocks for model % with slice window %', p_model, p_slice_window
      USING ERRCODE = 'FCB01', HINT = 'Build them with fcdn_search.rebuild_blocks(model_id, slice_window).';
  END IF;
  RETURN 'fcdn_search.blocks'::regclass;
END $$;

-- rebuild_blocks (0002) now takes the window; otherwise as before: the same exactness argument
-- (REPEATABLE READ, or SHARE locks in READ COMMITTED), the same placement of records.
DROP FUNCTION fcdn_search.rebuild_blocks(integer, integer);

CREATE FUNCTION fcdn_search.rebuild_blocks(p_model integer, p_slice_window integer, p_block_bytes integer DEFAULT 7000)
RETURNS TABLE (built_cases integer, built_blocks integer, built_bytes bigint)
LANGUAGE plpgsql AS $$
DECLARE
  t0 timestamptz := clock_timestamp();
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'fcdn_search') THEN
    RAISE EXCEPTION 'the fcdn_search extension is not installed here (scripts/install-fcdn-search.sh)';
  END IF;
  IF p_slice_window IS NULL OR p_slice_window < 0 THEN
    RAISE EXCEPTION 'fcdn_search.rebuild_blocks: the slice window must be an integer >= 0, got %', p_slice_window;
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
    WHERE sc.model_id = p_model AND abs(sc.slice_offset) <= p_slice_window
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
         slice_window = p_slice_window,
         cases = (SELECT coalesce(sum(b.n_cases), 0) FROM fcdn_search.blocks b WHERE b.model_id = p_model),
         blocks = (SELECT count(*) FROM fcdn_search.blocks b WHERE b.model_id = p_model),
         bytes = (SELECT coalesce(sum(length(b.data)), 0) FROM fcdn_search.blocks b WHERE b.model_id = p_model),
         build_ms = extract(epoch FROM clock_timestamp() - t0) * 1000
   WHERE s.model_id = p_model;
  RETURN QUERY SELECT s.cases, s.blocks, s.bytes FROM fcdn_search.block_sets s WHERE s.model_id = p_model;
END $$;
