// Local image files -> the SliceImageInput list of similarCases (base64, offsets around the centre).

export const MAX_SLICES = 64;

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47];

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

/** Reads the files; PNGs also get an object URL for the preview (DICOM cannot be shown by a browser). */
export async function readSlices(files) {
  if (files.length === 0) throw new Error('Choose or drop at least one PNG or DICOM file.');
  if (files.length > MAX_SLICES) throw new Error(`At most ${MAX_SLICES} slices per query; ${files.length} were chosen.`);
  return Promise.all(
    withOffsets(files).map(async ({ file, offset }) => {
      const bytes = new Uint8Array(await file.arrayBuffer());
      const isPng = PNG_MAGIC.every((b, i) => bytes[i] === b);
      return {
        name: file.name,
        offset,
        format: isPng ? 'PNG' : 'DICOM',
        previewUrl: isPng ? URL.createObjectURL(file) : null,
        input: { data: base64Of(bytes), offset },
      };
    }),
  );
}
