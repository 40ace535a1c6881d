/**
 * Retrieval metrics of the paper's section 4.3, on one query's ranked gallery: average
 * precision over all ranks, precision at k, and the mean diameter gap of the top k.
 * Same definitions as training/retrieval.py, so the Python and service numbers compare.
 */

import { seededRandom } from '../domain/seeded-random.ts';

export { seededRandom };

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

/**
 * How many items of the whole ranking share the k-th item's distance, the k-th item itself
 * included (1 when nothing ties with it); null when the ranking has fewer than k items. With
 * k = 10 this is the "cases tied at the 10th hit's Joint" figure: how arbitrary the cut at 10 is.
 */
export function tiedWithRank(distances: readonly number[], k: number): number | null {
  if (distances.length < k) return null;
  const at = distances[k - 1]!;
  return distances.filter((d) => d === at).length;
}

/** Whether the first hit is at distance 0 and not relevant (an exact code match of the other class); null for an empty ranking. */
export function topHitZeroOtherClass(ranking: readonly { relevant: boolean; distance: number }[]): boolean | null {
  const top = ranking[0];
  return top ? top.distance === 0 && !top.relevant : null;
}


/** A copy of items in a random order (Fisher-Yates with the given generator). */
export function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/**
 * The bootstrap distribution of mean(values) when the groups (query patients) are resampled:
 * each round draws as many groups as there are, with replacement, and takes the mean of every
 * value of the drawn groups (a group drawn twice counts twice; nulls are left out as in mean()).
 * Resampling patients rather than queries keeps a patient's nodules together, as they are not
 * independent. groups[i] is the group of values[i].
 */
export function bootstrapMeans(values: readonly (number | null)[], groups: readonly string[], rounds: number, seed: number): number[] {
  if (values.length !== groups.length) throw new Error('values and groups differ in length');
  const byGroup = new Map<string, number[]>();
  values.forEach((v, i) => {
    const list = byGroup.get(groups[i]!) ?? [];
    if (v != null) list.push(v);
    byGroup.set(groups[i]!, list);
  });
  const members = [...byGroup.keys()].sort().map((g) => byGroup.get(g)!);
  const random = seededRandom(seed);
  const means: number[] = [];
  for (let r = 0; r < rounds; r++) {
    let sum = 0;
    let n = 0;
    for (let i = 0; i < members.length; i++) {
      const drawn = members[Math.floor(random() * members.length)]!;
      for (const v of drawn) sum += v;
      n += drawn.length;
    }
    means.push(n ? sum / n : NaN);
  }
  return means;
}

/** The q-quantile (0..1) of the finite numbers, linearly interpolated between order statistics. */
export function quantile(values: readonly number[], q: number): number {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (!v.length) return NaN;
  const pos = (v.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return v[lo]! + (v[hi]! - v[lo]!) * (pos - lo);
}

export interface Interval {
  /** mean() of the values themselves. */
  estimate: number;
  low: number;
  high: number;
}

/** mean(values) with its percentile bootstrap interval over groups (default 95%, 1000 rounds, seed 1). */
export function bootstrapInterval(
  values: readonly (number | null)[],
  groups: readonly string[],
  opts: { rounds?: number; seed?: number; level?: number } = {},
): Interval {
  const level = opts.level ?? 0.95;
  const means = bootstrapMeans(values, groups, opts.rounds ?? 1000, opts.seed ?? 1);
  return { estimate: mean(values), low: quantile(means, (1 - level) / 2), high: quantile(means, 1 - (1 - level) / 2) };
}
