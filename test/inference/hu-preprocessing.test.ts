/**
 * Training sees what the service computes: the 64x64 patches of training/lidc_hu.py (the HU
 * preprocessing the shipped model was trained with) equal the service's patches of the same HU
 * sent as CT DICOM with a centre point. The fixture is made by training/preprocessing_fixture.py
 * from synthetic slices (finer and coarser spacing than 0.75 mm, a centre near the image edge).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { huSliceDicom, type HuCase } from '../../scripts/eval-dicom.ts';
import { prepareSlice } from '../../src/imaging/prepare-slice.ts';
import { CARD } from './support.ts';

interface FixtureCase {
  name: string;
  rows: number;
  columns: number;
  spacing: [number, number];
  nodule: [number, number];
  hu: number[];
  patch: number[];
}
const fixture = JSON.parse(fs.readFileSync(path.join(import.meta.dirname, '../fixtures/hu-preprocessing.json'), 'utf8')) as { size: number; cases: FixtureCase[] };

for (const c of fixture.cases) {
  test(`training's HU patch equals the service's DICOM patch: ${c.name}`, () => {
    const kase: HuCase = {
      key: `fixture-${c.name}`, source: 'fixture', patient: 'P', label: 'benign', malignancy: null, diameterMm: null,
      rows: c.rows, columns: c.columns, pixelSpacingMm: c.spacing, centre: { x: c.nodule[0], y: c.nodule[1] },
      slices: [{ file: 'centre', offset: 0, zMm: 0 }],
    };
    const dicom = huSliceDicom(kase, kase.slices[0]!, Int16Array.from(c.hu));
    const { patch } = prepareSlice({ data: dicom, offset: 0, centerX: c.nodule[0], centerY: c.nodule[1] }, { ...CARD, inputSize: fixture.size });
    assert.equal(patch.length, c.patch.length);
    let maxDiff = 0;
    let differing = 0;
    for (let i = 0; i < patch.length; i++) {
      const d = Math.abs(patch[i]! - c.patch[i]!);
      maxDiff = Math.max(maxDiff, d);
      if (d > 1e-5) differing++;
    }
    // Both round to whole HU; only a sample landing on .5 exactly may round the other way (1 HU = 1/1800).
    assert.ok(maxDiff <= 1 / 1800 + 1e-5, `max difference ${maxDiff}`);
    assert.ok(differing <= 2, `${differing} of ${patch.length} samples differ`);
  });
}
