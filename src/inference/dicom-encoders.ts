/**
 * Encoders for the compressed syntaxes we accept, to make real compressed phantoms for tests
 * and demos (never for patient data). RLE and JPEG Lossless are written here, simply rather
 * than compactly; JPEG-LS and JPEG 2000 use the encoders of the same WebAssembly codecs the
 * service decodes with (full builds; the service loads the decode-only ones).
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export interface FrameSamples {
  rows: number;
  columns: number;
  bitsAllocated: 8 | 16;
  bitsStored: number;
  signed: boolean;
  /** Little-endian samples, rows x columns x bitsAllocated/8 bytes. */
  bytes: Uint8Array;
}

/** PackBits over one byte plane: literal runs (n = 0..127) and repeats (n = -1..-127). */
function packBits(plane: Uint8Array): number[] {
  const out: number[] = [];
  let i = 0;
  while (i < plane.length) {
    let run = 1;
    while (i + run < plane.length && run < 128 && plane[i + run] === plane[i]) run++;
    if (run >= 2) {
      out.push(257 - run, plane[i]!);
      i += run;
      continue;
    }
    const start = i;
    while (i < plane.length && i - start < 128 && !(i + 1 < plane.length && plane[i + 1] === plane[i])) i++;
    if (i === start) i++;
    out.push(i - start - 1, ...plane.subarray(start, i));
  }
  return out;
}

/** RLE Lossless (PS3.5 Annex G): one segment per byte plane, most significant first. */
export function encodeRle(f: FrameSamples): Buffer {
  const planes = f.bitsAllocated / 8;
  const pixels = f.rows * f.columns;
  const segments: Buffer[] = [];
  for (let s = 0; s < planes; s++) {
    const plane = new Uint8Array(pixels);
    for (let i = 0; i < pixels; i++) plane[i] = f.bytes[i * planes + (planes - 1 - s)]!;
    const seg = Buffer.from(packBits(plane));
    segments.push(seg.length % 2 ? Buffer.concat([seg, Buffer.alloc(1)]) : seg);
  }
  const header = Buffer.alloc(64);
  header.writeUInt32LE(planes, 0);
  let offset = 64;
  segments.forEach((seg, s) => {
    header.writeUInt32LE(offset, 4 + 4 * s);
    offset += seg.length;
  });
  return Buffer.concat([header, ...segments]);
}

class BitWriter {
  private bytes: number[] = [];
  private acc = 0;
  private n = 0;
  write(value: number, bits: number): void {
    for (let b = bits - 1; b >= 0; b--) {
      this.acc = (this.acc << 1) | ((value >>> b) & 1);
      if (++this.n === 8) this.flushByte();
    }
  }
  private flushByte(): void {
    this.bytes.push(this.acc);
    if (this.acc === 0xff) this.bytes.push(0x00); // byte stuffing
    this.acc = 0;
    this.n = 0;
  }
  finish(): number[] {
    while (this.n !== 0) this.write(1, 1); // pad with 1-bits
    return this.bytes;
  }
}

/**
 * JPEG Lossless, Non-Hierarchical, Process 14 with predictor 1 (first-order, the .70 syntax):
 * SOF3, one Huffman table giving every difference category a 5-bit code (valid, if not small).
 */
