/**
 * DICOM CT instances in: pixel data to Hounsfield units, plus the three UIDs we keep.
 *
 * Little-endian Part 10 files: uncompressed, deflated, or with pixel data in one of the
 * compressed syntaxes of dicom-codecs.ts. The transfer syntax is read from the file meta
 * header before the data set is parsed, so an unsupported one is refused by name rather than
 * failing somewhere inside the parser. Rows and Columns are checked before anything
 * image-sized is touched, and the pixel data (or the decoded frame) matched against them; HU
 * are then read on demand from those bytes (for uncompressed files the upload itself).
 *
 * Nothing else from the header leaves this module: callers get geometry, HU and UIDs only.
 */
import zlib from 'node:zlib';
import dicomParser from 'dicom-parser';
import type { DataSet } from 'dicom-parser';
import { BadInputError } from '../errors.ts';
import { decodeFrame, FrameDecodeError, PIXEL_CODECS, type FrameGeometry } from './dicom-codecs.ts';
import { PAD_HU } from './intensity.ts';
import { resampleGrid, type Raster } from './resample.ts';
import type { DicomIdentifiers } from './types.ts';

export const DICOM_MAX_SIDE = 4096;
export const DICOM_MIN_SIDE = 32;

export const IMPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2';
export const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';
export const DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1.99';

/** Every syntax we decode: uncompressed little endian, deflated, and the lossless-capable codecs. */
export const ACCEPTED_TRANSFER_SYNTAXES: Readonly<Record<string, string>> = {
  [IMPLICIT_VR_LITTLE_ENDIAN]: 'Implicit VR Little Endian',
  [EXPLICIT_VR_LITTLE_ENDIAN]: 'Explicit VR Little Endian',
  [DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN]: 'Deflated Explicit VR Little Endian',
  ...Object.fromEntries(Object.entries(PIXEL_CODECS).map(([ts, codec]) => [ts, codec.name])),
};

/** Syntaxes we know and refuse, with why, so that the error tells the sender what to change. */
export const REFUSED_TRANSFER_SYNTAXES: Readonly<Record<string, string>> = {
  '1.2.840.10008.1.2.2': 'Explicit VR Big Endian (retired from DICOM in 2004)',
  '1.2.840.10008.1.2.4.50': 'JPEG Baseline (lossy, 8 bits per sample: too few for CT Hounsfield units)',
  '1.2.840.10008.1.2.4.51': 'JPEG Extended (lossy, 12 bits)',
  '1.2.840.10008.1.2.4.201': 'High-Throughput JPEG 2000 Lossless',
  '1.2.840.10008.1.2.4.202': 'High-Throughput JPEG 2000 (RPCL) Lossless',
  '1.2.840.10008.1.2.4.203': 'High-Throughput JPEG 2000',
};

const ACCEPTED_SYNTAX_NAMES = 'Implicit or Explicit VR Little Endian, Deflated, RLE Lossless, JPEG Lossless (Process 14), JPEG-LS, JPEG 2000';

export const DICOM_ACCEPTED =
  'Accepted DICOM: one CT image per file, DICOM Part 10 (128-byte preamble and "DICM"), ' +
  `${ACCEPTED_SYNTAX_NAMES}; 8- or 16-bit monochrome, ` +
  `${DICOM_MIN_SIDE} to ${DICOM_MAX_SIDE} rows and columns, with PixelSpacing.`;

export interface DicomCtSlice {
  rows: number;
  columns: number;
  /** (0028,0030) PixelSpacing, else (0018,1164) ImagerPixelSpacing: mm between rows, between columns. */
  pixelSpacingMm: { row: number; column: number };
  transferSyntaxUid: string;
  identifiers: DicomIdentifiers;
  /** HU of one pixel (integer column/row inside the image). */
  huAt(column: number, row: number): number;
}

export interface PixelCentre {
  x: number;
  y: number;
}

function bad(what: string): BadInputError {
  return new BadInputError(`DICOM file refused: ${what}. ${DICOM_ACCEPTED}`);
}

export function isDicomPart10(bytes: Uint8Array): boolean {
  return bytes.length >= 132 && bytes[128] === 0x44 && bytes[129] === 0x49 && bytes[130] === 0x43 && bytes[131] === 0x4d;
}

