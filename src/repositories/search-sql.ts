/**
 * The Joint-distance search, in one place (PRODUCT.md "Joint distance"; Qin et al. 2019, eq. 22).
 *
 * For a query of slices q (centre q0) and every stored case c with slices c_j under one model:
 *   DL = min_{i,j} H(L4(q_i),  L4(c_j))     -- shallow, layer 4: contour
 *   DM = H(L17(q0), L17(c0))                -- middle, layer 17: semantics, centre slices only
 *   DD = min_{i,j} H(L25(q_i), L25(c_j))    -- deep, layer 25: shape and size
 *   Joint = wS*DL + wM*DM + wD*DD, ranked ascending, ties by DM then case id (deterministic).
 *
 * H is bit_count(a # b) on bit(64) codes (xor, then popcount; pgvector's <~> gives the same as
 * float8). The min over pairs is folded per stored slice first (inner unnest over the query's few
 * slices), then per case by GROUP BY. Only codes of one model version are read (model_id), so codes
 * of different models are never compared. This is an exact scan; see docs for its cost.
 *
 * Parameters:
 *  $1 text[] query layer-4 codes (all query slices)   $2 text query layer-17 code (centre slice)
 *  $3 text[] query layer-25 codes                     $4 int  model id
 *  $5,$6,$7 float8 weights shallow, middle, deep       $8 int  k
 *  $9  int  case id to leave out (search by case)      $10 int[] patient ids to leave out (null: none)
 *  $11 text[] malignancy classes (null: any)           $12,$13 float8 diameter range (null: open)
 *  $14 text patient key to restrict to (null: any)
 */
export const JOINT_DISTANCE_SEARCH_SQL = `
WITH query AS (
  SELECT $1::text[]::bit(64)[] AS shallow, $2::text::bit(64) AS middle, $3::text[]::bit(64)[] AS deep
),
eligible AS (
  SELECT c.id
  FROM nodule_cases c
  WHERE ($9::int IS NULL OR c.id <> $9)
    AND ($10::int[] IS NULL OR c.patient_id <> ALL ($10))
    AND ($11::text[] IS NULL OR c.malignancy_class = ANY ($11))
    AND ($12::float8 IS NULL OR c.diameter_mm >= $12)
    AND ($13::float8 IS NULL OR c.diameter_mm <= $13)
    AND ($14::text IS NULL OR c.patient_id = (SELECT p.id FROM patients p WHERE p.patient_key = $14))
),
per_case AS (
  SELECT sc.case_id,
         min((SELECT min(bit_count(sc.shallow # qs)) FROM unnest(query.shallow) qs))::int AS dl,
         min(bit_count(sc.middle # query.middle)) FILTER (WHERE sc.slice_offset = 0)::int AS dm,
         min((SELECT min(bit_count(sc.deep # qd)) FROM unnest(query.deep) qd))::int AS dd
  FROM slice_codes sc CROSS JOIN query
  WHERE sc.model_id = $4 AND sc.case_id IN (SELECT id FROM eligible)
  GROUP BY sc.case_id
)
SELECT case_id AS "caseId", dl, dm, dd, ($5::float8 * dl + $6::float8 * dm + $7::float8 * dd) AS joint
FROM per_case
WHERE dm IS NOT NULL
ORDER BY joint, dm, case_id
LIMIT $8`;
