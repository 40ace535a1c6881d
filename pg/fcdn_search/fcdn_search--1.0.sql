-- fcdn_search 1.0: the compiled parts of the packed-block search. The tables, triggers and the
-- rebuild function live in migrations/0002_search_blocks.sql (schema fcdn_search); this file only
-- adds the C functions, so the migration works where the extension is missing (PGlite).
\echo Use "CREATE EXTENSION fcdn_search SCHEMA fcdn_search" to load this file. \quit

-- The k best cases of one model's blocks by (joint, dm, case_id), with the plain SQL's
-- eligibility filters; see fcdn_search.c. Not STRICT: NULL filters mean "no filter".
CREATE FUNCTION @extschema@.topk(
  blocks regclass, model_id int4, q_shallow int8[], q_middle int8, q_deep int8[],
  ws float8, wm float8, wd float8, k int4,
  exclude_case int4, exclude_patients int4[], class_mask int4,
  min_diameter float8, max_diameter float8, restrict_patient bool, only_patient int4,
  skip_cases int4[])
RETURNS TABLE (case_id int4, dl int4, dm int4, dd int4, joint float8)
AS 'MODULE_PATHNAME', 'fcdn_topk'
LANGUAGE C STABLE PARALLEL RESTRICTED ROWS 10;

-- One case record of a block (layout in fcdn_search.c).
CREATE FUNCTION @extschema@.pack_case(
  case_id int4, patient_id int4, class int4, diameter_mm float8, middle0 int8,
  shallow int8[], deep int8[])
RETURNS bytea
AS 'MODULE_PATHNAME', 'fcdn_pack_case'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

-- The records of one block (concatenated in ascending case_id) in the scan's layout 2: columns,
-- with per-case reference codes and spreads for the lower bound (fcdn_search.c).
CREATE FUNCTION @extschema@.pack_block(records bytea)
RETURNS bytea
AS 'MODULE_PATHNAME', 'fcdn_pack_block'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
