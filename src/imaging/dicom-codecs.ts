/**
 * Decoders for compressed DICOM pixel data (one frame, monochrome). Each returns the frame as
 * native little-endian samples (rows x columns x bitsAllocated/8 bytes), so that dicom.ts reads
 * compressed and uncompressed files the same way.
 *
 *   RLE Lossless            PS3.5 Annex G, implemented here (PackBits byte planes)
 *   JPEG Lossless (14, SV1) jpeg-lossless-decoder-js (pure JS)
 *   JPEG-LS                 @cornerstonejs/codec-charls (CharLS in WebAssembly)
 *   JPEG 2000               @cornerstonejs/codec-openjpeg (OpenJPEG in WebAssembly)
 *
 * The WebAssembly modules are instantiated synchronously on first use (their `instantiateWasm`
 * hook with WebAssembly.Module/Instance), because preparing a slice is synchronous; a file that
 * needs neither never loads them.
 */
import { createRequire } from 'node:module';
import { forgetCodecModule, loadCodecModuleSync } from './wasm-module.ts';

const require = createRequire(import.meta.url);

/** What the frame must turn out to be; anything else is a corrupt or mislabelled file. */
export interface FrameGeometry {
  rows: number;
  columns: number;
  bitsAllocated: 8 | 16;
}

/** A decoder failed or its output does not match the header: the caller makes it BAD_USER_INPUT. */
export class FrameDecodeError extends Error {}

export interface PixelCodec {
  name: string;
  decode(frame: Uint8Array, g: FrameGeometry): Uint8Array;
}

function expectSize(g: FrameGeometry): number {
  return g.rows * g.columns * (g.bitsAllocated / 8);
}

/** RLE Lossless: a 64-byte header of segment offsets, one PackBits segment per byte plane. */
export function decodeRle(frame: Uint8Array, g: FrameGeometry): Uint8Array {
  if (frame.length < 64) throw new FrameDecodeError(`the RLE frame is ${frame.length} bytes, shorter than its 64-byte header`);
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const segments = view.getUint32(0, true);
  const planes = g.bitsAllocated / 8;
  if (segments !== planes) throw new FrameDecodeError(`the RLE frame has ${segments} segments; ${g.bitsAllocated}-bit monochrome needs ${planes}`);
  const pixels = g.rows * g.columns;
  const out = new Uint8Array(pixels * planes);
  for (let s = 0; s < segments; s++) {
    const start = view.getUint32(4 + 4 * s, true);
    const end = s + 1 < segments ? view.getUint32(8 + 4 * s, true) : frame.length;
    if (start < 64 || end > frame.length || end < start) throw new FrameDecodeError(`RLE segment ${s + 1} lies outside the frame`);
    // Segment 0 holds the most significant bytes; little endian puts them last.
    const plane = planes - 1 - s;
    let o = 0;
    let i = start;
    while (o < pixels && i < end) {
      const n = (frame[i++]! << 24) >> 24;
      if (n >= 0) {
        if (i + n + 1 > end || o + n + 1 > pixels) throw new FrameDecodeError(`RLE segment ${s + 1} runs past its end`);
        for (let k = 0; k <= n; k++) out[(o++) * planes + plane] = frame[i++]!;
      } else if (n !== -128) {
        if (i >= end || o - n + 1 > pixels) throw new FrameDecodeError(`RLE segment ${s + 1} runs past its end`);
        const v = frame[i++]!;
        for (let k = 0; k < 1 - n; k++) out[(o++) * planes + plane] = v;
      }
    }
    if (o !== pixels) throw new FrameDecodeError(`RLE segment ${s + 1} holds ${o} of ${pixels} pixels`);
  }
  return out;
}

interface JpegLosslessDecoder {
  decode(buffer: ArrayBuffer, offset: number, length: number, numBytes: number): Uint8Array | Uint16Array;
  xDim: number;
  yDim: number;
  numComp: number;
}

/**
 * Width and height from a JPEG or JPEG-LS frame header (SOFn / SOF55), checked against the
 * DICOM header before decoding, so a codestream claiming a huge image allocates nothing.
 */
