import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodePng } from '../../src/imaging/png.ts';
import { makePhantomDicom, makePhantomPng } from '../../fixtures/phantoms.ts';
import { detectFormat, prepareSlice } from '../../src/imaging/prepare-slice.ts';
import { assertBadInput, CARD, chunkTypes, maxAbsDiff, rawPng } from './support.ts';

const prep = (data: Buffer, extra: { centerX?: number; centerY?: number } = {}) => prepareSlice({ data, offset: 0, ...extra }, CARD);

test('format is detected from the bytes', () => {
  assert.equal(detectFormat(makePhantomPng()), 'png');
  assert.equal(detectFormat(makePhantomDicom()), 'dicom');
  assert.equal(detectFormat(Buffer.from('hello')), undefined);
});

test('patch: 64*64 floats in [0,1]; offset and no dicom field for PNG', () => {
  const p = prepareSlice({ data: makePhantomPng({ seed: 1, size: 100 }), offset: -2 }, CARD);
  assert.equal(p.offset, -2);
  assert.ok(p.patch instanceof Float32Array);
  assert.equal(p.patch.length, 64 * 64);
  assert.ok(p.patch.every((v) => v >= 0 && v <= 1));
  assert.equal(p.dicom, undefined);
});

test('a 64x64 PNG passes through unchanged (8-bit: value/255; 16-bit: windowed HU)', () => {
  const png8 = makePhantomPng({ seed: 3, bitDepth: 8 });
  const raw8 = decodePng(png8).raster.data;
  assert.ok(maxAbsDiff(prep(png8).patch, Float32Array.from(raw8, (v) => v / 255)) === 0);
  const png16 = makePhantomPng({ seed: 3, bitDepth: 16 });
  const raw16 = decodePng(png16).raster.data;
  const want = Float32Array.from(raw16, (v) => Math.min(1, Math.max(0, (v - 32768 + 1200) / 1800)));
  assert.equal(maxAbsDiff(prep(png16).patch, want), 0);
});

test('storedPng is a clean grayscale PNG at the model size that gives back the same patch', () => {
  const inputs: Array<[string, Buffer, { centerX?: number; centerY?: number }?]> = [
    ['8-bit 64', makePhantomPng({ seed: 1 })],
    ['16-bit 64', makePhantomPng({ seed: 1, bitDepth: 16 })],
    ['8-bit 200', makePhantomPng({ seed: 2, size: 200, diameterPx: 40 })],
    ['16-bit 37x90', makePhantomPng({ seed: 3, width: 37, height: 90, bitDepth: 16 })],
    ['RGBA 8-bit 512', makePhantomPng({ seed: 4, size: 512, color: 'rgba' })],
    ['DICOM explicit', makePhantomDicom({ seed: 5 })],
    ['DICOM implicit off-centre', makePhantomDicom({ seed: 6, vr: 'implicit', noduleX: 20, noduleY: 30 }), { centerX: 20, centerY: 30 }],
  ];
  for (const [name, data, centre] of inputs) {
    const first = prep(data, centre);
    const stored = first.storedPng;
    assert.deepEqual(chunkTypes(stored), ['IHDR', 'IDAT', 'IEND'], name);
    const header = decodePng(stored);
    assert.deepEqual([header.raster.width, header.raster.height], [64, 64], name);
    const wantDepth = name.startsWith('8-bit') || name.startsWith('RGBA') ? 8 : 16;
    assert.equal(header.bitDepth, wantDepth, name);
    assert.equal(stored[25], 0, `${name}: colour type grayscale`);
    const again = prep(stored);
    assert.deepEqual(again.patch, first.patch, name);
    assert.ok(again.storedPng.equals(stored), `${name}: storing is idempotent`);
  }
});

test('8-bit and 16-bit PNGs of the same phantom give near-equal patches, at any size', () => {
  for (const size of [32, 64, 97, 256]) {
    const a = prep(makePhantomPng({ seed: 8, size, diameterPx: size / 4, bitDepth: 8 })).patch;
    const b = prep(makePhantomPng({ seed: 8, size, diameterPx: size / 4, bitDepth: 16 })).patch;
    // 8-bit quantisation before and after the resize: at most one grey level apart.
    assert.ok(maxAbsDiff(a, b) <= 1 / 255 + 1e-6, `size ${size}: ${maxAbsDiff(a, b)}`);
  }
});

