/** Shared helpers for the inference tests (not a test file itself). */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import { BadInputError } from '../../src/errors.ts';
import { PNG_SIGNATURE, pngChunk } from '../../src/imaging/png.ts';
import type { ModelCard } from '../../src/inference/types.ts';

export const FIXTURE_MODEL = fileURLToPath(new URL('../fixtures/fcdn-untrained.onnx', import.meta.url));

/** A card as the preprocessing needs it (prepareSlice reads only inputSize). */
export const CARD: ModelCard = {
  name: 'test',
  inputSize: 64,
  bits: 64,
  io: { input: 'patches', shallow: 'code_l4', middle: 'code_l17', deep: 'code_l25' },
};

/** Assert fn throws a BadInputError whose message matches every pattern; returns the message. */
export function assertBadInput(fn: () => unknown, ...patterns: RegExp[]): string {
  let message = '';
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof BadInputError, `expected BadInputError, got ${(e as Error)?.constructor?.name}: ${String((e as Error)?.message ?? e)}`);
    message = e.message;
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
  return message;
}

export interface RawPngSpec {
  width: number;
  height: number;
  bitDepth: number;
  colorType: number;
  interlace?: 0 | 1;
  /** Filtered scanlines, already with their filter bytes (default: zeros of the right size). */
  raw?: Buffer;
  /** Chunks inserted between IHDR and IDAT. */
  extra?: Array<{ type: string; data: Buffer }>;
  idat?: Buffer;
}

/** Build a PNG from parts, valid CRCs throughout: for headers pngjs-based writers cannot produce. */
export function rawPng(spec: RawPngSpec): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(spec.width, 0);
  ihdr.writeUInt32BE(spec.height, 4);
  ihdr[8] = spec.bitDepth;
  ihdr[9] = spec.colorType;
  ihdr[12] = spec.interlace ?? 0;
  const channels = ({ 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 } as Record<number, number>)[spec.colorType] ?? 1;
  const rowBytes = Math.ceil((spec.width * channels * spec.bitDepth) / 8) + 1;
  const raw = spec.raw ?? Buffer.alloc(rowBytes * Math.min(spec.height, 4096));
  const idat = spec.idat ?? zlib.deflateSync(raw);
  return Buffer.concat([
    PNG_SIGNATURE,
    pngChunk('IHDR', ihdr),
    ...(spec.extra ?? []).map((c) => pngChunk(c.type, c.data)),
    pngChunk('IDAT', idat),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Chunk types of a PNG, in order. */
export function chunkTypes(png: Buffer): string[] {
  const types: string[] = [];
  for (let pos = 8; pos + 8 <= png.length; ) {
    const len = png.readUInt32BE(pos);
    types.push(png.toString('latin1', pos + 4, pos + 8));
    pos += 12 + len;
  }
  return types;
}

/** Adam7-interlaced 8-bit grayscale PNG (filter None), to test interlaced decoding. */
export function interlacedGrayPng(width: number, height: number, pixel: (x: number, y: number) => number): Buffer {
  const passes: Array<[number, number, number, number]> = [
    [0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2],
  ];
  const parts: number[] = [];
  for (const [x0, y0, dx, dy] of passes) {
    if (x0 >= width || y0 >= height) continue;
    for (let y = y0; y < height; y += dy) {
      parts.push(0);
      for (let x = x0; x < width; x += dx) parts.push(pixel(x, y));
    }
  }
  return rawPng({ width, height, bitDepth: 8, colorType: 0, interlace: 1, raw: Buffer.from(parts) });
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
