import type { JointWeights } from '../../src/domain/joint-distance.ts';
/** Seeded random codes for property tests: clustered like learned codes, so ties are common. */

/** The project's one seeded PRNG (mulberry32), shared with the phantoms. */
export { seededRandom as mulberry32 } from '../../src/inference/phantoms.ts';

export function randomCode(rand: () => number, bits = 64): string {
  let s = '';
  for (let i = 0; i < bits; i++) s += rand() < 0.5 ? '0' : '1';
  return s;
}

/** Flips each bit with probability p. */
export function perturb(code: string, rand: () => number, p: number): string {
  let s = '';
  for (const ch of code) s += rand() < p ? (ch === '0' ? '1' : '0') : ch;
  return s;
}

export function randomInt(rand: () => number, lo: number, hi: number): number {
  return lo + Math.floor(rand() * (hi - lo + 1));
}

/** Joint weights for property tests: sometimes all 1, else each 0, 1, 2 or a random value in [0, 2]. */
export function randomWeights(rand: () => number, pDefault: number): JointWeights {
  const w = () => (rand() < 0.3 ? randomInt(rand, 0, 2) : Math.round(rand() * 2000) / 1000);
  return rand() < pDefault ? { shallow: 1, middle: 1, deep: 1 } : { shallow: w(), middle: w(), deep: w() };
}