/** dicom-parser throws strings and {exception, dataSet} objects as well as Errors. */
function describeThrown(e: unknown): string {
  if (e instanceof Error) return e.message;
  if (typeof e === 'string') return e;
  if (e && typeof e === 'object' && 'exception' in e) return describeThrown((e as { exception: unknown }).exception);
  return String(e);
}

const UID_SYNTAX = /^[0-9]+(\.[0-9]+)*$/;

/** A UID field could carry any text; only a well-formed UID may reach storage. */
function uid(ds: DataSet, tag: string): string | undefined {
  const v = ds.string(tag);
  return v !== undefined && v.length <= 64 && UID_SYNTAX.test(v) ? v : undefined;
}

function readTransferSyntax(bytes: Uint8Array): string {
  const readHeader = (dicomParser as unknown as { readPart10Header(b: Uint8Array): DataSet }).readPart10Header;
  let meta: DataSet;
  try {
    meta = readHeader(bytes);
  } catch (e) {
    throw bad(`its file meta header could not be read (${describeThrown(e)})`);
  }
  const ts = meta.string('x00020010');
  if (!ts) throw bad('its file meta header has no Transfer Syntax UID (0002,0010)');
  if (ACCEPTED_TRANSFER_SYNTAXES[ts]) return ts;
  const name = REFUSED_TRANSFER_SYNTAXES[ts];
  throw bad(
    name
      ? `it is encoded as ${name} (transfer syntax ${ts}), which this service does not decode; ` +
          'send it uncompressed or losslessly compressed'
      : `its transfer syntax ${ts} is not supported`,
  );
}

/** Plausible in-plane CT spacing; outside it the header is wrong (or not a CT slice). */
export const SPACING_RANGE_MM = { min: 0.05, max: 5 } as const;

/**
 * In-plane spacing, needed to resample to the model's mm/pixel. PixelSpacing (patient plane)
 * first; ImagerPixelSpacing (detector plane, what some exports carry instead) as a fallback.
 * Without either the physical size of the nodule is unknown, so the file is refused rather
 * than guessed at: a wrong scale would silently change which cases look similar.
 */
function readSpacing(ds: DataSet): { row: number; column: number } {
  for (const [tag, name] of [['x00280030', 'PixelSpacing (0028,0030)'], ['x00181164', 'ImagerPixelSpacing (0018,1164)']] as const) {
    if (!ds.elements[tag]) continue;
    const text = ds.string(tag) ?? '';
    const values = text.split('\\').map((v) => (v.trim() === '' ? Number.NaN : Number(v)));
    const [row, column] = values;
    const ok = (v: number | undefined): v is number =>
      v !== undefined && Number.isFinite(v) && v >= SPACING_RANGE_MM.min && v <= SPACING_RANGE_MM.max;
    if (values.length !== 2 || !ok(row) || !ok(column)) {
      throw bad(`its ${name} is "${text.slice(0, 40)}", not two spacings between ${SPACING_RANGE_MM.min} and ${SPACING_RANGE_MM.max} mm`);
    }
    return { row, column };
  }
  throw bad('it has no PixelSpacing (0028,0030) or ImagerPixelSpacing (0018,1164), so the nodule\'s size in mm is unknown');
}

/**
 * The frame as little-endian samples: a view of the file for native syntaxes (no copy), the
 * decoder's output for compressed ones (all fragments of the single frame, in order).
 */
