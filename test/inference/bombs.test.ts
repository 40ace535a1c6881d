/**
 * Decompression bombs and absurd dimensions are refused from their headers, before anything
 * image-sized is allocated or inflated: each refusal is checked by its message (the header
 * check that fired), by still happening when everything after the header is missing, and by
 * the memory the process holds afterwards.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import zlib from 'node:zlib';
import { BadInputError } from '../../src/errors.ts';
import { makePhantomDicom } from '../../fixtures/phantoms.ts';
import { PNG_SIGNATURE, pngChunk } from '../../src/imaging/png.ts';
import { prepareSlice } from '../../src/imaging/prepare-slice.ts';
import { dicomElements } from './mutators.ts';
import { assertBadInput, CARD, rawPng } from './support.ts';

/** Far less than any bomb below would need (the smallest asks for 256 MiB). */
const MEMORY_BOUND = 48 * 1024 * 1024;

function refusedWithin(data: Buffer, ...patterns: RegExp[]): { message: string; ms: number; grewBy: number } {
  return refusedWithinBound(MEMORY_BOUND, data, ...patterns);
}

function refusedWithinBound(bound: number, data: Buffer, ...patterns: RegExp[]): { message: string; ms: number; grewBy: number } {
  const before = process.memoryUsage();
  const t0 = performance.now();
  const message = assertBadInput(() => prepareSlice({ data, offset: 0 }, CARD), ...patterns);
  const ms = performance.now() - t0;
  const after = process.memoryUsage();
  const grewBy = Math.max(after.rss - before.rss, after.arrayBuffers - before.arrayBuffers);
  assert.ok(grewBy < bound, `memory grew by ${(grewBy / 2 ** 20).toFixed(0)} MiB while refusing`);
  assert.ok(ms < 1000, `refusal took ${ms.toFixed(0)} ms`);
  return { message, ms, grewBy };
}

function ihdr(width: number, height: number, bitDepth = 8, colorType = 0): Buffer {
  const h = Buffer.alloc(13);
  h.writeUInt32BE(width, 0);
  h.writeUInt32BE(height, 4);
  h[8] = bitDepth;
  h[9] = colorType;
  return pngChunk('IHDR', h);
}

test('a PNG claiming 100000x100000 pixels is refused from its IHDR, even with nothing after it', (t) => {
  // 10^10 pixels (40 GB as RGBA). Only the signature and IHDR: the refusal cannot have read further.
  const headerOnly = Buffer.concat([PNG_SIGNATURE, ihdr(100_000, 100_000)]);
  const r = refusedWithin(headerOnly, /100000x100000 pixels/);
  const full = rawPng({ width: 100_000, height: 100_000, bitDepth: 8, colorType: 0, idat: zlib.deflateSync(Buffer.alloc(1 << 20)) });
  refusedWithin(full, /100000x100000 pixels/);
  for (const [w, h] of [[0x7fffffff, 64], [64, 0xffffffff], [0, 0], [513, 64]] as const) {
    refusedWithin(Buffer.concat([PNG_SIGNATURE, ihdr(w, h)]), new RegExp(`${w}x${h} pixels`));
  }
  t.diagnostic(`refused in ${r.ms.toFixed(2)} ms, memory +${(r.grewBy / 2 ** 20).toFixed(1)} MiB: ${r.message.slice(0, 80)}`);
});

test('a small IDAT that inflates to 256 MiB is cut off at the size the header implies', (t) => {
  const inflatesTo = 256 * 1024 * 1024;
  const bomb = zlib.deflateSync(Buffer.alloc(inflatesTo), { level: 9 });
  assert.ok(bomb.length < 300 * 1024, `the bomb is ${bomb.length} bytes`);
  const ratio = Math.round(inflatesTo / bomb.length);
  // Largest accepted header (512x512 16-bit RGBA: 2 MiB inflated), plain and interlaced, one IDAT or a thousand.
  const plain = rawPng({ width: 512, height: 512, bitDepth: 16, colorType: 6, idat: bomb });
  const interlaced = rawPng({ width: 512, height: 512, bitDepth: 16, colorType: 6, interlace: 1, idat: bomb });
  const pieces = Array.from({ length: 1000 }, (_, i) => pngChunk('IDAT', bomb.subarray(Math.floor((i * bomb.length) / 1000), Math.floor(((i + 1) * bomb.length) / 1000))));
  const split = Buffer.concat([PNG_SIGNATURE, ihdr(512, 512, 16, 6), ...pieces, pngChunk('IEND', Buffer.alloc(0))]);
  const results = [plain, interlaced, split].map((png) => refusedWithin(png, /expands beyond the size its header declares/));
  t.diagnostic(`${bomb.length} bytes inflating ${ratio}:1 refused in ${results.map((r) => r.ms.toFixed(0)).join('/')} ms, memory +${Math.max(...results.map((r) => r.grewBy / 2 ** 20)).toFixed(1)} MiB at most`);
});

test('a DICOM declaring 65535x65535 pixels is refused from Rows/Columns, before its pixel data is looked at', (t) => {
  const absurd = makePhantomDicom({ seed: 1, rows: 48, columns: 48, declaredRows: 65535, declaredColumns: 65535 });
  const r = refusedWithin(absurd, /65535 columns x 65535 rows/);
  // The same header with the pixel data cut off entirely: still the dimension refusal.
  const pixel = dicomElements(absurd, false).find((e) => e.tag === 0x7fe00010)!;
  refusedWithin(absurd.subarray(0, pixel.start), /65535 columns x 65535 rows/);
  refusedWithin(makePhantomDicom({ seed: 1, rows: 48, columns: 48, declaredRows: 0, declaredColumns: 48 }), /48 columns x 0 rows/);
  t.diagnostic(`refused in ${r.ms.toFixed(2)} ms: ${r.message.slice(0, 90)}`);
});