export function checkJpegFrameHeader(frame: Uint8Array, g: FrameGeometry, what: string): void {
  let i = 2;
  if (frame[0] !== 0xff || frame[1] !== 0xd8) throw new FrameDecodeError(`the ${what} data does not start with a JPEG SOI marker`);
  while (i + 4 <= frame.length) {
    if (frame[i] !== 0xff) throw new FrameDecodeError(`the ${what} data has a corrupt marker at byte ${i}`);
    const marker = frame[i + 1]!;
    if (marker === 0xff) {
      i++;
      continue;
    }
    const length = (frame[i + 2]! << 8) | frame[i + 3]!;
    const isSof = (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) || marker === 0xf7;
    if (isSof) {
      if (i + 10 > frame.length) break;
      const rows = (frame[i + 5]! << 8) | frame[i + 6]!;
      const columns = (frame[i + 7]! << 8) | frame[i + 8]!;
      const components = frame[i + 9]!;
      if (rows !== g.rows || columns !== g.columns || components !== 1) {
        throw new FrameDecodeError(`the ${what} frame is ${columns}x${rows} with ${components} component(s); the header says ${g.columns}x${g.rows} monochrome`);
      }
      return;
    }
    i += 2 + length;
  }
  throw new FrameDecodeError(`the ${what} data has no frame header`);
}

/** Image size from a JPEG 2000 codestream's SIZ marker (which must follow SOC), checked likewise. */
export function checkJ2kSiz(frame: Uint8Array, g: FrameGeometry): void {
  if (frame.length < 42 || frame[0] !== 0xff || frame[1] !== 0x4f || frame[2] !== 0xff || frame[3] !== 0x51) {
    throw new FrameDecodeError('the JPEG 2000 data is not a codestream starting with SOC and SIZ markers');
  }
  const v = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const columns = v.getUint32(8) - v.getUint32(16);
  const rows = v.getUint32(12) - v.getUint32(20);
  const components = v.getUint16(40);
  if (rows !== g.rows || columns !== g.columns || components !== 1) {
    throw new FrameDecodeError(`the JPEG 2000 frame is ${columns}x${rows} with ${components} component(s); the header says ${g.columns}x${g.rows} monochrome`);
  }
}

