/**
 * Display renditions of slice images: what a person looks at, never what the model reads.
 *
 * A stored slice is the model-sized PNG that prepareSlice wrote (prepare-slice.ts): either 8-bit
 * windowed intensities (already windowed for viewing by whoever made them: passed through as
 * they are) or 16-bit HU + 32768, which a browser draws as flat mid-grey (the values sit around
 * 32,768 of 65,535). The 16-bit kind is mapped to 8 bits through a named CT display window:
 * `lung` [-1350, 150] HU (the default: parenchyma and nodule edges) or `mediastinal` [-160, 240]
 * (soft tissue, calcification). Query slices of an image search get the same rendition from the
 * PreparedSlice.storedPng of each slice, so a DICOM query is shown as the patch the model saw.
 *
 * Pure functions over a few kilobytes (a 64x64 patch renders in well under a millisecond), so the
 * HTTP route and the GraphQL field call them per request; the original PNG stays downloadable.
 */
import { BadInputError } from '../errors.ts';
import { PNG16_HU_OFFSET } from './intensity.ts';
import { decodePng, encodeGrayPng } from './png.ts';

export const DISPLAY_WINDOWS = {
  lung: { minHu: -1350, maxHu: 150 },
  mediastinal: { minHu: -160, maxHu: 240 },
} as const;

export type DisplayWindowName = keyof typeof DISPLAY_WINDOWS;
export const DEFAULT_DISPLAY_WINDOW: DisplayWindowName = 'lung';

/** A window name from a URL or a GraphQL enum value (case-insensitive); BadInputError names the choices. */
export function parseDisplayWindow(value: string | null | undefined): DisplayWindowName {
  if (value == null || value === '') return DEFAULT_DISPLAY_WINDOW;
  const name = value.toLowerCase();
  if (Object.hasOwn(DISPLAY_WINDOWS, name)) return name as DisplayWindowName;
  throw new BadInputError(`unknown display window "${value}"; use one of ${Object.keys(DISPLAY_WINDOWS).join(', ')}`);
}

/** HU to a display grey level 0..255 in the window (linear, clamped). */
export function windowToByte(hu: number, window: DisplayWindowName): number {
  const { minHu, maxHu } = DISPLAY_WINDOWS[window];
  const v = Math.round(((hu - minHu) / (maxHu - minHu)) * 255);
  return v <= 0 ? 0 : v >= 255 ? 255 : v;
}

/**
 * The 8-bit grayscale PNG to show for a stored (or prepared query) slice PNG. 8-bit input is
 * returned unchanged (same bytes): it is already a display image. 16-bit input is read as
 * HU + 32768 and windowed.
 */
export function displayPng(storedPng: Buffer, window: DisplayWindowName = DEFAULT_DISPLAY_WINDOW): Buffer {
  const { raster, bitDepth } = decodePng(storedPng);
  if (bitDepth === 8) return storedPng;
  const out = new Uint8Array(raster.data.length);
  for (let i = 0; i < out.length; i++) out[i] = windowToByte(raster.data[i]! - PNG16_HU_OFFSET, window);
  return encodeGrayPng(out, raster.width, raster.height, 8);
}

/** displayPng as a data: URL (for previews sent inside a GraphQL answer). */
export function displayDataUrl(storedPng: Buffer, window: DisplayWindowName = DEFAULT_DISPLAY_WINDOW): string {
  return `data:image/png;base64,${displayPng(storedPng, window).toString('base64')}`;
}
