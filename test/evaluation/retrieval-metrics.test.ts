/**
 * The evaluation's metrics on small hand-made rankings whose answers can be worked out by hand.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  averagePrecision,
  bootstrapInterval,
  bootstrapMeans,
  diameterGapAt,
  mean,
  precisionAt,
  quantile,
  seededRandom,
  shuffled,
  tiedWithRank,
  topHitZeroOtherClass,
  type RankedItem,
} from '../../src/evaluation/retrieval-metrics.ts';

const item = (relevant: boolean, diameterMm: number | null = null): RankedItem => ({ relevant, diameterMm });

test('average precision, precision at k and the diameter gap on a hand-made ranking', () => {
  // Relevant at ranks 1, 3 and 4: AP = (1/1 + 2/3 + 3/4) / 3.
  const ranking = [item(true, 10), item(false, 4), item(true, 12), item(true, null), item(false, 30)];
  assert.ok(Math.abs(averagePrecision(ranking)! - (1 + 2 / 3 + 3 / 4) / 3) < 1e-12);
  assert.equal(precisionAt(ranking, 2), 0.5);
  assert.equal(precisionAt(ranking, 10), 3 / 5, 'fewer hits than k: precision over the hits there are');
  // Query 10 mm: gaps 0, 6, 2 (the unknown diameter is left out).
  assert.equal(diameterGapAt(10, ranking, 4), 8 / 3);
  assert.equal(diameterGapAt(null, ranking, 4), null);
  assert.equal(averagePrecision([item(false), item(false)]), null);
  assert.equal(mean([1, null, 2]), 1.5);
});

test('cases tied at the k-th hit: the whole ranking is counted, the k-th hit included', () => {
  // 10th distance is 5; five items of the ranking are at 5 (two before rank 10, two after).
  const distances = [0, 1, 2, 3, 4, 4, 5, 5, 5, 5, 5, 6, 7];
  assert.equal(tiedWithRank(distances, 10), 5);
  assert.equal(tiedWithRank([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 10), 1, 'no tie: only the 10th hit itself');
  assert.equal(tiedWithRank(Array(30).fill(0), 10), 30, 'a collapsed ranking ties everything');
  assert.equal(tiedWithRank([1, 2, 3], 10), null);
});

test('top hit at distance 0 and of the other class', () => {
  assert.equal(topHitZeroOtherClass([{ relevant: false, distance: 0 }, { relevant: true, distance: 0 }]), true);
  assert.equal(topHitZeroOtherClass([{ relevant: true, distance: 0 }, { relevant: false, distance: 0 }]), false);
  assert.equal(topHitZeroOtherClass([{ relevant: false, distance: 1 }]), false);
  assert.equal(topHitZeroOtherClass([]), null);
});

test('the seeded generator and shuffle are reproducible and uniform enough', () => {
  const a = seededRandom(7);
  const b = seededRandom(7);
  const xs = Array.from({ length: 10_000 }, () => a());
  assert.deepEqual(xs.slice(0, 5), Array.from({ length: 5 }, () => b()));
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  assert.ok(Math.abs(mean(xs) - 0.5) < 0.02);
  const s = shuffled([1, 2, 3, 4, 5, 6], seededRandom(3));
  assert.deepEqual([...s].sort(), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(s, shuffled([1, 2, 3, 4, 5, 6], seededRandom(3)));
});

test('quantile interpolates between order statistics and skips non-finite values', () => {
  assert.equal(quantile([3, 1, 2, 4, NaN], 0.5), 2.5);
  assert.equal(quantile([1, 2, 3, 4, 5], 0), 1);
  assert.equal(quantile([1, 2, 3, 4, 5], 1), 5);
  assert.equal(quantile([0, 10], 0.25), 2.5);
});

test('bootstrap resamples query patients, not queries: a patient\'s queries stay together', () => {
  // Patient A: three queries at 1; patient B: one at 0. Query mean 0.75. Every round draws two
  // patients: AA -> 1, AB or BA -> 3/4, BB -> 0 (never the 1/2 or 2/3 a query bootstrap would give).
  const values = [1, 1, 1, 0];
  const groups = ['A', 'A', 'A', 'B'];
  const rounds = bootstrapMeans(values, groups, 2000, 5);
  assert.equal(rounds.length, 2000);
  assert.deepEqual([...new Set(rounds)].sort(), [0, 0.75, 1]);
  const share = (v: number) => rounds.filter((r) => r === v).length / rounds.length;
  assert.ok(Math.abs(share(0.75) - 0.5) < 0.05 && Math.abs(share(1) - 0.25) < 0.05 && Math.abs(share(0) - 0.25) < 0.05);
  const ci = bootstrapInterval(values, groups, { rounds: 2000, seed: 5 });
  assert.deepEqual(ci, { estimate: 0.75, low: 0, high: 1 });
  // Same seed, same interval; nulls (a query without relevant cases) are left out as in mean().
  assert.deepEqual(bootstrapInterval(values, groups, { seed: 9 }), bootstrapInterval(values, groups, { seed: 9 }));
  assert.deepEqual(bootstrapInterval([0.5, null, 0.5], ['A', 'B', 'C']), { estimate: 0.5, low: 0.5, high: 0.5 });
  assert.throws(() => bootstrapMeans([1], ['A', 'B'], 10, 1));
});

test('a bootstrap interval covers the mean and narrows with more patients', () => {
  const random = seededRandom(11);
  const make = (patients: number) => {
    const values: number[] = [];
    const groups: string[] = [];
    for (let p = 0; p < patients; p++) for (let q = 0; q < 2; q++) {
      values.push(random() < 0.6 ? 1 : 0);
      groups.push(`P${p}`);
    }
    return bootstrapInterval(values, groups, { seed: 2 });
  };
  const small = make(20);
  const large = make(500);
  for (const ci of [small, large]) assert.ok(ci.low <= ci.estimate && ci.estimate <= ci.high);
  assert.ok(large.high - large.low < (small.high - small.low) / 2);
});
