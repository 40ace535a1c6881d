/**
 * The DICOM wrapping of `npm run eval`'s lidc-hu mode, on a synthetic slice: the service reads
 * back exactly the HU it was given (below -1024 HU too), the spacing, and one study per case.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import dicomParser from 'dicom-parser';
import { huSliceDicom, type HuCase } from '../../scripts/eval-dicom.ts';
import { decodeDicomCt } from '../../src/imaging/dicom.ts';

const rows = 40;
const columns = 48;
const kase: HuCase = {
  key: 'synthetic-1', source: 'test', patient: 'P1', label: 'benign', malignancy: 2, diameterMm: 6,
  rows, columns, pixelSpacingMm: [0.703125, 0.68], centre: { x: 20, y: 21.5 },
  slices: [{ file: 'a', offset: -1, zMm: -241.25 }, { file: 'b', offset: 0, zMm: -240 }],
};
const hu = Int16Array.from({ length: rows * columns }, (_, i) => [-3024, -1079, -1024, -850, 0, 40, 3071][i % 7]! + (i % 3));

test('HU survive the wrapping exactly (stored HU + 1024, signed, slope 1, intercept -1024)', () => {
  const file = huSliceDicom(kase, kase.slices[1]!, hu);
  const slice = decodeDicomCt(file);
  assert.deepEqual([slice.rows, slice.columns], [rows, columns]);
  assert.deepEqual(slice.pixelSpacingMm, { row: 0.703125, column: 0.68 });
  for (let r = 0; r < rows; r++) for (let c = 0; c < columns; c++) assert.equal(slice.huAt(c, r), hu[r * columns + c]);
  const ds = dicomParser.parseDicom(file);
  assert.equal(ds.uint16('x00280103'), 1);
  assert.equal(ds.floatString('x00281052'), -1024);
  assert.equal(ds.floatString('x00281053'), 1);
  assert.equal(ds.string('x00080060'), 'CT');
  assert.equal(ds.floatString('x00200032', 2), -240);
  assert.equal(ds.int16('x7fe00010'), hu[0]! + 1024);
});

test('one study and series per case, one instance UID per slice, the same on every run', () => {
  const [a, b] = kase.slices.map((s) => dicomParser.parseDicom(huSliceDicom(kase, s, hu)));
  assert.equal(a!.string('x0020000d'), b!.string('x0020000d'));
  assert.equal(a!.string('x0020000e'), b!.string('x0020000e'));
  assert.notEqual(a!.string('x00080018'), b!.string('x00080018'));
  assert.match(a!.string('x0020000d')!, /^2\.25\.[1-9]\d{0,38}$/);
  assert.ok(!a!.string('x0020000d')!.includes('synthetic'));
  const other = dicomParser.parseDicom(huSliceDicom({ ...kase, key: 'synthetic-2' }, kase.slices[0]!, hu));
  assert.notEqual(other.string('x0020000d'), a!.string('x0020000d'));
  assert.deepEqual(huSliceDicom(kase, kase.slices[0]!, hu), huSliceDicom(kase, kase.slices[0]!, hu));
  assert.throws(() => huSliceDicom(kase, kase.slices[0]!, hu.subarray(1)), /pixels/);
});
