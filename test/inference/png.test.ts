import assert from 'node:assert/strict';
import { test } from 'node:test';
import zlib from 'node:zlib';
import { decodePng, encodeGrayPng, encodePng, readPngHeader } from '../../src/imaging/png.ts';
import { centreCropSquare, resize, toSquarePatch } from '../../src/imaging/resample.ts';
import { assertBadInput, interlacedGrayPng, rawPng } from './support.ts';

test('8-bit and 16-bit grayscale decode to their exact sample values', () => {
  const w = 37;
  const h = 45;
  const s16 = Uint16Array.from({ length: w * h }, (_, i) => (i * 977) % 65536);
  const d16 = decodePng(encodeGrayPng(s16, w, h, 16));
  assert.equal(d16.bitDepth, 16);
  assert.deepEqual([d16.raster.width, d16.raster.height], [w, h]);
  assert.deepEqual(Array.from(d16.raster.data), Array.from(s16));
  const s8 = Uint16Array.from({ length: w * h }, (_, i) => (i * 31) % 256);
  const d8 = decodePng(encodeGrayPng(s8, w, h, 8));
  assert.equal(d8.bitDepth, 8);
  assert.deepEqual(Array.from(d8.raster.data), Array.from(s8));
});

test('RGB/RGBA with equal channels keep the gray value exactly; true colour becomes BT.601 luma; alpha ignored', () => {
  const n = 32 * 32;
  const rgba = new Uint16Array(n * 4);
  for (let i = 0; i < n; i++) rgba.set([i % 256, i % 256, i % 256, i % 7 === 0 ? 0 : 255], i * 4);
  rgba.set([200, 100, 50, 128], 0);
  const d = decodePng(encodePng(rgba, 32, 32, 8, 6));
  assert.equal(d.raster.data[0], 0.299 * 200 + 0.587 * 100 + 0.114 * 50);
  for (let i = 1; i < n; i++) assert.equal(d.raster.data[i], i % 256);
  const rgb16 = new Uint16Array(n * 3);
  for (let i = 0; i < n; i++) rgb16.fill(30000 + i, i * 3, i * 3 + 3);
  const d16 = decodePng(encodePng(rgb16, 32, 32, 16, 2));
  assert.equal(d16.bitDepth, 16);
  assert.deepEqual(Array.from(d16.raster.data), Array.from({ length: n }, (_, i) => 30000 + i));
  const ga = new Uint16Array(n * 2);
  for (let i = 0; i < n; i++) ga.set([i % 200, 3], i * 2);
  assert.deepEqual(Array.from(decodePng(encodePng(ga, 32, 32, 8, 4)).raster.data), Array.from({ length: n }, (_, i) => i % 200));
});

test('Adam7-interlaced PNGs decode like non-interlaced ones', () => {
  const px = (x: number, y: number) => (x * 7 + y * 13) % 256;
  const d = decodePng(interlacedGrayPng(45, 33, px));
  for (let y = 0; y < 33; y++) for (let x = 0; x < 45; x++) assert.equal(d.raster.data[y * 45 + x], px(x, y));
});

test('a tRNS chunk does not zero pixels, ancillary chunks are ignored', () => {
  const s = Uint16Array.from({ length: 64 * 64 }, (_, i) => i % 256);
  const raw = Buffer.alloc(65 * 64);
  for (let y = 0; y < 64; y++) for (let x = 0; x < 64; x++) raw[y * 65 + 1 + x] = s[y * 64 + x]!;
  const png = rawPng({
    width: 64, height: 64, bitDepth: 8, colorType: 0, raw,
    extra: [{ type: 'tRNS', data: Buffer.from([0, 5]) }, { type: 'tEXt', data: Buffer.from('Comment\0hello') }],
  });
  assert.deepEqual(Array.from(decodePng(png).raster.data), Array.from(s));
});

test('readPngHeader reads IHDR without touching pixel data', () => {
  const bomb = rawPng({ width: 100000, height: 100000, bitDepth: 8, colorType: 0, idat: Buffer.alloc(0) });
  assert.deepEqual(readPngHeader(bomb), { width: 100000, height: 100000, bitDepth: 8, colorType: 0, interlaced: false });
});

test('refused headers: bit depths, palette, sizes, before inflating anything', () => {
  assertBadInput(() => decodePng(rawPng({ width: 64, height: 64, bitDepth: 1, colorType: 0 })), /1-bit grayscale/, /8-bit .* or 16-bit/);
  assertBadInput(() => decodePng(rawPng({ width: 64, height: 64, bitDepth: 4, colorType: 0 })), /4-bit/);
  assertBadInput(
    () => decodePng(rawPng({ width: 64, height: 64, bitDepth: 8, colorType: 3, extra: [{ type: 'PLTE', data: Buffer.alloc(768) }] })),
    /palette/,
  );
  assertBadInput(() => decodePng(encodeGrayPng(new Uint16Array(16 * 16), 16, 16, 8)), /16x16 pixels/, /32 to 512 pixels per side/);
  assertBadInput(() => decodePng(encodeGrayPng(new Uint16Array(600 * 40), 600, 40, 8)), /600x40 pixels/);
  // The idat given here would be far too short; the refusal must come from the header alone.
  const t0 = process.hrtime.bigint();
  assertBadInput(() => decodePng(rawPng({ width: 100000, height: 100000, bitDepth: 16, colorType: 6, idat: Buffer.alloc(8) })), /100000x100000/);
  assert.ok(Number(process.hrtime.bigint() - t0) / 1e6 < 200);
});