function decodeJpegLossless(frame: Uint8Array, g: FrameGeometry): Uint8Array {
  checkJpegFrameHeader(frame, g, 'JPEG Lossless');
  const lib = require('jpeg-lossless-decoder-js') as { lossless: { Decoder: new () => JpegLosslessDecoder } };
  const decoder = new lib.lossless.Decoder();
  const copy = new Uint8Array(frame); // a copy that owns its whole ArrayBuffer
  const out = decoder.decode(copy.buffer, 0, copy.length, g.bitsAllocated / 8);
  if (decoder.xDim !== g.columns || decoder.yDim !== g.rows || decoder.numComp !== 1) {
    throw new FrameDecodeError(`the JPEG frame is ${decoder.xDim}x${decoder.yDim} with ${decoder.numComp} components, the header says ${g.columns}x${g.rows} monochrome`);
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** The shape the two cornerstone codecs share (Embind classes over the wasm heap). */
interface WasmFrameInfo { width: number; height: number; bitsPerSample: number; componentCount: number }
interface WasmDecoder {
  getEncodedBuffer(length: number): Uint8Array;
  decode(): void;
  getFrameInfo(): WasmFrameInfo;
  getDecodedBuffer(): Uint8Array;
  delete(): void;
}
type WasmModule = Record<string, new () => WasmDecoder>;

function loadWasmSync(pkg: string, className: string): WasmModule {
  return loadCodecModuleSync(pkg, 'decode', className) as WasmModule;
}

function wasmCodec(pkg: string, className: string, what: string) {
  const check = (info: WasmFrameInfo, g: FrameGeometry) => {
    if (info.width !== g.columns || info.height !== g.rows || info.componentCount !== 1 || info.bitsPerSample > g.bitsAllocated) {
      throw new FrameDecodeError(`the ${what} frame is ${info.width}x${info.height}, ${info.componentCount} component(s) of ${info.bitsPerSample} bits; the header says ${g.columns}x${g.rows} monochrome, ${g.bitsAllocated} bits allocated`);
    }
  };
  return (frame: Uint8Array, g: FrameGeometry): Uint8Array => {
    if (className === 'JpegLSDecoder') checkJpegFrameHeader(frame, g, what);
    else checkJ2kSiz(frame, g);
    const decoder = new (loadWasmSync(pkg, className)[className]!)();
    try {
      decoder.getEncodedBuffer(frame.length).set(frame);
      try {
        decoder.decode();
      } catch (e) {
        if (e instanceof FrameDecodeError) throw e;
        // A trap may leave the module's state unusable: the next file gets a fresh instance.
        forgetCodecModule(pkg, 'decode');
        throw new FrameDecodeError(`the ${what} data could not be decoded (${e instanceof Error ? e.message : String(e)})`);
      }
      const info = decoder.getFrameInfo();
      check(info, g);
      const bytes = Math.ceil(info.bitsPerSample / 8);
      const decoded = decoder.getDecodedBuffer();
      if (bytes === g.bitsAllocated / 8) return decoded.slice();
      // 8-bit samples in a 16-bit allocation: widen (values are small, high byte 0).
      const wide = new Uint8Array(g.rows * g.columns * 2);
      for (let i = 0; i < decoded.length; i++) wide[i * 2] = decoded[i]!;
      return wide;
    } finally {
      try {
        decoder.delete();
      } catch {
        // the module trapped; it has been dropped above
      }
    }
  };
}

const jpegLs = wasmCodec('@cornerstonejs/codec-charls', 'JpegLSDecoder', 'JPEG-LS');
const jpeg2000 = wasmCodec('@cornerstonejs/codec-openjpeg', 'J2KDecoder', 'JPEG 2000');

/** Transfer syntax UID -> decoder, for every compressed syntax we accept. */
export const PIXEL_CODECS: Readonly<Record<string, PixelCodec>> = {
  '1.2.840.10008.1.2.5': { name: 'RLE Lossless', decode: decodeRle },
  '1.2.840.10008.1.2.4.57': { name: 'JPEG Lossless, Non-Hierarchical (Process 14)', decode: decodeJpegLossless },
  '1.2.840.10008.1.2.4.70': { name: 'JPEG Lossless, first-order prediction (Process 14, SV1)', decode: decodeJpegLossless },
  '1.2.840.10008.1.2.4.80': { name: 'JPEG-LS Lossless', decode: jpegLs },
  '1.2.840.10008.1.2.4.81': { name: 'JPEG-LS Near-Lossless', decode: jpegLs },
  '1.2.840.10008.1.2.4.90': { name: 'JPEG 2000 Lossless', decode: jpeg2000 },
  '1.2.840.10008.1.2.4.91': { name: 'JPEG 2000', decode: jpeg2000 },
};

/** Decodes and checks the size; every failure is a FrameDecodeError. */
export function decodeFrame(transferSyntaxUid: string, frame: Uint8Array, g: FrameGeometry): Uint8Array {
  const codec = PIXEL_CODECS[transferSyntaxUid];
  if (!codec) throw new FrameDecodeError(`no decoder for transfer syntax ${transferSyntaxUid}`);
  let out: Uint8Array;
  try {
    out = codec.decode(frame, g);
  } catch (e) {
    if (e instanceof FrameDecodeError) throw e;
    // The JS and wasm decoders throw strings, numbers and Errors on corrupt streams.
    throw new FrameDecodeError(`the ${codec.name} data could not be decoded (${e instanceof Error ? e.message : String(e)})`);
  }
  if (out.length !== expectSize(g)) {
    throw new FrameDecodeError(`the ${codec.name} frame decodes to ${out.length} bytes; ${g.columns}x${g.rows} pixels of ${g.bitsAllocated} bits need ${expectSize(g)}`);
  }
  return out;
}
