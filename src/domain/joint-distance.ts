/**
 * The Joint distance of Qin et al. 2019 (eq. 22) in plain TypeScript. The service ranks in SQL
 * (src/repositories/search-sql.ts); this reference exists so that tests can pin the SQL to the
 * formula, and so that clients can recompute a hit's distances from the returned codes.
 */

/** A slice's three codes as '0'/'1' strings (bit i = character i). */
export interface SliceCodeSet {
  offset: number;
  shallow: string;
  middle: string;
  deep: string;
}

/**
 * The slice window of the Joint distance (PRODUCT.md): only slices at offsets -N..N of the query
 * and of a stored case enter DL and DD; 1 = the paper's 3-slice cases (FCDN_SLICE_WINDOW's
 * default). Cases may store more slices (for display); those never change a distance.
 */
export const DEFAULT_SLICE_WINDOW = 1;

export interface JointWeights {
  shallow: number;
  middle: number;
  deep: number;
}

export const DEFAULT_WEIGHTS: JointWeights = { shallow: 1, middle: 1, deep: 1 };

export interface JointDistance {
  shallowDistance: number;
  middleDistance: number;
  deepDistance: number;
  jointDistance: number;
}

export function hamming(a: string, b: string): number {
  if (a.length !== b.length) throw new Error(`codes of different lengths (${a.length}, ${b.length})`);
  let d = 0;
  for (let i = 0; i < a.length; i++) if (a.charCodeAt(i) !== b.charCodeAt(i)) d++;
  return d;
}

function minOverPairs(query: readonly string[], stored: readonly string[]): number {
  let best = Infinity;
  for (const q of query) for (const s of stored) best = Math.min(best, hamming(q, s));
  return best;
}

/**
 * The slice window of N (FCDN_SLICE_WINDOW): the centre slice and at most N neighbours each side.
 * Only these slices enter DL and DD; a case may store more (for display).
 */
export function inSliceWindow(offset: number, sliceWindow: number): boolean {
  return Math.abs(offset) <= sliceWindow;
}

/**
 * DL = min over slice pairs in the slice windows of H(layer 4); DM = H(layer 17) of the two
 * centre slices (offset 0); DD = min over slice pairs in the windows of H(layer 25);
 * Joint = wS*DL + wM*DM + wD*DD (summed in that order, as the SQL does, so floating-point
 * results agree exactly).
 */
export function jointDistance(
  query: readonly SliceCodeSet[],
  stored: readonly SliceCodeSet[],
  weights: JointWeights = DEFAULT_WEIGHTS,
  sliceWindow: number = DEFAULT_SLICE_WINDOW,
): JointDistance {
  query = query.filter((s) => inSliceWindow(s.offset, sliceWindow));
  stored = stored.filter((s) => inSliceWindow(s.offset, sliceWindow));
  const q0 = query.find((s) => s.offset === 0);
  const c0 = stored.find((s) => s.offset === 0);
  if (!q0 || !c0) throw new Error('both sides need a centre slice (offset 0)');
  const shallowDistance = minOverPairs(query.map((s) => s.shallow), stored.map((s) => s.shallow));
  const middleDistance = hamming(q0.middle, c0.middle);
  const deepDistance = minOverPairs(query.map((s) => s.deep), stored.map((s) => s.deep));
  const jointDistance = weights.shallow * shallowDistance + weights.middle * middleDistance + weights.deep * deepDistance;
  return { shallowDistance, middleDistance, deepDistance, jointDistance };
}

/** Ranking order of the product: Joint ascending, then DM, then case id. */
export function compareHits(a: JointDistance & { caseId: number }, b: JointDistance & { caseId: number }): number {
  return a.jointDistance - b.jointDistance || a.middleDistance - b.middleDistance || a.caseId - b.caseId;
}
