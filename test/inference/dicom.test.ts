import assert from 'node:assert/strict';
import { test } from 'node:test';
import dicomParser from 'dicom-parser';
import { cropHu, decodeDicomCt, resolveCentre } from '../../src/inference/dicom.ts';
import { makePhantomDicom, phantomDicomHu } from '../../src/inference/phantoms.ts';
import { prepareSlice } from '../../src/inference/prepare-slice.ts';
import { windowHu } from '../../src/inference/intensity.ts';
import { assertBadInput, CARD, maxAbsDiff } from './support.ts';

const PHI = {
  PatientName: 'DOE^JANE^Q',
  PatientID: 'MRN-99887766',
  PatientBirthDate: '19510304',
  InstitutionName: 'St Elsewhere General Hospital',
  ReferringPhysicianName: 'HOUSE^GREGORY',
  AccessionNumber: 'ACC-5551234',
  StudyDate: '20240117',
  OperatorsName: 'TECH^TERRY',
};

test('phantom DICOM is valid Part 10 that dicom-parser reads, explicit and implicit VR', () => {
  for (const vr of ['explicit', 'implicit'] as const) {
    const file = makePhantomDicom({ seed: 4, vr, identifying: PHI });
    const ds = dicomParser.parseDicom(file);
    assert.equal(ds.string('x00020010'), vr === 'explicit' ? '1.2.840.10008.1.2.1' : '1.2.840.10008.1.2');
    assert.equal(ds.uint16('x00280010'), 128);
    assert.equal(ds.string('x00100010'), PHI.PatientName);
    assert.equal(ds.floatString('x00281052'), -1024);
  }
});

test('HU from rescale slope/intercept, signed and unsigned pixels, explicit and implicit VR', () => {
  const cases = [
    { vr: 'explicit' as const, rescaleSlope: 1, rescaleIntercept: -1024, pixelRepresentation: 0 as const },
    { vr: 'implicit' as const, rescaleSlope: 1, rescaleIntercept: -1024, pixelRepresentation: 0 as const },
    { vr: 'explicit' as const, rescaleSlope: 0.5, rescaleIntercept: -1000, pixelRepresentation: 1 as const },
    { vr: 'implicit' as const, rescaleSlope: 2, rescaleIntercept: 0, pixelRepresentation: 1 as const, bitsStored: 12 },
  ];
  for (const c of cases) {
    const opts = { seed: 9, rows: 96, columns: 110, ...c };
    const slice = decodeDicomCt(makePhantomDicom(opts));
    const ref = phantomDicomHu(opts);
    assert.deepEqual([slice.rows, slice.columns], [96, 110]);
    let m = 0;
    for (let r = 0; r < 96; r++) for (let col = 0; col < 110; col++) m = Math.max(m, Math.abs(slice.huAt(col, r) - ref.hu[r * 110 + col]!));
    assert.equal(m, 0, JSON.stringify(c));
    // A nodule really is there: soft tissue in the middle, lung around it.
    assert.ok(slice.huAt(55, 48) > -200 && slice.huAt(2, 2) < -500, JSON.stringify(c));
  }
});

test('PixelSpacing is read (for the resampling issue 5 adds); only the three UIDs leave the header', () => {
  const slice = decodeDicomCt(makePhantomDicom({ seed: 2, pixelSpacingMm: [0.62, 0.71], identifying: PHI }));
  assert.deepEqual(slice.pixelSpacingMm, { row: 0.62, column: 0.71 });
  assert.deepEqual(Object.keys(slice.identifiers).sort(), ['seriesInstanceUid', 'sopInstanceUid', 'studyInstanceUid']);
  const prepared = prepareSlice({ data: makePhantomDicom({ seed: 2, identifying: PHI }), offset: 0 }, CARD);
  assert.deepEqual(Object.keys(prepared).sort(), ['dicom', 'offset', 'patch', 'storedPng']);
  const everything = JSON.stringify(prepared.dicom) + prepared.storedPng.toString('latin1');
  for (const value of [...Object.values(PHI), 'DOE', 'JANE', 'MRN', '19510304', 'Elsewhere', 'HOUSE']) {
    assert.ok(!everything.includes(value), `${value} leaked`);
  }
  assert.match(prepared.dicom!.studyInstanceUid!, /^[0-9.]+$/);
});

test('a malformed UID is dropped rather than stored (it could carry any text)', () => {
  const file = makePhantomDicom({ seed: 2, studyInstanceUid: 'DOE^JANE 1951', seriesInstanceUid: '1.2.3' });
  const { identifiers } = decodeDicomCt(file);
  assert.equal(identifiers.studyInstanceUid, undefined);
  assert.equal(identifiers.seriesInstanceUid, '1.2.3');
});