test('corrupt containers: truncation, CRC, decompression bomb, short data, unknown critical chunk', () => {
  const good = encodeGrayPng(Uint16Array.from({ length: 64 * 64 }, (_, i) => i % 251), 64, 64, 8);
  assertBadInput(() => decodePng(good.subarray(0, 20)), /truncated/);
  assertBadInput(() => decodePng(good.subarray(0, good.length - 30)), /truncated/);
  assertBadInput(() => decodePng(good.subarray(0, good.length - 12)), /truncated .*IEND/);
  const flipped = Buffer.from(good);
  flipped[50] ^= 0x40;
  assertBadInput(() => decodePng(flipped), /checksum mismatch in chunk IDAT/);
  const bomb = rawPng({ width: 512, height: 512, bitDepth: 8, colorType: 0, idat: zlib.deflateSync(Buffer.alloc(64 << 20)) });
  assertBadInput(() => decodePng(bomb), /expands beyond/);
  const short = rawPng({ width: 64, height: 64, bitDepth: 8, colorType: 0, raw: Buffer.alloc(65 * 20) });
  assertBadInput(() => decodePng(short), /truncated \(1300 of 4160 bytes/);
  const garbage = rawPng({ width: 64, height: 64, bitDepth: 8, colorType: 0, idat: Buffer.from('not zlib at all') });
  assertBadInput(() => decodePng(garbage), /compressed image data is corrupt/);
  const badFilter = Buffer.alloc(65 * 64);
  badFilter[0] = 9; // filter types are 0..4
  assertBadInput(() => decodePng(rawPng({ width: 64, height: 64, bitDepth: 8, colorType: 0, raw: badFilter })), /could not be decoded/);
  const critical = rawPng({ width: 64, height: 64, bitDepth: 8, colorType: 0, extra: [{ type: 'ABCD', data: Buffer.alloc(4) }] });
  assertBadInput(() => decodePng(critical), /unknown critical chunk ABCD/);
});

test('resize = antialiased bilinear, equal to torch interpolate(bilinear, antialias=True)', () => {
  // Reference values printed by torch 1.13: F.interpolate(x, size=(64,64), mode='bilinear',
  // antialias=True, align_corners=False) with x[i] = (i * 7919) % 1000 on a 100x100 grid.
  const n = 100;
  const src = Float64Array.from({ length: n * n }, (_, i) => (i * 7919) % 1000);
  const down = resize({ width: n, height: n, data: src }, 64, 64);
  const got = Array.from(down.data.subarray(10 * 64, 10 * 64 + 6));
  const want = [375.067151, 255.228916, 212.124938, 624.545854, 756.751004, 753.373494];
  got.forEach((v, i) => assert.ok(Math.abs(v - want[i]!) < 1e-5, `${v} vs ${want[i]}`));
  // ... and the top-left 40x40 of it enlarged to 64x64.
  const small = new Float64Array(40 * 40);
  for (let r = 0; r < 40; r++) for (let c = 0; c < 40; c++) small[r * 40 + c] = src[r * n + c]!;
  const up = resize({ width: 40, height: 40, data: small }, 64, 64);
  const wantUp = [581.25, 545.8125, 495.1875, 444.5625, 393.9375, 343.3125];
  Array.from(up.data.subarray(7 * 64, 7 * 64 + 6)).forEach((v, i) => assert.ok(Math.abs(v - wantUp[i]!) < 1e-9));
});

test('resize keeps constants constant and passes a same-size image through unchanged', () => {
  for (const size of [32, 51, 64, 100, 512]) {
    const r = toSquarePatch({ width: size, height: size, data: new Float64Array(size * size).fill(123.5) }, 64);
    assert.ok(r.data.every((v) => Math.abs(v - 123.5) < 1e-9), `size ${size}`);
  }
  const img = { width: 64, height: 64, data: Float64Array.from({ length: 4096 }, (_, i) => Math.sin(i)) };
  assert.equal(toSquarePatch(img, 64), img);
});

test('non-square images are centre-cropped to a square, not stretched', () => {
  const w = 80;
  const h = 40;
  const data = Float64Array.from({ length: w * h }, (_, i) => i % w); // value = column
  const sq = centreCropSquare({ width: w, height: h, data });
  assert.deepEqual([sq.width, sq.height], [40, 40]);
  assert.equal(sq.data[0], 20);
  assert.equal(sq.data[39], 59);
  const tall = centreCropSquare({ width: 33, height: 40, data: Float64Array.from({ length: 33 * 40 }, (_, i) => Math.floor(i / 33)) });
  assert.equal(tall.data[0], 3); // floor((40 - 33) / 2) rows dropped at the top
});
