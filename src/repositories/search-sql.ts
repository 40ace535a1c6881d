/**
 * The Joint-distance search, in one place (PRODUCT.md "Joint distance"; Qin et al. 2019, eq. 22).
 *
 * For a query of slices q (centre q0) and every stored case c with slices c_j under one model:
 *   DL = min_{i,j} H(L4(q_i),  L4(c_j))     -- shallow, layer 4: contour
 *   DM = H(L17(q0), L17(c0))                -- middle, layer 17: semantics, centre slices only
 *   DD = min_{i,j} H(L25(q_i), L25(c_j))    -- deep, layer 25: shape and size
 *   Joint = wS*DL + wM*DM + wD*DD, ranked ascending, ties by DM then case id (deterministic).
 *
 * The slice window (FCDN_SLICE_WINDOW = N, default 1): i and j range only over slices at offsets
 * -N..N. A case may store many more slices (the importer keeps up to 64 for display); min over
 * dozens of slice pairs of coarse codes is 0 for nearly every pair of cases, so those never enter.
 * The query side is cut by the caller (SearchService: it encodes only the query's window, or takes
 * the stored query case's window), so $1/$3 hold window slices only; the stored side is cut here,
 * by abs(slice_offset) <= $15 in every method, and the packed blocks hold window slices only
 * (migrations/0006_slice_window.sql).
 *
 * Three ways to run it; src/repositories/search.repository.ts picks one (FCDN_SEARCH_METHOD):
 *
 * `naive` (JOINT_DISTANCE_SEARCH_SQL): the exact scan in plain SQL. H is bit_count(a # b) on
 * bit(64) codes (xor, then popcount; pgvector's <~> gives the same as float8). The min over pairs
 * is folded per stored slice first (inner unnest over the query's few slices), then per case by
 * GROUP BY. Only codes of one model version are read (model_id), so codes of different models are
 * never compared. It pays Postgres' executor per slice row: ~1.6 s for 1M slices here, 0.6 s for
 * 100k on PGlite (docs/benchmarks/search.md). The only method on PGlite.
 *
 * `blocks` (BLOCKS_SEARCH_SQL): the same answer near the hardware floor. Every case's window codes
 * are also kept packed ~87 cases per row in fcdn_search.blocks (migrations/0002_search_blocks.sql),
 * and the C function fcdn_search.topk (pg/fcdn_search) scans them in place: xor + popcount of
 * up to 19 code pairs of a 3-slice case, a bounded heap of the k best by (joint, dm, case_id),
 * and pruning by exact lower bounds (DM, then a triangle-inequality bound from each case's
 * reference codes, then partial sums). ~11 ms for 1M slices. Cases changed since the blocks were
 * built ("dirty", recorded by triggers in the writer's transaction) are skipped there and ranked
 * by the plain SQL above, over the current rows; the two lists are merged and ordered again here, in SQL, with the same
 * ORDER BY joint, dm, case_id LIMIT k, so ties are resolved exactly as `naive` resolves them. The
 * C code computes joint = (wS*DL + wM*DM) + wD*DD in float8 in that order, like this SQL. Needs
 * the extension; when the model has no blocks yet, or blocks packed with another slice window
 * (fcdn_search.blocks_for_window: a block set records its window), SQLSTATE FCB01 is raised and
 * the repository answers with `naive` (and builds them for its window).
 *
 * `hnsw` (HNSW_RERANK_SEARCH_SQL): approximate, for the benchmark only: per layer and query slice
 * the nearest slices by pgvector's HNSW indexes (slice_codes_*_hnsw; slices outside the window
 * filtered after the index scan), their cases re-ranked with the exact formula. It misses true
 * neighbours (64-bit codes have 65 distances; ties everywhere), so the service never uses it.
 *
 * Parameters (all three):
 *  $1 text[] query layer-4 codes (all query slices)   $2 text query layer-17 code (centre slice)
 *  $3 text[] query layer-25 codes                     $4 int  model id
 *  $5,$6,$7 float8 weights shallow, middle, deep       $8 int  k
 *  $9  int  case id to leave out (search by case)      $10 int[] patient ids to leave out (null: none)
 *  $11 text[] malignancy classes (null: any)           $12,$13 float8 diameter range (null: open)
 *  $14 text patient key to restrict to (null: any)   $15 int  slice window N (stored slices |offset| <= N)
 *  hnsw only: $16 int candidates per layer and query slice; JOINT_TIE_COUNT_SQL only: $16 float8 the Joint distance
 */

