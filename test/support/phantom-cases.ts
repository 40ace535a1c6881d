/** Nodule cases made of generated phantoms (never patient data), as the API takes them. */
import { makePhantomPng, type NoduleTexture } from '../../src/inference/index.ts';

export interface PhantomCaseSpec {
  seed: number;
  diameterPx: number;
  texture?: NoduleTexture;
  lobulation?: number;
  slices?: number;
}

/** Base64 PNG slices around a centre: the nodule shrinks away from the centre slice, as in CT. */
export function phantomSlices(spec: PhantomCaseSpec): { data: string; offset: number }[] {
  const n = spec.slices ?? 3;
  const first = -Math.floor((n - 1) / 2);
  return Array.from({ length: n }, (_, i) => {
    const offset = first + i;
    const png = makePhantomPng({
      seed: spec.seed * 100 + i,
      size: 64,
      diameterPx: Math.max(3, spec.diameterPx * (1 - 0.12 * Math.abs(offset))),
      texture: spec.texture ?? 'solid',
      lobulation: spec.lobulation ?? 0,
    });
    return { data: png.toString('base64'), offset };
  });
}