function pixelBytes(bytes: Buffer, ds: DataSet, transferSyntaxUid: string, g: FrameGeometry): Uint8Array {
  const pixel = ds.elements['x7fe00010'];
  if (!pixel) throw bad('it has no Pixel Data (7FE0,0010)');
  const needed = g.rows * g.columns * (g.bitsAllocated / 8);
  const codec = PIXEL_CODECS[transferSyntaxUid];
  if (!codec) {
    if (pixel.encapsulatedPixelData) throw bad(`its pixel data is encapsulated (compressed) although its transfer syntax ${transferSyntaxUid} is uncompressed`);
    if (pixel.length < needed || pixel.dataOffset + needed > bytes.length) {
      throw bad(`its pixel data holds ${Math.max(0, Math.min(pixel.length, bytes.length - pixel.dataOffset))} bytes, ` +
        `but ${g.columns}x${g.rows} pixels of ${g.bitsAllocated} bits need ${needed}`);
    }
    return bytes.subarray(pixel.dataOffset, pixel.dataOffset + needed);
  }
  const fragments = pixel.fragments ?? [];
  if (!pixel.encapsulatedPixelData || fragments.length === 0) {
    throw bad(`it is labelled ${codec.name} but its pixel data is not encapsulated in fragments`);
  }
  const frame = fragments.length === 1
    ? bytes.subarray(fragments[0]!.position, fragments[0]!.position + fragments[0]!.length)
    : Buffer.concat(fragments.map((f) => bytes.subarray(f.position, f.position + f.length)));
  try {
    return decodeFrame(transferSyntaxUid, frame, g);
  } catch (e) {
    if (e instanceof FrameDecodeError) throw bad(e.message);
    throw e;
  }
}

/** The largest data set we inflate: the biggest accepted image plus room for the header. */
const MAX_INFLATED_BYTES = DICOM_MAX_SIDE * DICOM_MAX_SIDE * 2 + 16 * 1024 * 1024;

/** Deflated Explicit VR Little Endian: everything after the file meta group is raw deflate. */
function inflater(byteArray: Uint8Array, position: number): Uint8Array {
  let inflated: Buffer;
  try {
    inflated = zlib.inflateRawSync(byteArray.subarray(position), { maxOutputLength: MAX_INFLATED_BYTES });
  } catch (e) {
    throw bad(`its deflated data set could not be inflated (${(e as Error).message})`);
  }
  return Buffer.concat([byteArray.subarray(0, position), inflated]);
}

/** onHeader: called with Rows x Columns once they are checked, before the pixel data is read or decoded. */
export function decodeDicomCt(bytes: Buffer, onHeader?: (pixels: number) => void): DicomCtSlice {
  try {
    return decodeChecked(bytes, onHeader);
  } catch (e) {
    if (e instanceof BadInputError) throw e;
    throw bad(`it could not be parsed (${describeThrown(e)})`);
  }
}

function decodeChecked(bytes: Buffer, onHeader?: (pixels: number) => void): DicomCtSlice {
  if (!isDicomPart10(bytes)) throw bad('the data has no "DICM" marker at byte 128');
  const transferSyntaxUid = readTransferSyntax(bytes);
  let ds: DataSet;
  try {
    ds = dicomParser.parseDicom(bytes, { inflater } as never);
  } catch (e) {
    if (e instanceof BadInputError) throw e;
    throw bad(`its data set is corrupt or truncated (${describeThrown(e)})`);
  }

  const modality = ds.string('x00080060');
  if (modality !== undefined && modality !== 'CT') throw bad(`it is a ${modality} image, not CT`);
  const rows = ds.uint16('x00280010');
  const columns = ds.uint16('x00280011');
  if (rows === undefined || columns === undefined) throw bad('it has no Rows/Columns (0028,0010/0011)');
  const sideOk = (n: number) => n >= DICOM_MIN_SIDE && n <= DICOM_MAX_SIDE;
  if (!sideOk(rows) || !sideOk(columns)) throw bad(`it declares ${columns} columns x ${rows} rows`);

  const samples = ds.uint16('x00280002') ?? 1;
  const photometric = ds.string('x00280004') ?? 'MONOCHROME2';
  if (samples !== 1 || (photometric !== 'MONOCHROME1' && photometric !== 'MONOCHROME2')) {
    throw bad(`it is a ${photometric} image with ${samples} samples per pixel, not monochrome CT`);
  }
  const frames = ds.intString('x00280008') ?? 1;
  if (frames !== 1) throw bad(`it holds ${frames} frames; send one slice per file`);

  const bitsAllocated = ds.uint16('x00280100');
  if (bitsAllocated !== 8 && bitsAllocated !== 16) throw bad(`it has ${bitsAllocated ?? 'no'} bits allocated per pixel`);
  const bitsStored = ds.uint16('x00280101') ?? bitsAllocated;
  if (bitsStored < 1 || bitsStored > bitsAllocated) throw bad(`it declares ${bitsStored} bits stored in ${bitsAllocated}`);
  const signed = (ds.uint16('x00280103') ?? 0) === 1;

  const slope = ds.floatString('x00281053') ?? 1;
  const intercept = ds.floatString('x00281052') ?? 0;
  if (!Number.isFinite(slope) || slope === 0 || !Number.isFinite(intercept)) {
    throw bad(`its Rescale Slope/Intercept (${slope}/${intercept}) cannot convert pixels to Hounsfield units`);
  }

  // Cheap checks before any decoding.
  const pixelSpacingMm = readSpacing(ds);
  // The decoding thread's deadline grows with the checked size (slice-preparer.ts).
  onHeader?.(rows * columns);
  // ds.byteArray: the inflated file for the deflated syntax, else the upload itself.
  const pixels = pixelBytes(Buffer.from(ds.byteArray.buffer, ds.byteArray.byteOffset, ds.byteArray.byteLength), ds, transferSyntaxUid, { rows, columns, bitsAllocated });
  const view = new DataView(pixels.buffer, pixels.byteOffset, pixels.byteLength);
  const shift = 32 - bitsStored;
  // Bits above BitsStored are not part of the value (PS3.5 8.1.1): mask or sign-extend them away.
  const toValue = signed
    ? (raw: number) => (raw << shift) >> shift
    : (raw: number) => (raw << shift) >>> shift;
  const read = bitsAllocated === 16 ? (i: number) => view.getUint16(i * 2, true) : (i: number) => view.getUint8(i);

  return {
    rows,
    columns,
    pixelSpacingMm,
    transferSyntaxUid,
    identifiers: {
      studyInstanceUid: uid(ds, 'x0020000d'),
      seriesInstanceUid: uid(ds, 'x0020000e'),
      sopInstanceUid: uid(ds, 'x00080018') ?? uid(ds, 'x00020003'),
    },
    huAt: (column, row) => toValue(read(row * columns + column)) * slope + intercept,
  };
}

