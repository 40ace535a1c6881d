/**
 * Retrieval metrics of the paper's section 4.3, on one query's ranked gallery: average
 * precision over all ranks, precision at k, and the mean diameter gap of the top k.
 * Same definitions as training/retrieval.py, so the Python and service numbers compare.
 */

export interface RankedItem {
  relevant: boolean;
  diameterMm: number | null;
}

/** Mean over the relevant positions of the precision at that position; null when none is relevant. */
export function averagePrecision(ranking: readonly RankedItem[]): number | null {
  let hits = 0;
  let sum = 0;
  ranking.forEach((item, i) => {
    if (item.relevant) {
      hits++;
      sum += hits / (i + 1);
    }
  });
  return hits === 0 ? null : sum / hits;
}

export function precisionAt(ranking: readonly RankedItem[], k: number): number {
  const top = ranking.slice(0, k);
  return top.filter((r) => r.relevant).length / Math.max(1, top.length);
}

/** Mean |diameter difference| between the query and its top k, over hits with a known diameter. */
export function diameterGapAt(queryDiameterMm: number | null, ranking: readonly RankedItem[], k: number): number | null {
  if (queryDiameterMm == null) return null;
  const gaps = ranking.slice(0, k).filter((r) => r.diameterMm != null).map((r) => Math.abs(r.diameterMm! - queryDiameterMm));
  return gaps.length ? gaps.reduce((a, b) => a + b, 0) / gaps.length : null;
}

export function mean(values: readonly (number | null)[]): number {
  const v = values.filter((x): x is number => x != null);
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN;
}