/** Eligibility of a case row `c` (nodule_cases), shared by every method's SQL part. */
const ELIGIBLE_CASE = `($9::int IS NULL OR c.id <> $9)
    AND ($10::int[] IS NULL OR c.patient_id <> ALL ($10))
    AND ($11::text[] IS NULL OR c.malignancy_class = ANY ($11))
    AND ($12::float8 IS NULL OR c.diameter_mm >= $12)
    AND ($13::float8 IS NULL OR c.diameter_mm <= $13)
    AND ($14::text IS NULL OR c.patient_id = (SELECT p.id FROM patients p WHERE p.patient_key = $14))`;

const QUERY_CODES = `query AS (
  SELECT $1::text[]::bit(64)[] AS shallow, $2::text::bit(64) AS middle, $3::text[]::bit(64)[] AS deep
)`;

/** The stored slice rows `sc` that take part: the slice window (the query side is cut by the caller). */
const IN_SLICE_WINDOW = `abs(sc.slice_offset) <= $15::int`;

/** DL, DM, DD of the slice rows `sc` of one case (a GROUP BY sc.case_id over slice_codes, window rows only). */
const PER_CASE_DISTANCES = `sc.case_id,
         min((SELECT min(bit_count(sc.shallow # qs)) FROM unnest(query.shallow) qs))::int AS dl,
         min(bit_count(sc.middle # query.middle)) FILTER (WHERE sc.slice_offset = 0)::int AS dm,
         min((SELECT min(bit_count(sc.deep # qd)) FROM unnest(query.deep) qd))::int AS dd`;

const JOINT = `($5::float8 * dl + $6::float8 * dm + $7::float8 * dd)`;

/** `naive`: the exact scan in plain SQL. */
export const JOINT_DISTANCE_SEARCH_SQL = `
WITH ${QUERY_CODES},
eligible AS (
  SELECT c.id
  FROM nodule_cases c
  WHERE ${ELIGIBLE_CASE}
),
per_case AS (
  SELECT ${PER_CASE_DISTANCES}
  FROM slice_codes sc CROSS JOIN query
  WHERE sc.model_id = $4 AND ${IN_SLICE_WINDOW} AND sc.case_id IN (SELECT id FROM eligible)
  GROUP BY sc.case_id
)
SELECT case_id AS "caseId", dl, dm, dd, ${JOINT} AS joint
FROM per_case
WHERE dm IS NOT NULL
ORDER BY joint, dm, case_id
LIMIT $8`;

/**
 * Tie groups (SearchRepository.countAtJoint): how many eligible cases have exactly the Joint
 * distance $16. It is the naive search itself, unlimited ($8 = NULL: LIMIT NULL is no limit), with
 * its rows counted; joint comes from the same expression over the same integers and weights, so
 * the equality is exact. One scan, as a naive search is.
 */
export const JOINT_TIE_COUNT_SQL = `SELECT count(*)::int AS n FROM (${JOINT_DISTANCE_SEARCH_SQL}) ranked WHERE ranked.joint = $16::float8`;

/**
 * `blocks`: fcdn_search.topk over the packed blocks (all but the dirty cases, with the same
 * filters, evaluated in C with SQL's NULL semantics) UNION ALL the plain SQL over the dirty cases
 * (driven from their ids: index lookups, never a scan), then the one ORDER BY ... LIMIT.
 * The class filter travels to C as a bit mask (bit 1 BENIGN, 2 INDETERMINATE, 3 MALIGNANT), the
 * patient key as the patient id it names (NULL when none: nothing matches, as in the SQL).
 */
