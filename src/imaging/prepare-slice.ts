/**
 * One uploaded slice to model input and the image we store.
 *
 * Both formats end as integer samples at the model input size (8-bit windowed, or 16-bit
 * HU + 32768), which are written as the stored PNG and then mapped to [0, 1]. Because the
 * patch is computed from exactly the integers that are stored, and a model-sized PNG passes
 * through the resize untouched, prepareSlice(storedPng) gives back the same patch: reindex
 * can re-encode stored images without the original upload.
 */
import { BadInputError } from '../errors.ts';
import { decodeDicomCt, dicomPatchHu, isDicomPart10, resolveCentre, DICOM_ACCEPTED } from './dicom.ts';
import { implausibleHu16, PNG16_HOW_TO_SEND, PNG16_HU_OFFSET, quantizeSamples, samplesToPatch, type IntensityScale } from './intensity.ts';
import { decodePng, encodeGrayPng, isPng, PNG_ACCEPTED, readPngHeader } from './png.ts';
import { toSquarePatch } from './resample.ts';
import type { PatchSpec, PreparedSlice, SliceImage } from './types.ts';

export type SliceFormat = 'png' | 'dicom';

const ACCEPTED = `${PNG_ACCEPTED} ${DICOM_ACCEPTED}`;

export function detectFormat(bytes: Uint8Array): SliceFormat | undefined {
  if (isPng(bytes)) return 'png';
  if (isDicomPart10(bytes)) return 'dicom';
  return undefined;
}

/** Name what was sent instead, when we can tell: the usual mistakes of an integration. */
function describeUnknown(bytes: Uint8Array): string {
  const head = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.length, 16));
  const ascii = head.toString('latin1');
  if (bytes.length === 0) return 'the image data is empty';
  if (head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return 'the data is a JPEG image';
  if (ascii.startsWith('GIF8')) return 'the data is a GIF image';
  if (ascii.startsWith('II*\0') || ascii.startsWith('MM\0*')) return 'the data is a TIFF image';
  if (ascii.startsWith('BM')) return 'the data looks like a BMP image';
  if (ascii.startsWith('%PDF')) return 'the data is a PDF document';
  if (ascii.startsWith('iVBORw0KGgo') || ascii.startsWith('RElDT')) {
    return 'the data is still base64 text (it was encoded twice)';
  }
  // A data set starting with group 0002 or 0008, little endian: DICOM without the Part 10 wrapper.
  if (bytes.length >= 4 && (head[0] === 0x02 || head[0] === 0x08) && head[1] === 0x00) {
    return 'the data looks like a raw DICOM data set without the Part 10 preamble and "DICM" marker';
  }
  if (bytes.length >= 132) return 'the data is neither a PNG (no PNG signature) nor a DICOM Part 10 file (no "DICM" at byte 128)';
  return `the data is not an image we recognise (${bytes.length} bytes)`;
}

function checkCard(card: PatchSpec): number {
  const size = card.inputSize;
  if (!Number.isInteger(size) || size < 8 || size > 1024) throw new Error(`model card inputSize ${size} is not usable`);
  return size;
}

function finish(samples: Float64Array, size: number, scale: IntensityScale, offset: number): PreparedSlice {
  const stored = quantizeSamples(samples, scale);
  return {
    offset,
    patch: samplesToPatch(stored, scale),
    storedPng: encodeGrayPng(stored, size, size, scale === 'windowed8' ? 8 : 16),
  };
}

/**
 * onHeader: called with the pixel count the image's checked header declares, before the image
 * data is decoded (the decoding thread's deadline grows with it, slice-preparer.ts).
 */
export function prepareSlice(image: SliceImage, card: PatchSpec, onHeader?: (pixels: number) => void): PreparedSlice {
  const size = checkCard(card);
  const { data, offset } = image;
  if (!Number.isSafeInteger(offset)) throw new BadInputError(`Slice offset ${offset} is not an integer`);
  // Callers in plain JS (or a Uint8Array from elsewhere) must not be able to crash the decoders.
  const raw: unknown = data;
  if (!(raw instanceof Uint8Array)) throw new BadInputError('Slice image data is missing');
  const bytes = Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  const hasCentre = image.centerX != null || image.centerY != null;

  switch (detectFormat(bytes)) {
    case 'png': {
      if (hasCentre) {
        throw new BadInputError(
          'centerX/centerY apply to DICOM input only; a PNG must already be a patch centred on the nodule.',
        );
      }
      if (onHeader) {
        let header: ReturnType<typeof readPngHeader> | null = null;
        try {
          header = readPngHeader(bytes);
        } catch {
          // decodePng refuses it with its own message.
        }
        if (header) onHeader(header.width * header.height);
      }
      const png = decodePng(bytes);
      if (png.bitDepth === 16 && !image.stored) {
        // The 16-bit convention is HU + 32768; a window-scaled 16-bit file would be read as wrong HU.
        const why = implausibleHu16(png.raster.data);
        if (why) throw new BadInputError(`16-bit PNG refused: ${why}. ${PNG16_HOW_TO_SEND}`);
      }
      const patch = toSquarePatch(png.raster, size);
      return finish(patch.data, size, png.bitDepth === 8 ? 'windowed8' : 'hu16', offset);
    }
    case 'dicom': {
      const slice = decodeDicomCt(bytes, onHeader);
      const hu = dicomPatchHu(slice, size, resolveCentre(slice, image.centerX, image.centerY));
      const samples = hu.data.map((v) => v + PNG16_HU_OFFSET);
      return { ...finish(samples, size, 'hu16', offset), dicom: slice.identifiers };
    }
    default:
      throw new BadInputError(`Slice image refused: ${describeUnknown(bytes)}. ${ACCEPTED}`);
  }
}
