// Local image files -> the SliceImageInput list of similarCases (base64, offsets around the centre).

export const MAX_SLICES = 64;

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
/** Bytes needed to tell the kinds apart: DICOM Part 10 has "DICM" at 128. */
export const SNIFF_BYTES = 132;

/**
 * What a file is, from its first bytes (as the service decides: src/inference/prepare-slice.ts),
 * never from its name or type: 'PNG', 'DICOM', or null with a description of what it is instead.
 */
export function sliceKind(bytes) {
  if (PNG_MAGIC.every((b, i) => bytes[i] === b)) return { kind: 'PNG' };
  if (bytes.length >= 132 && String.fromCharCode(...bytes.subarray(128, 132)) === 'DICM') return { kind: 'DICOM' };
  const ascii = String.fromCharCode(...bytes.subarray(0, 8));
  let what = 'neither a PNG (no PNG signature) nor a DICOM file (no "DICM" at byte 128)';
  if (bytes.length === 0) what = 'empty';
  else if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) what = 'a JPEG image';
  else if (ascii.startsWith('GIF8')) what = 'a GIF image';
  else if (ascii.startsWith('II*\0') || ascii.startsWith('MM\0*')) what = 'a TIFF image';
  else if (ascii.startsWith('BM')) what = 'a BMP image';
  else if (ascii.startsWith('%PDF')) what = 'a PDF document';
  else if (ascii.startsWith('RIFF') && String.fromCharCode(...bytes.subarray(8, 12)) === 'WEBP') what = 'a WebP image';
  return { kind: null, what };
}

/** The kind of each file, read from its first bytes only. */
export async function inspectFiles(files) {
  return Promise.all(
    withOffsets(files).map(async ({ file, offset }) => ({ file, offset, ...sliceKind(new Uint8Array(await file.slice(0, SNIFF_BYTES).arrayBuffer())) })),
  );
}

/** Name order; the middle file (the lower middle for an even count) is offset 0. */
export function withOffsets(files) {
  const sorted = [...files].sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
  const centre = Math.floor((sorted.length - 1) / 2);
  return sorted.map((file, i) => ({ file, offset: i - centre }));
}

function base64Of(bytes) {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

/** Reads the files; one that is neither PNG nor DICOM is refused here, naming what it is. */
export async function readSlices(files) {
  if (files.length === 0) throw new Error('Choose or drop at least one PNG or DICOM file.');
  if (files.length > MAX_SLICES) throw new Error(`At most ${MAX_SLICES} slices per query; ${files.length} were chosen.`);
  return Promise.all(
    withOffsets(files).map(async ({ file, offset }) => {
      const bytes = new Uint8Array(await file.arrayBuffer());
      const { kind, what } = sliceKind(bytes);
      if (!kind) throw new Error(`${file.name} is ${what}; send PNG slices (8-bit windowed, or 16-bit HU + 32768) or DICOM CT instances.`);
      return { name: file.name, offset, format: kind, input: { data: base64Of(bytes), offset } };
    }),
  );
}