export const BLOCKS_SEARCH_SQL = `
WITH ${QUERY_CODES},
dirty AS MATERIALIZED (
  SELECT coalesce(array_agg(d.case_id), '{}')::int[] AS ids FROM fcdn_search.dirty d WHERE d.model_id = $4
),
packed AS (
  SELECT t.case_id, t.dl, t.dm, t.dd, t.joint
  FROM query, dirty,
       fcdn_search.topk(fcdn_search.blocks_for_window($4, $15::int), $4, query.shallow::int8[], query.middle::int8, query.deep::int8[],
         $5::float8, $6::float8, $7::float8, $8::int,
         $9::int, $10::int[],
         CASE WHEN $11::text[] IS NULL THEN NULL
              ELSE (CASE WHEN 'BENIGN' = ANY ($11) THEN 2 ELSE 0 END)
                 | (CASE WHEN 'INDETERMINATE' = ANY ($11) THEN 4 ELSE 0 END)
                 | (CASE WHEN 'MALIGNANT' = ANY ($11) THEN 8 ELSE 0 END) END,
         $12::float8, $13::float8,
         $14::text IS NOT NULL, (SELECT p.id FROM patients p WHERE p.patient_key = $14),
         dirty.ids) t
),
changed AS (
  SELECT ${PER_CASE_DISTANCES}
  FROM dirty CROSS JOIN LATERAL unnest(dirty.ids) AS d(id)
       JOIN nodule_cases c ON c.id = d.id
       JOIN slice_codes sc ON sc.model_id = $4 AND sc.case_id = c.id AND ${IN_SLICE_WINDOW}
       CROSS JOIN query
  WHERE ${ELIGIBLE_CASE}
  GROUP BY sc.case_id
)
SELECT case_id AS "caseId", dl, dm, dd, joint
FROM (SELECT case_id, dl, dm, dd, joint FROM packed
      UNION ALL
      SELECT case_id, dl, dm, dd, ${JOINT} AS joint FROM changed WHERE dm IS NOT NULL) ranked
ORDER BY joint, dm, case_id
LIMIT $8`;

/**
 * The tie count on `blocks`: the blocks search with a k large enough to pass the tie group ($8),
 * answered as one row (how many at $16, how many ranked, the last Joint) instead of k rows.
 * SearchRepository.countAtJoint doubles k until the ranking passes the group.
 */
export const BLOCKS_TIE_COUNT_SQL = `SELECT count(*) FILTER (WHERE ranked.joint = $16::float8)::int AS tied,
  count(*)::int AS ranked, max(ranked.joint)::float8 AS last
FROM (${BLOCKS_SEARCH_SQL}) ranked`;

/** `hnsw` (approximate; benchmark only): HNSW candidates per layer, re-ranked exactly. */
export const HNSW_RERANK_SEARCH_SQL = `
WITH ${QUERY_CODES},
candidates AS (
  SELECT x.case_id FROM query CROSS JOIN LATERAL unnest(query.shallow) qs
    CROSS JOIN LATERAL (SELECT sc.case_id FROM slice_codes sc WHERE sc.model_id = $4 AND ${IN_SLICE_WINDOW} ORDER BY sc.shallow <~> qs LIMIT $16) x
  UNION
  SELECT x.case_id FROM query
    CROSS JOIN LATERAL (SELECT sc.case_id FROM slice_codes sc WHERE sc.model_id = $4 AND ${IN_SLICE_WINDOW} ORDER BY sc.middle <~> query.middle LIMIT $16) x
  UNION
  SELECT x.case_id FROM query CROSS JOIN LATERAL unnest(query.deep) qd
    CROSS JOIN LATERAL (SELECT sc.case_id FROM slice_codes sc WHERE sc.model_id = $4 AND ${IN_SLICE_WINDOW} ORDER BY sc.deep <~> qd LIMIT $16) x
),
per_case AS (
  SELECT ${PER_CASE_DISTANCES}
  FROM candidates d
       JOIN nodule_cases c ON c.id = d.case_id
       JOIN slice_codes sc ON sc.model_id = $4 AND sc.case_id = c.id AND ${IN_SLICE_WINDOW}
       CROSS JOIN query
  WHERE ${ELIGIBLE_CASE}
  GROUP BY sc.case_id
)
SELECT case_id AS "caseId", dl, dm, dd, ${JOINT} AS joint
FROM per_case
WHERE dm IS NOT NULL
ORDER BY joint, dm, case_id
LIMIT $8`;

/** SQLSTATE raised when the model has no blocks for the search's window (never built, dropped, other window). */
export const NO_BLOCKS_SQLSTATE = 'FCB01';

/** Is the compiled search installed in this database? (Never on PGlite.) */
export const BLOCKS_AVAILABLE_SQL = `SELECT count(*)::int AS n FROM pg_extension WHERE extname = 'fcdn_search'`;

/** How far a model's blocks are behind: built or not, cases packed, cases dirty since. */
export const BLOCKS_STATUS_SQL = `
SELECT s.built_at IS NOT NULL AS built, s.slice_window AS "sliceWindow", s.cases, s.blocks, s.bytes::float8 AS bytes, s.build_ms AS "buildMs",
       (SELECT count(*)::int FROM fcdn_search.dirty d WHERE d.model_id = $1) AS dirty
FROM fcdn_search.block_sets s WHERE s.model_id = $1`;