export function encodeJpegLossless(f: FrameSamples, predictor: 1 | 2 | 3 = 1): Buffer {
  const precision = f.bitsAllocated === 8 ? 8 : Math.max(f.bitsStored, 2);
  const mod = 2 ** precision;
  const bpp = f.bitsAllocated / 8;
  const sample = (i: number) => (bpp === 2 ? f.bytes[i * 2]! | (f.bytes[i * 2 + 1]! << 8) : f.bytes[i]!) & (mod - 1);
  const w = new BitWriter();
  for (let y = 0; y < f.rows; y++) {
    for (let x = 0; x < f.columns; x++) {
      const i = y * f.columns + x;
      const a = x > 0 ? sample(i - 1) : 0;
      const b = y > 0 ? sample(i - f.columns) : 0;
      const c = x > 0 && y > 0 ? sample(i - f.columns - 1) : 0;
      let pred: number;
      if (x === 0 && y === 0) pred = 2 ** (precision - 1);
      else if (y === 0) pred = a;
      else if (x === 0) pred = b;
      else pred = predictor === 1 ? a : predictor === 2 ? b : c;
      // Differences modulo 2^16 (PS3.5 / ITU T.81 H.1.2.1), in -32767..32768.
      let diff = (sample(i) - pred) % 65536;
      if (diff > 32768) diff -= 65536;
      if (diff < -32767) diff += 65536;
      const ssss = diff === 0 ? 0 : Math.min(16, Math.floor(Math.log2(Math.abs(diff))) + 1);
      w.write(ssss, 5);
      if (ssss > 0 && ssss < 16) w.write(diff > 0 ? diff : diff - 1 + 2 ** ssss, ssss);
    }
  }
  const segment = (marker: number, body: number[]) => [0xff, marker, ((body.length + 2) >> 8) & 0xff, (body.length + 2) & 0xff, ...body];
  const counts = Array.from({ length: 16 }, (_, l) => (l === 4 ? 17 : 0));
  const symbols = Array.from({ length: 17 }, (_, s) => s);
  return Buffer.from([
    0xff, 0xd8,
    ...segment(0xc3, [precision, f.rows >> 8, f.rows & 0xff, f.columns >> 8, f.columns & 0xff, 1, 1, 0x11, 0]),
    ...segment(0xc4, [0x00, ...counts, ...symbols]),
    ...segment(0xda, [1, 1, 0x00, predictor, 0, 0]),
    ...w.finish(),
    0xff, 0xd9,
  ]);
}

interface WasmEncoder {
  getDecodedBuffer(info: object): Uint8Array;
  encode(): void;
  getEncodedBuffer(): Uint8Array;
  delete(): void;
  setNearLossless?(near: number): void;
  setQuality?(lossless: boolean, quality: number): void;
}

function loadEncoderModule(pkg: string, className: string): new () => WasmEncoder {
  const factory = require(`${pkg}/wasmjs`) as (m: object) => Promise<unknown>;
  const compiled = new WebAssembly.Module(fs.readFileSync(require.resolve(`${pkg}/wasm`)));
  const module: Record<string, unknown> = {
    print: () => {},
    printErr: () => {},
    instantiateWasm(imports: WebAssembly.Imports, receive: (i: WebAssembly.Instance, m: WebAssembly.Module) => void) {
      const instance = new WebAssembly.Instance(compiled, imports);
      receive(instance, compiled);
      return instance.exports;
    },
  };
  void factory(module).catch(() => undefined);
  const ctor = module[className];
  if (typeof ctor !== 'function') throw new Error(`${pkg} did not initialise synchronously`);
  return ctor as new () => WasmEncoder;
}

function wasmEncode(pkg: string, className: string, f: FrameSamples, configure: (e: WasmEncoder) => void): Buffer {
  const encoder = new (loadEncoderModule(pkg, className))();
  try {
    const bitsPerSample = f.bitsAllocated === 8 ? 8 : f.bitsStored;
    encoder.getDecodedBuffer({ width: f.columns, height: f.rows, bitsPerSample, componentCount: 1, isSigned: f.signed, isUsingColorTransform: false }).set(f.bytes);
    configure(encoder);
    encoder.encode();
    return Buffer.from(encoder.getEncodedBuffer());
  } finally {
    encoder.delete();
  }
}

/** JPEG-LS: near = 0 is lossless (.80); near > 0 bounds every sample's error by near (.81). */
export function encodeJpegLs(f: FrameSamples, near = 0): Buffer {
  return wasmEncode('@cornerstonejs/codec-charls', 'JpegLSEncoder', f, (e) => e.setNearLossless!(near));
}

/**
 * JPEG 2000: reversible 5/3 wavelet (.90), or the irreversible 9/7 wavelet of the lossy syntax
 * (.91). This build's encoder ignores compression-ratio settings, so the irreversible stream
 * comes out nearly lossless (within 1 of the input); it still exercises the lossy decoder path.
 */
export function encodeJpeg2000(f: FrameSamples, irreversible = false): Buffer {
  return wasmEncode('@cornerstonejs/codec-openjpeg', 'J2KEncoder', f, (e) => e.setQuality!(!irreversible, 0));
}
