/**
 * The 16-bit PNG convention (issue 12): a 16-bit PNG holds HU + 32768. Every real CT patch
 * (about -1100 to +3100 HU, field-of-view padding at -3024, a little metal) is accepted; a
 * window-scaled 16-bit PNG (the windowed intensity x 65535, as the LIDC folder's files are) or
 * one mostly darker than air is refused with a message that says how to send images.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { png16WindowedToHu } from '../../src/cli/import-sources.ts';
import { implausibleHu16, PNG16_HU_OFFSET } from '../../src/imaging/intensity.ts';
import { phantomHu } from '../../fixtures/phantoms.ts';
import { encodeGrayPng } from '../../src/imaging/png.ts';
import { prepareSlice } from '../../src/imaging/prepare-slice.ts';
import { assertBadInput, CARD } from './support.ts';

const SIZE = 64;
const prep = (data: Buffer) => prepareSlice({ data, offset: 0 }, CARD);
const hu16 = (hu: ArrayLike<number>) => encodeGrayPng(Array.from(hu, (v) => Math.round(v) + PNG16_HU_OFFSET), SIZE, SIZE, 16);
const lungPatch = (seed: number) => phantomHu({ seed, width: SIZE, height: SIZE, diameterPx: 16 }).hu;
/** The windowed intensity in [0, 1] x 65535, lung window [-1350, 150]. */
const windowScaled = (hu: ArrayLike<number>, lo = -1350, hi = 150, max = 65535) =>
  encodeGrayPng(Array.from(hu, (v) => Math.round(Math.min(1, Math.max(0, (v - lo) / (hi - lo))) * max)), SIZE, SIZE, 16);

test('real CT patches in HU + 32768 are accepted: lung, -1100 HU air, +3100 HU bone, -3024 padding, some metal', () => {
  const patches: [string, Float64Array][] = [
    ['lung phantom', lungPatch(1)],
    ['all air at -1100 HU', new Float64Array(SIZE * SIZE).fill(-1100)],
    ['all bone at +3100 HU', new Float64Array(SIZE * SIZE).fill(3100)],
    ['a third -3024 padding (edge of the field of view)', lungPatch(2).map((v, i) => (i % SIZE < SIZE / 3 ? -3024 : v))],
    ['4% metal at +12000 HU', lungPatch(3).map((v, i) => (i % 25 === 0 ? 12000 : v))],
    ['the whole range -1100..+3100', Float64Array.from({ length: SIZE * SIZE }, (_, i) => -1100 + (4200 * i) / (SIZE * SIZE - 1))],
  ];
  for (const [name, hu] of patches) {
    assert.equal(implausibleHu16(Float64Array.from(hu, (v) => Math.round(v) + PNG16_HU_OFFSET)), null, name);
    assert.equal(prep(hu16(hu)).patch.length, SIZE * SIZE, name);
  }
});

test('the importer\'s window-scaled LIDC PNGs, mapped to HU, are accepted', () => {
  const mapped = png16WindowedToHu(windowScaled(lungPatch(4), -1200, 600));
  assert.equal(prep(mapped).patch.length, SIZE * SIZE);
});

test('a window-scaled 16-bit PNG is refused with BAD_USER_INPUT and how to send images', () => {
  for (const [lo, hi] of [[-1350, 150], [-1200, 600], [-160, 240]] as const) {
    assertBadInput(() => prep(windowScaled(lungPatch(5), lo, hi)), /16-bit PNG refused: its values span \d+\.\.\d+ and \d+% of them are outside HU \+ 32768 for CT \(29696\.\.36863/);
  }
  assertBadInput(() => prep(windowScaled(lungPatch(6))), /Send windowed images as 8-bit PNG \(intensities 0-255\), or HU as 16-bit PNG with each value = HU \+ 32768/);
});

test('a 16-bit PNG mostly darker than air (below -1150 HU as HU + 32768) is refused', () => {
  // Within the plausible range, but nearly all of it below -1100 HU: not a CT patch in HU + 32768.
  const dark = lungPatch(7).map((v) => -2500 + (v + 1000) / 4);
  assertBadInput(() => prep(hu16(dark)), /below 31618 \(-1150 HU, darker than air\)/);
  // Window-scaled into the lower half of the range (0..32767).
  assertBadInput(() => prep(windowScaled(lungPatch(8), -1350, 150, 32767)), /16-bit PNG refused/);
});

test('8-bit PNGs are windowed intensities and are never checked against HU', () => {
  const png8 = encodeGrayPng(new Array(SIZE * SIZE).fill(0), SIZE, SIZE, 8);
  assert.equal(prep(png8).patch.length, SIZE * SIZE);
});

test('an image the service stored itself is re-encoded as it was stored (reindex), even where an upload would now be refused', () => {
  const png = windowScaled(lungPatch(7));
  assertBadInput(() => prep(png), /16-bit PNG refused/);
  const again = prepareSlice({ data: png, offset: 0, stored: true }, CARD);
  assert.equal(again.patch.length, SIZE * SIZE);
});