test('RGB and gray PNGs of the same phantom give the same patch', () => {
  const gray = prep(makePhantomPng({ seed: 12, size: 80 })).patch;
  assert.deepEqual(prep(makePhantomPng({ seed: 12, size: 80, color: 'rgb' })).patch, gray);
  assert.deepEqual(prep(makePhantomPng({ seed: 12, size: 80, color: 'rgba' })).patch, gray);
});

test('phantoms of different sizes, shapes and textures give different patches', () => {
  const variants = [
    { seed: 1, diameterPx: 6 },
    { seed: 1, diameterPx: 20 },
    { seed: 1, diameterPx: 12, lobulation: 0.35 },
    { seed: 1, diameterPx: 12, elongation: 0.5 },
    { seed: 1, diameterPx: 12, texture: 'ground-glass' as const },
    { seed: 2, diameterPx: 12 },
  ];
  const patches = variants.map((v) => prep(makePhantomPng(v)).patch);
  for (let i = 0; i < patches.length; i++) {
    for (let j = i + 1; j < patches.length; j++) assert.ok(maxAbsDiff(patches[i]!, patches[j]!) > 0.1, `${i} vs ${j}`);
  }
  // and the same options always give the same bytes
  assert.ok(makePhantomPng(variants[2]).equals(makePhantomPng(variants[2])));
  assert.ok(makePhantomDicom({ seed: 3 }).equals(makePhantomDicom({ seed: 3 })));
});

test('bad input of every kind is a BadInputError that says what was wrong and what is accepted', () => {
  const png = makePhantomPng({ seed: 1 });
  const table: Array<[string, Buffer, RegExp[]]> = [
    ['empty', Buffer.alloc(0), [/empty/]],
    ['text', Buffer.from('{"patient": "not an image"}'), [/not an image we recognise/, /Accepted PNG/, /Accepted DICOM/]],
    ['JPEG', Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 0x10, 0x4a, 0x46]), [/JPEG image/]],
    ['base64 twice', Buffer.from(png.toString('base64')), [/base64/]],
    ['random 300 bytes', Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 73 + 11) % 256)), [/neither a PNG .* nor a DICOM/]],
    ['truncated PNG', png.subarray(0, png.length >> 1), [/PNG image refused/, /truncated/]],
    ['1-bit PNG', rawPng({ width: 64, height: 64, bitDepth: 1, colorType: 0 }), [/1-bit grayscale/]],
    ['palette PNG', rawPng({ width: 64, height: 64, bitDepth: 8, colorType: 3, extra: [{ type: 'PLTE', data: Buffer.alloc(768) }] }), [/palette/]],
    ['too small', makePhantomPng({ size: 31 }), [/31x31 pixels/]],
    ['too large', makePhantomPng({ size: 513 }), [/513x513 pixels/]],
    ['bomb header', rawPng({ width: 100000, height: 100000, bitDepth: 8, colorType: 0, idat: Buffer.alloc(4) }), [/100000x100000/]],
    ['lossy JPEG DICOM', makePhantomDicom({ transferSyntaxUid: '1.2.840.10008.1.2.4.50' }), [/JPEG Baseline/]],
    ['absurd rows', makePhantomDicom({ declaredRows: 65535 }), [/65535 rows/]],
  ];
  const crc = Buffer.from(png);
  crc[crc.length - 20] ^= 1;
  table.push(['corrupt CRC', crc, [/checksum mismatch/]]);
  for (const [name, data, patterns] of table) {
    const message = assertBadInput(() => prep(data), ...patterns);
    assert.ok(message.length < 600, `${name}: message stays readable`);
  }
});

test('centerX/centerY are refused for PNG (a PNG is already a centred patch); offsets must be integers', () => {
  assertBadInput(() => prep(makePhantomPng(), { centerX: 10 }), /DICOM input only/);
  assertBadInput(() => prepareSlice({ data: makePhantomPng(), offset: 0.5 }, CARD), /offset/);
  assertBadInput(() => prepareSlice({ data: undefined as unknown as Buffer, offset: 0 }, CARD), /missing/);
  // A Uint8Array is as good as a Buffer.
  const png = makePhantomPng();
  assert.deepEqual(prepareSlice({ data: new Uint8Array(png) as Buffer, offset: 0 }, CARD).patch, prep(png).patch);
});
