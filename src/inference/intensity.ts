/**
 * Intensity conventions shared by every input format (PRODUCT.md, Input): the model sees
 * CT in Hounsfield units windowed to [-1200, 600] and scaled to [0, 1].
 */

export const WINDOW_MIN_HU = -1200;
export const WINDOW_MAX_HU = 600;
/** Air: what we pad with when a crop reaches past the image edge. */
export const PAD_HU = WINDOW_MIN_HU;
/** 16-bit PNGs carry HU shifted so that the whole int16 range fits in uint16. */
export const PNG16_HU_OFFSET = 32768;

/** How the stored integers of an image map to model input. */
export type IntensityScale = 'windowed8' | 'hu16';

export function windowHu(hu: number): number {
  const v = (hu - WINDOW_MIN_HU) / (WINDOW_MAX_HU - WINDOW_MIN_HU);
  return v <= 0 ? 0 : v >= 1 ? 1 : v;
}

/**
 * Map stored sample values (0..255 already windowed, or HU + 32768) to the model's [0, 1].
 * Every path (PNG, DICOM, re-reading a stored PNG) ends here, so the same integers always
 * give the same floats: that is what makes storedPng reproduce the patch exactly.
 */
export function samplesToPatch(samples: ArrayLike<number>, scale: IntensityScale): Float32Array {
  const out = new Float32Array(samples.length);
  if (scale === 'windowed8') {
    for (let i = 0; i < samples.length; i++) out[i] = samples[i]! / 255;
  } else {
    for (let i = 0; i < samples.length; i++) out[i] = windowHu(samples[i]! - PNG16_HU_OFFSET);
  }
  return out;
}

/** Round and clamp real-valued samples to the integer range of their scale. */
export function quantizeSamples(values: ArrayLike<number>, scale: IntensityScale): Uint16Array {
  const max = scale === 'windowed8' ? 255 : 65535;
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const r = Math.round(values[i]!);
    out[i] = Number.isNaN(r) ? 0 : r < 0 ? 0 : r > max ? max : r;
  }
  return out;
}

/** HU to the 16-bit PNG sample convention (clamped to what uint16 can carry). */
export function huToPng16(hu: number): number {
  return hu + PNG16_HU_OFFSET;
}
