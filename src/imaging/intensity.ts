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

/**
 * What a 16-bit PNG of CT may hold (issue 12): HU + 32768 with HU in [PLAUSIBLE_HU_MIN,
 * PLAUSIBLE_HU_MAX] (samples 29696..36863). That takes every scanner's stored range, the
 * -3024/-2048 padding outside the field of view included, with room above bone (+3100).
 * A window-scaled 16-bit PNG (the windowed intensity x 65535, as the LIDC folder's files are)
 * puts nearly all of a lung patch far outside it: air near 0, soft tissue near 60000.
 */
export const PLAUSIBLE_HU_MIN = -3072;
export const PLAUSIBLE_HU_MAX = 4095;
/** More than this share of samples outside the plausible range refuses the image (metal may be). */
export const MAX_IMPLAUSIBLE_SHARE = 0.05;
/** Lung parenchyma is about -850 HU and air -1000: a patch mostly below this is not HU + 32768. */
export const DARKEST_MEDIAN_HU = -1150;

/** How to send CT in PNG, for the messages that refuse a 16-bit PNG. */
export const PNG16_HOW_TO_SEND =
  'Send windowed images as 8-bit PNG (intensities 0-255), or HU as 16-bit PNG with each value = HU + 32768 ' +
  '(air -1000 HU = 31768, water 0 HU = 32768), or the DICOM slice itself.';

/**
 * Why 16-bit samples (file units, 0..65535) are not plausible CT in HU + 32768, or null when
 * they are: more than MAX_IMPLAUSIBLE_SHARE outside [PLAUSIBLE_HU_MIN, PLAUSIBLE_HU_MAX], or
 * more than half darker than DARKEST_MEDIAN_HU.
 */
export function implausibleHu16(samples: ArrayLike<number>): string | null {
  const n = samples.length;
  if (n === 0) return null;
  const lo = PLAUSIBLE_HU_MIN + PNG16_HU_OFFSET;
  const hi = PLAUSIBLE_HU_MAX + PNG16_HU_OFFSET;
  const dark = DARKEST_MEDIAN_HU + PNG16_HU_OFFSET;
  let outside = 0;
  let darker = 0;
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = samples[i]!;
    if (v < lo || v > hi) outside++;
    if (v < dark) darker++;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const pct = (k: number) => `${Math.round((100 * k) / n)}%`;
  const span = `its values span ${Math.round(min)}..${Math.round(max)}`;
  if (outside > n * MAX_IMPLAUSIBLE_SHARE) {
    return `${span} and ${pct(outside)} of them are outside HU + 32768 for CT (${lo}..${hi}, i.e. ${PLAUSIBLE_HU_MIN} to ${PLAUSIBLE_HU_MAX} HU); it looks window-scaled or otherwise not in HU + 32768`;
  }
  if (darker > n / 2) {
    return `${span} and ${pct(darker)} of them are below ${dark} (${DARKEST_MEDIAN_HU} HU, darker than air) as HU + 32768; it looks window-scaled or otherwise not in HU + 32768`;
  }
  return null;
}
