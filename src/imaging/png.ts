/**
 * PNG in and out.
 *
 * Decoding checks the container ourselves before pngjs sees it: pngjs would allocate
 * whatever IHDR claims, inflates interlaced images without a size limit, and silently
 * zeroes pixels that match a tRNS colour. So we walk the chunks (CRC, order, truncation),
 * refuse unsupported headers and sizes before touching pixel data, inflate once with a hard
 * output limit, and hand pngjs only IHDR + IDAT + IEND, leaving it the filtering and Adam7.
 */
import zlib from 'node:zlib';
import pngjs from 'pngjs';
import { BadInputError } from '../errors.ts';
import type { Raster } from './resample.ts';

const { PNG } = pngjs;

export const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
export const PNG_MIN_SIDE = 32;
export const PNG_MAX_SIDE = 512;

export const PNG_ACCEPTED =
  `Accepted PNG: 8-bit (windowed intensities 0-255) or 16-bit (HU + 32768) grayscale ` +
  `(RGB/RGBA are converted to luminance), ${PNG_MIN_SIDE} to ${PNG_MAX_SIDE} pixels per side.`;

export interface PngHeader {
  width: number;
  height: number;
  bitDepth: number;
  colorType: number;
  interlaced: boolean;
}

export interface DecodedPng {
  /** Gray samples in the file's own units: 0..255 (8-bit) or 0..65535 (16-bit). */
  raster: Raster;
  bitDepth: 8 | 16;
}

const COLOR_TYPE_NAMES: Record<number, string> = {
  0: 'grayscale',
  2: 'RGB',
  3: 'palette (indexed colour)',
  4: 'grayscale with alpha',
  6: 'RGBA',
};
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 4: 2, 6: 4 };

