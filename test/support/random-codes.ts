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
