/** Display renditions (src/imaging/display.ts): named windows over HU, 8-bit pass-through, clear refusals. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DISPLAY_WINDOWS, displayDataUrl, displayPng, parseDisplayWindow, windowToByte } from '../../src/imaging/display.ts';
import { PNG16_HU_OFFSET } from '../../src/imaging/intensity.ts';
import { decodePng, encodeGrayPng } from '../../src/imaging/png.ts';
import { BadInputError } from '../../src/errors.ts';

test('the named windows are lung [-1350, 150] and mediastinal [-160, 240] HU, mapped linearly and clamped to 0..255', () => {
  assert.deepEqual(DISPLAY_WINDOWS, { lung: { minHu: -1350, maxHu: 150 }, mediastinal: { minHu: -160, maxHu: 240 } });
  assert.equal(windowToByte(-1350, 'lung'), 0);
  assert.equal(windowToByte(150, 'lung'), 255);
  assert.equal(windowToByte(-600, 'lung'), 128); // the middle of the lung window
  assert.equal(windowToByte(-3000, 'lung'), 0);
  assert.equal(windowToByte(3000, 'lung'), 255);
  assert.equal(windowToByte(40, 'mediastinal'), 128);
  assert.equal(windowToByte(-600, 'mediastinal'), 0, 'lung tissue is black in the mediastinal window');
});

test('a 16-bit HU + 32768 slice becomes an 8-bit PNG in the window; an 8-bit slice comes back byte for byte', () => {
  const hu = Array.from({ length: 32 * 32 }, (_, i) => [-1000, -600, -100, 0, 40, 300, -2000, 1000][i % 8]!);
  const png16 = encodeGrayPng(hu.map((v) => v + PNG16_HU_OFFSET), 32, 32, 16);
  for (const window of ['lung', 'mediastinal'] as const) {
    const shown = decodePng(displayPng(png16, window));
    assert.equal(shown.bitDepth, 8);
    assert.deepEqual([shown.raster.width, shown.raster.height], [32, 32]);
    assert.deepEqual(Array.from(shown.raster.data), hu.map((v) => windowToByte(v, window)));
  }
  assert.deepEqual(decodePng(displayPng(png16)).raster.data, decodePng(displayPng(png16, 'lung')).raster.data, 'lung by default');
  const png8 = encodeGrayPng(Array.from({ length: 32 * 32 }, (_, i) => i % 256), 32, 32, 8);
  assert.equal(displayPng(png8, 'mediastinal'), png8, 'already windowed: passed through');
  assert.equal(displayDataUrl(png8), `data:image/png;base64,${png8.toString('base64')}`);
});

test('window names: case-insensitive, lung when absent, anything else refused naming the choices', () => {
  assert.equal(parseDisplayWindow(undefined), 'lung');
  assert.equal(parseDisplayWindow('MEDIASTINAL'), 'mediastinal');
  assert.throws(() => parseDisplayWindow('bone'), (e: unknown) => e instanceof BadInputError && /unknown display window "bone"; use one of lung, mediastinal/.test(e.message));
  assert.throws(() => parseDisplayWindow('constructor'), BadInputError, 'no prototype keys');
});