test('a DICOM whose pixel data is shorter than Rows x Columns, or whose length field claims 4 GiB, is refused; a lying length allocates nothing', (t) => {
  // 4096x4096 is within limits (32 MiB of pixels) but the file holds 48x48: the length check refuses it.
  const short = makePhantomDicom({ seed: 2, rows: 48, columns: 48, declaredRows: 4096, declaredColumns: 4096 });
  const r = refusedWithin(short, /pixel data holds 4608 bytes, but 4096x4096 pixels of 16 bits need 33554432/);
  const outcomes: string[] = [];
  for (const vr of ['explicit', 'implicit'] as const) {
    const dcm = makePhantomDicom({ seed: 3, rows: 48, columns: 48, vr });
    const pixel = dicomElements(dcm, vr === 'implicit').find((e) => e.tag === 0x7fe00010)!;
    for (const claim of [0xfffffff0, 0x7ffffff0]) {
      // Pixel Data is the last element, so the 48x48 pixels the header asks for are all there:
      // the decoder reads exactly Rows x Columns from the file's own bytes and allocates nothing
      // by the claimed length. Either outcome is fine; the memory bound is the point.
      const lying = Buffer.from(dcm);
      lying.writeUInt32LE(claim, pixel.lengthAt);
      const before = process.memoryUsage.rss();
      const outcome = (() => {
        try {
          prepareSlice({ data: lying, offset: 0 }, CARD);
          return 'decoded';
        } catch (e) {
          assert.ok(e instanceof BadInputError, String(e));
          return 'refused';
        }
      })();
      const grew = process.memoryUsage.rss() - before;
      assert.ok(grew < MEMORY_BOUND, `memory grew by ${(grew / 2 ** 20).toFixed(0)} MiB`);
      outcomes.push(`${vr} ${claim.toString(16)}: ${outcome}`);
      // The same claim with the pixels cut short: refused.
      refusedWithin(lying.subarray(0, lying.length - 100), /pixel data|corrupt|truncated|parsed/);
    }
  }
  t.diagnostic(`length claims: ${outcomes.join(', ')}`);
  t.diagnostic(`refused in ${r.ms.toFixed(2)} ms: ${r.message.slice(0, 100)}`);
});

test('compressed DICOM: a deflated data set inflating to 256 MiB and codestreams claiming 65535x65535 are refused', (t) => {
  // Deflated Explicit VR Little Endian: everything after the file meta group is raw deflate.
  const deflated = makePhantomDicom({ seed: 4, rows: 48, columns: 48, transferSyntaxUid: '1.2.840.10008.1.2.1.99' });
  const meta = dicomElements(deflated, false).filter((e) => e.tag >>> 16 === 0x0002);
  const bomb = zlib.deflateRawSync(Buffer.alloc(256 * 1024 * 1024), { level: 9 });
  const deflateBomb = Buffer.concat([deflated.subarray(0, meta.at(-1)!.end), bomb]);
  // The deflated syntax has no image header before its data set, so its inflate cap is fixed: the
  // largest accepted image plus 16 MiB (48 MiB, src/imaging/dicom.ts), not derived from Rows/Columns.
  const d = refusedWithinBound(80 * 1024 * 1024, deflateBomb, /inflated|could not be parsed|corrupt/);
  const lines = [`deflated data set (${bomb.length} bytes, 256 MiB inflated): ${d.ms.toFixed(0)} ms, +${(d.grewBy / 2 ** 20).toFixed(1)} MiB`];
  // Frame headers inside the pixel data claiming 65535x65535 while the DICOM header says 48x48.
  const codestreams: [string, string, (b: Buffer) => number][] = [
    ['JPEG 2000', '1.2.840.10008.1.2.4.90', (b) => b.indexOf(Buffer.from([0xff, 0x4f, 0xff, 0x51])) + 8], // SOC, SIZ: Lsiz, Rsiz, then Xsiz, Ysiz
    ['JPEG-LS', '1.2.840.10008.1.2.4.80', (b) => b.indexOf(Buffer.from([0xff, 0xf7])) + 5], // SOF55: Lf, P, then Y, X
    ['JPEG Lossless', '1.2.840.10008.1.2.4.70', (b) => b.indexOf(Buffer.from([0xff, 0xc3])) + 5], // SOF3
  ];
  for (const [name, ts, sizeAt] of codestreams) {
    const dcm = Buffer.from(makePhantomDicom({ seed: 5, rows: 48, columns: 48, transferSyntaxUid: ts }));
    const at = sizeAt(dcm);
    assert.ok(at > 8, `${name}: frame header found`);
    if (name === 'JPEG 2000') {
      dcm.writeUInt32BE(65535, at);
      dcm.writeUInt32BE(65535, at + 4);
    } else {
      dcm.writeUInt16BE(65535, at);
      dcm.writeUInt16BE(65535, at + 2);
    }
    const r = refusedWithin(dcm, /65535/);
    lines.push(`${name} frame header 65535x65535: ${r.ms.toFixed(1)} ms, +${(r.grewBy / 2 ** 20).toFixed(1)} MiB`);
  }
  t.diagnostic(lines.join('; '));
});