test('crop: 64x64 pixels around centerX/centerY (default the image centre), air outside the image', () => {
  const opts = { seed: 11, rows: 100, columns: 140, noduleX: 40, noduleY: 60, diameterPx: 14 };
  const file = makePhantomDicom(opts);
  const ref = phantomDicomHu(opts);
  const expectPatch = (cx: number, cy: number) => {
    const x0 = Math.round(cx - 31.5);
    const y0 = Math.round(cy - 31.5);
    return Float32Array.from({ length: 64 * 64 }, (_, i) => {
      const r = y0 + Math.floor(i / 64);
      const c = x0 + (i % 64);
      return windowHu(r >= 0 && r < 100 && c >= 0 && c < 140 ? Math.round(ref.hu[r * 140 + c]!) : -1200);
    });
  };
  const atNodule = prepareSlice({ data: file, offset: 0, centerX: 40, centerY: 60 }, CARD);
  assert.ok(maxAbsDiff(atNodule.patch, expectPatch(40, 60)) < 1e-6);
  // The nodule sits in the middle of its patch.
  assert.ok(atNodule.patch[32 * 64 + 32]! > 0.6);
  const centred = prepareSlice({ data: file, offset: 0 }, CARD);
  assert.ok(maxAbsDiff(centred.patch, expectPatch(69.5, 49.5)) < 1e-6);
  // Near a corner most of the window is outside: padded with -1200 HU = 0 after windowing.
  const corner = prepareSlice({ data: file, offset: 0, centerX: 0, centerY: 0 }, CARD);
  assert.equal(corner.patch[0], 0);
  assert.ok(maxAbsDiff(corner.patch, expectPatch(0, 0)) < 1e-6);
});

test('cropHu pads with -1200 HU and resolveCentre rejects centres outside the image', () => {
  const slice = decodeDicomCt(makePhantomDicom({ rows: 40, columns: 50 }));
  const crop = cropHu(slice, 64, resolveCentre(slice));
  assert.equal(crop.data[0], -1200);
  assert.equal(crop.data[64 * 64 - 1], -1200);
  assertBadInput(() => resolveCentre(slice, 50.6, 10), /outside the 50x40 DICOM image/);
  assertBadInput(() => resolveCentre(slice, 3, Number.NaN), /finite/);
  assert.deepEqual(resolveCentre(slice, 49.4, -0.4), { x: 49.4, y: -0.4 });
});

test('refused DICOM: compressed and other transfer syntaxes are named', () => {
  assertBadInput(() => decodeDicomCt(makePhantomDicom({ transferSyntaxUid: '1.2.840.10008.1.2.4.90' })),
    /JPEG 2000 Lossless \(transfer syntax 1\.2\.840\.10008\.1\.2\.4\.90\)/, /uncompressed/);
  assertBadInput(() => decodeDicomCt(makePhantomDicom({ transferSyntaxUid: '1.2.840.10008.1.2.4.50' })), /JPEG Baseline/);
  assertBadInput(() => decodeDicomCt(makePhantomDicom({ transferSyntaxUid: '1.2.840.10008.1.2.5' })), /RLE Lossless/);
  assertBadInput(() => decodeDicomCt(makePhantomDicom({ transferSyntaxUid: '1.2.840.10008.1.2.1.99' })), /Deflated/);
  assertBadInput(() => decodeDicomCt(makePhantomDicom({ transferSyntaxUid: '1.2.840.10008.1.2.2' })), /Big Endian/);
  assertBadInput(() => decodeDicomCt(makePhantomDicom({ transferSyntaxUid: '1.2.3.4.5' })), /transfer syntax 1\.2\.3\.4\.5 is not supported/);
});

test('refused DICOM: absurd or inconsistent sizes, before allocating', () => {
  assertBadInput(() => decodeDicomCt(makePhantomDicom({ declaredRows: 60000, declaredColumns: 60000 })), /60000 columns x 60000 rows/, /32 to 4096/);
  assertBadInput(() => decodeDicomCt(makePhantomDicom({ declaredRows: 5000 })), /5000 rows/);
  assertBadInput(() => decodeDicomCt(makePhantomDicom({ rows: 16, columns: 16 })), /16 columns x 16 rows/);
  assertBadInput(() => decodeDicomCt(makePhantomDicom({ declaredRows: 256 })), /pixel data holds 32768 bytes, but 128x256 pixels of 16 bits need 65536/);
});

test('refused DICOM: truncated, not CT, no preamble', () => {
  const file = makePhantomDicom({ seed: 1 });
  assertBadInput(() => prepareSlice({ data: file.subarray(0, 700), offset: 0 }, CARD), /DICOM file refused/);
  assertBadInput(() => prepareSlice({ data: file.subarray(0, file.length - 100), offset: 0 }, CARD), /corrupt or truncated/);
  assertBadInput(() => prepareSlice({ data: file.subarray(0, 140), offset: 0 }, CARD), /DICOM file refused/);
  assertBadInput(() => decodeDicomCt(makePhantomDicom({ modality: 'MR' })), /MR image, not CT/);
  assertBadInput(() => prepareSlice({ data: file.subarray(132 + 0), offset: 0 }, CARD), /raw DICOM data set without the Part 10 preamble/);
});