/** Default centre: the middle of the image (pixel centres at integer coordinates). */
export function resolveCentre(slice: DicomCtSlice, centerX?: number | null, centerY?: number | null): PixelCentre {
  const x = centerX ?? (slice.columns - 1) / 2;
  const y = centerY ?? (slice.rows - 1) / 2;
  if (!Number.isFinite(x) || !Number.isFinite(y)) throw new BadInputError('centerX/centerY must be finite numbers');
  if (x < -0.5 || x > slice.columns - 0.5 || y < -0.5 || y > slice.rows - 0.5) {
    throw new BadInputError(
      `The nodule centre (centerX=${x}, centerY=${y}) lies outside the ${slice.columns}x${slice.rows} DICOM image; ` +
        'give it in pixel coordinates (column, row) from the top-left pixel.',
    );
  }
  return { x, y };
}

/**
 * Millimetres per pixel of the model's input. The shipped model was trained on LIDC md882
 * patches, whose spacing (diameter_mm / equivalent diameter of the outline in pixels, per
 * nodule) is 0.68-1.00 mm/pixel from 10th to 90th percentile, median 0.81 (an overestimate:
 * the diameter is the longest one); LIDC scans themselves centre near 0.7 mm. 0.75 mm/pixel
 * gives a 48 mm field of view at 64 px. See docs/inference.md.
 */
export const PATCH_MM_PER_PIXEL = 0.75;

/**
 * The model's view of a DICOM slice, in HU: a size x size grid of PATCH_MM_PER_PIXEL spacing,
 * symmetric about the centre (given in the slice's own pixel coordinates), sampled with the
 * antialiased triangle filter and air outside the image. When the slice already has the
 * target spacing and the grid falls on pixel centres this is exactly a crop.
 */
export function dicomPatchHu(slice: DicomCtSlice, size: number, centre: PixelCentre, mmPerPixel = PATCH_MM_PER_PIXEL): Raster {
  const stepX = mmPerPixel / slice.pixelSpacingMm.column;
  const stepY = mmPerPixel / slice.pixelSpacingMm.row;
  const half = (size - 1) / 2;
  return resampleGrid(slice.huAt, slice.columns, slice.rows, PAD_HU, {
    size,
    firstX: centre.x - half * stepX,
    firstY: centre.y - half * stepY,
    stepX,
    stepY,
  });
}