function bad(what: string): BadInputError {
  return new BadInputError(`PNG image refused: ${what}. ${PNG_ACCEPTED}`);
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export function isPng(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && PNG_SIGNATURE.equals(Buffer.from(bytes.buffer, bytes.byteOffset, 8));
}

interface Chunk {
  type: string;
  data: Buffer;
}

/** Walk every chunk up to IEND, checking bounds and CRCs; refuses truncated files. */
function readChunks(buf: Buffer): Chunk[] {
  const chunks: Chunk[] = [];
  let pos = 8;
  for (;;) {
    if (pos + 8 > buf.length) throw bad('the file is truncated (it ends before the IEND chunk)');
    const length = buf.readUInt32BE(pos);
    const type = buf.toString('latin1', pos + 4, pos + 8);
    if (!/^[A-Za-z]{4}$/.test(type)) throw bad(`the file is corrupt (invalid chunk type at byte ${pos + 4})`);
    if (length > 0x7fffffff || pos + 12 + length > buf.length) {
      throw bad(`the file is truncated (chunk ${type} runs past the end of the file)`);
    }
    const crc = buf.readUInt32BE(pos + 8 + length);
    if (crc32(buf.subarray(pos + 4, pos + 8 + length)) !== crc) {
      throw bad(`the file is corrupt (checksum mismatch in chunk ${type})`);
    }
    chunks.push({ type, data: buf.subarray(pos + 8, pos + 8 + length) });
    pos += 12 + length;
    if (type === 'IEND') return chunks;
  }
}

function parseIhdr(chunk: Chunk | undefined): PngHeader {
  if (!chunk || chunk.type !== 'IHDR' || chunk.data.length !== 13) {
    throw bad('the file is corrupt (it does not start with a valid IHDR header)');
  }
  const d = chunk.data;
  const h: PngHeader = {
    width: d.readUInt32BE(0),
    height: d.readUInt32BE(4),
    bitDepth: d[8]!,
    colorType: d[9]!,
    interlaced: d[12] === 1,
  };
  if (d[10] !== 0 || d[11] !== 0 || d[12]! > 1) {
    throw bad('the header names an unknown compression, filter or interlace method');
  }
  return h;
}

/** Refuse what we do not decode, before any pixel data is inflated or allocated. */
function checkHeader(h: PngHeader): void {
  const kind = COLOR_TYPE_NAMES[h.colorType];
  if (!kind) throw bad(`unknown PNG colour type ${h.colorType}`);
  if (h.colorType === 3) throw bad(`it is a ${h.bitDepth}-bit palette (indexed colour) image`);
  if (h.bitDepth !== 8 && h.bitDepth !== 16) throw bad(`it is a ${h.bitDepth}-bit ${kind} image`);
  const sizeOk = (n: number) => n >= PNG_MIN_SIDE && n <= PNG_MAX_SIDE;
  if (!sizeOk(h.width) || !sizeOk(h.height)) throw bad(`it is ${h.width}x${h.height} pixels`);
}

/** Inflated size the header implies (Adam7: the seven reduced images, each row with a filter byte). */
function expectedInflatedBytes(h: PngHeader): number {
  const bytesPerPixel = (CHANNELS[h.colorType]! * h.bitDepth) / 8;
  const rows = (w: number, ht: number) => (w === 0 || ht === 0 ? 0 : ht * (w * bytesPerPixel + 1));
  if (!h.interlaced) return rows(h.width, h.height);
  const passes: Array<[number, number, number, number]> = [
    [0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2],
  ];
  let total = 0;
  for (const [x0, y0, dx, dy] of passes) {
    total += rows(Math.ceil((h.width - x0) / dx), Math.ceil((h.height - y0) / dy));
  }
  return total;
}

function chunkBytes(type: string, data: Buffer): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** Read only the header (signature + IHDR). Cheap; allocates nothing image-sized. */
export function readPngHeader(bytes: Buffer): PngHeader {
  if (!isPng(bytes)) throw bad('the data does not start with the PNG signature');
  if (bytes.length < 33) throw bad('the file is truncated (shorter than a PNG header)');
  const length = bytes.readUInt32BE(8);
  const type = bytes.toString('latin1', 12, 16);
  if (type !== 'IHDR' || length !== 13) throw bad('the file is corrupt (it does not start with a valid IHDR header)');
  if (crc32(bytes.subarray(12, 29)) !== bytes.readUInt32BE(29)) throw bad('the file is corrupt (checksum mismatch in chunk IHDR)');
  return parseIhdr({ type, data: bytes.subarray(16, 29) });
}

export function decodePng(bytes: Buffer): DecodedPng {
  try {
    return decodeChecked(bytes);
  } catch (e) {
    if (e instanceof BadInputError) throw e;
    // pngjs and zlib throw plain Errors (or worse); the caller only ever sees BadInputError.
    const detail = e instanceof Error ? e.message : String(e);
    throw bad(`the image data could not be decoded (${detail})`);
  }
}

function decodeChecked(bytes: Buffer): DecodedPng {
  const header = readPngHeader(bytes);
  checkHeader(header);
  const chunks = readChunks(bytes);
  const idat: Buffer[] = [];
  let idatEnded = false;
  for (const c of chunks.slice(1)) {
    if (c.type === 'IHDR') throw bad('the file is corrupt (a second IHDR chunk)');
    if (c.type === 'IDAT') {
      if (idatEnded) throw bad('the file is corrupt (image data chunks are not consecutive)');
      idat.push(c.data);
    } else {
      if (idat.length > 0) idatEnded = true;
      const critical = c.type.charCodeAt(0) < 0x61;
      if (critical && c.type !== 'IEND' && c.type !== 'PLTE') throw bad(`it uses an unknown critical chunk ${c.type}`);
      if (c.type === 'PLTE' && (header.colorType === 0 || header.colorType === 4)) {
        throw bad('the file is corrupt (a palette in a grayscale image)');
      }
    }
  }
  if (idat.length === 0) throw bad('the file has no image data (no IDAT chunk)');
  const compressed = Buffer.concat(idat);
  const expected = expectedInflatedBytes(header);
  let inflated: Buffer;
  try {
    inflated = zlib.inflateSync(compressed, { maxOutputLength: expected });
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ERR_BUFFER_TOO_LARGE') throw bad('the image data expands beyond the size its header declares');
    throw bad(`the compressed image data is corrupt or truncated (${(e as Error).message})`);
  }
  if (inflated.length !== expected) {
    throw bad(`the image data is truncated (${inflated.length} of ${expected} bytes after decompression)`);
  }
  const minimal = Buffer.concat([
    PNG_SIGNATURE,
    chunkBytes('IHDR', chunks[0]!.data),
    chunkBytes('IDAT', compressed),
    chunkBytes('IEND', Buffer.alloc(0)),
  ]);
  const png = PNG.sync.read(minimal, { skipRescale: true });
  const rgba = png.data as unknown as ArrayLike<number>;
  const n = header.width * header.height;
  if (png.width !== header.width || png.height !== header.height || rgba.length < n * 4) {
    throw bad('the image data does not match its header');
  }
  return {
    raster: { width: header.width, height: header.height, data: toGray(rgba, n) },
    bitDepth: header.bitDepth as 8 | 16,
  };
}

/**
 * pngjs expands every colour type to RGBA. Gray files (and colour files whose channels are
 * equal, the usual "saved as RGB" export) keep their exact values; true colour becomes
 * ITU-R BT.601 luma, as Pillow's convert('L') does. Alpha is ignored: CT has no transparency.
 */
function toGray(rgba: ArrayLike<number>, n: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0, p = 0; i < n; i++, p += 4) {
    const r = rgba[p]!;
    const g = rgba[p + 1]!;
    const b = rgba[p + 2]!;
    out[i] = r === g && g === b ? r : 0.299 * r + 0.587 * g + 0.114 * b;
  }
  return out;
}

/** A clean grayscale PNG: IHDR, one IDAT, IEND, nothing else (no metadata can ride along). */
export function encodeGrayPng(samples: ArrayLike<number>, width: number, height: number, bitDepth: 8 | 16): Buffer {
  return encodePng(samples, width, height, bitDepth, 0);
}

/**
 * Minimal PNG writer (IHDR, one IDAT, IEND) for interleaved samples of colour type 0, 2, 4
 * or 6. Filter None on every row: simple, and byte-for-byte deterministic.
 */
export function encodePng(
  samples: ArrayLike<number>,
  width: number,
  height: number,
  bitDepth: 8 | 16,
  colorType: 0 | 2 | 4 | 6,
): Buffer {
  const channels = CHANNELS[colorType]!;
  const bytesPerSample = bitDepth / 8;
  const rowSamples = width * channels;
  const stride = rowSamples * bytesPerSample + 1;
  const raw = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++) {
    for (let i = 0; i < rowSamples; i++) {
      const v = samples[y * rowSamples + i]!;
      const at = y * stride + 1 + i * bytesPerSample;
      if (bitDepth === 8) raw[at] = v;
      else raw.writeUInt16BE(v, at);
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = bitDepth;
  ihdr[9] = colorType;
  return Buffer.concat([
    PNG_SIGNATURE,
    chunkBytes('IHDR', ihdr),
    chunkBytes('IDAT', zlib.deflateSync(raw, { level: 9 })),
    chunkBytes('IEND', Buffer.alloc(0)),
  ]);
}

/** One chunk with its CRC; exported for tests that build deliberately odd files. */
export { chunkBytes as pngChunk };
