/** Seeded random codes for property tests: clustered like learned codes, so ties are common. */

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

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
