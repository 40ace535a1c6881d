import assert from 'node:assert/strict';
import { test } from 'node:test';
import dicomParser from 'dicom-parser';
import { ACCEPTED_TRANSFER_SYNTAXES, decodeDicomCt, dicomPatchHu, PATCH_MM_PER_PIXEL, REFUSED_TRANSFER_SYNTAXES, resolveCentre } from '../../src/imaging/dicom.ts';
import { BadInputError as BadInputErrorClass } from '../../src/errors.ts';
import { makePhantomDicom, phantomDicomHu } from '../../fixtures/phantoms.ts';
import { prepareSlice } from '../../src/imaging/prepare-slice.ts';
import { windowHu } from '../../src/imaging/intensity.ts';
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

test('PixelSpacing is read; only the three UIDs leave the header', () => {
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

test('at the model spacing (0.75 mm) with the grid on pixel centres, the patch is exactly a crop; air outside', () => {
  assert.equal(PATCH_MM_PER_PIXEL, 0.75);
  const opts = { seed: 11, rows: 100, columns: 140, noduleX: 40.5, noduleY: 60.5, diameterPx: 14, pixelSpacingMm: [0.75, 0.75] as [number, number] };
  const file = makePhantomDicom(opts);
  const ref = phantomDicomHu(opts);
  // The grid is symmetric about the centre: sample i sits at centre + (i - 31.5) pixels.
  const expectPatch = (cx: number, cy: number) =>
    Float32Array.from({ length: 64 * 64 }, (_, i) => {
      const r = cy - 31.5 + Math.floor(i / 64);
      const c = cx - 31.5 + (i % 64);
      return windowHu(r >= 0 && r < 100 && c >= 0 && c < 140 ? Math.round(ref.hu[r * 140 + c]!) : -1200);
    });
  const atNodule = prepareSlice({ data: file, offset: 0, centerX: 40.5, centerY: 60.5 }, CARD);
  assert.ok(maxAbsDiff(atNodule.patch, expectPatch(40.5, 60.5)) < 1e-6);
  assert.ok(atNodule.patch[32 * 64 + 32]! > 0.6, 'the nodule sits in the middle of its patch');
  // Default centre: the middle of the image, (139/2, 99/2) = (69.5, 49.5).
  assert.ok(maxAbsDiff(prepareSlice({ data: file, offset: 0 }, CARD).patch, expectPatch(69.5, 49.5)) < 1e-6);
  // Near a corner most of the window is outside: -1200 HU, 0 after windowing.
  const corner = prepareSlice({ data: file, offset: 0, centerX: 0.5, centerY: 0.5 }, CARD);
  assert.equal(corner.patch[0], 0);
  assert.ok(maxAbsDiff(corner.patch, expectPatch(0.5, 0.5)) < 1e-6);
});

/** Nodule pixels of a patch (HU above halfway between lung and soft tissue): area and centroid. */
function noduleStats(hu: Float64Array, size: number) {
  let n = 0, sx = 0, sy = 0;
  for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) if (hu[y * size + x]! > -420) { n++; sx += x; sy += y; }
  return { diameterMm: 2 * Math.sqrt(n / Math.PI) * PATCH_MM_PER_PIXEL, cx: sx / n, cy: sy / n };
}

test('the same 12 mm nodule scanned at 0.5, 0.62, 0.75, 0.98 and 1.2 mm/pixel is 12 mm in every patch', () => {
  const diameterMm = 12;
  const seen: number[] = [];
  for (const spacing of [0.5, 0.62, 0.75, 0.98, 1.2]) {
    const side = Math.round(120 / spacing); // 120 mm field of view, whatever the pixel count
    const noduleX = side * 0.3;
    const noduleY = side * 0.6;
    const file = makePhantomDicom({
      seed: 5, rows: side, columns: side, noduleX, noduleY, diameterPx: diameterMm / spacing,
      vessel: false, noiseHu: 10, pixelSpacingMm: [spacing, spacing],
    });
    const slice = decodeDicomCt(file);
    const stats = noduleStats(dicomPatchHu(slice, 64, resolveCentre(slice, noduleX, noduleY)).data, 64);
    assert.ok(Math.abs(stats.diameterMm - diameterMm) < 0.6, `${spacing} mm/px: ${stats.diameterMm.toFixed(2)} mm`);
    assert.ok(Math.hypot(stats.cx - 31.5, stats.cy - 31.5) < 0.5, `${spacing} mm/px: centred at ${stats.cx},${stats.cy}`);
    seen.push(stats.diameterMm);
  }
  // Without resampling the 0.5 mm scan would show it 1.5x larger and the 1.2 mm scan 0.625x.
  assert.ok(Math.max(...seen) - Math.min(...seen) < 0.8, seen.map((d) => d.toFixed(2)).join(' '));
});

test('anisotropic spacing: rows and columns are resampled separately', () => {
  // A 16-pixel circle at 0.5 mm between rows and 1.0 mm between columns is 16 mm wide, 8 mm high.
  const file = makePhantomDicom({ seed: 6, rows: 200, columns: 100, diameterPx: 16, vessel: false, noiseHu: 10, pixelSpacingMm: [0.5, 1.0] });
  const slice = decodeDicomCt(file);
  const patch = dicomPatchHu(slice, 64, resolveCentre(slice)).data;
  const run = (get: (i: number) => number) => Array.from({ length: 64 }, (_, i) => get(i)).filter((v) => v > -420).length;
  const acrossMm = run((i) => patch[32 * 64 + i]!) * PATCH_MM_PER_PIXEL;
  const downMm = run((i) => patch[i * 64 + 32]!) * PATCH_MM_PER_PIXEL;
  assert.ok(Math.abs(acrossMm - 16) <= 1 && Math.abs(downMm - 8) <= 1, `across ${acrossMm} mm, down ${downMm} mm`);
});

test('antialiased: shrinking a fine scan averages noise instead of picking pixels', () => {
  // 0.25 mm pixels: three source pixels per output pixel. Noise from neighbour differences
  // (the smooth background cancels out): about 60 HU when point-sampled, much less when filtered.
  const file = makePhantomDicom({ seed: 8, rows: 300, columns: 300, pixelSpacingMm: [0.25, 0.25], vessel: false, noiseHu: 60, diameterPx: 4 });
  const slice = decodeDicomCt(file);
  const patch = dicomPatchHu(slice, 64, resolveCentre(slice, 60, 60)).data;
  const diffs: number[] = [];
  for (let y = 0; y < 64; y++) for (let x = 0; x < 63; x++) diffs.push(patch[y * 64 + x + 1]! - patch[y * 64 + x]!);
  const noise = Math.sqrt(diffs.reduce((a, d) => a + d * d, 0) / diffs.length / 2);
  assert.ok(noise < 25, `noise ${noise.toFixed(1)} HU after resampling (60 HU per source pixel)`);
});

test('spacing: ImagerPixelSpacing is the fallback; none, zero or absurd spacing is refused', () => {
  const fallback = decodeDicomCt(makePhantomDicom({ pixelSpacingMm: null, imagerPixelSpacingMm: [0.6, 0.6] }));
  assert.deepEqual(fallback.pixelSpacingMm, { row: 0.6, column: 0.6 });
  const both = decodeDicomCt(makePhantomDicom({ pixelSpacingMm: [0.7, 0.7], imagerPixelSpacingMm: [0.8, 0.8] }));
  assert.deepEqual(both.pixelSpacingMm, { row: 0.7, column: 0.7 });
  assertBadInput(() => decodeDicomCt(makePhantomDicom({ pixelSpacingMm: null })), /no PixelSpacing \(0028,0030\) or ImagerPixelSpacing/, /size in mm is unknown/);
  assertBadInput(() => decodeDicomCt(makePhantomDicom({ pixelSpacingText: '0\\0' })), /PixelSpacing \(0028,0030\) is "0\\0"/);
  assertBadInput(() => decodeDicomCt(makePhantomDicom({ pixelSpacingText: '0.7' })), /not two spacings between 0.05 and 5 mm/);
  assertBadInput(() => decodeDicomCt(makePhantomDicom({ pixelSpacingText: '70\\70' })), /PixelSpacing/);
});

test('resolveCentre rejects centres outside the image', () => {
  const slice = decodeDicomCt(makePhantomDicom({ rows: 40, columns: 50 }));
  const patch = dicomPatchHu(slice, 64, resolveCentre(slice));
  assert.equal(patch.data[0], -1200);
  assert.equal(patch.data[64 * 64 - 1], -1200);
  assertBadInput(() => resolveCentre(slice, 50.6, 10), /outside the 50x40 DICOM image/);
  assertBadInput(() => resolveCentre(slice, 3, Number.NaN), /finite/);
  assert.deepEqual(resolveCentre(slice, 49.4, -0.4), { x: 49.4, y: -0.4 });
});

/** Accepted compressed syntaxes, the HU error they may introduce, and their name in messages. */
const COMPRESSED = [
  { ts: '1.2.840.10008.1.2.1.99', name: 'Deflated Explicit VR Little Endian', maxErrorHu: 0 },
  { ts: '1.2.840.10008.1.2.5', name: 'RLE Lossless', maxErrorHu: 0 },
  { ts: '1.2.840.10008.1.2.4.57', name: 'JPEG Lossless, Non-Hierarchical (Process 14)', maxErrorHu: 0 },
  { ts: '1.2.840.10008.1.2.4.70', name: 'JPEG Lossless, first-order prediction (Process 14, SV1)', maxErrorHu: 0 },
  { ts: '1.2.840.10008.1.2.4.80', name: 'JPEG-LS Lossless', maxErrorHu: 0 },
  { ts: '1.2.840.10008.1.2.4.81', name: 'JPEG-LS Near-Lossless', maxErrorHu: 2 }, // NEAR=2 in the phantom
  { ts: '1.2.840.10008.1.2.4.90', name: 'JPEG 2000 Lossless', maxErrorHu: 0 },
  { ts: '1.2.840.10008.1.2.4.91', name: 'JPEG 2000', maxErrorHu: 2 }, // irreversible wavelet
];

test('compressed DICOM: each accepted syntax, really encoded, decodes to the same HU (unsigned, signed, 12-bit)', () => {
  const variants = [
    {},
    { pixelRepresentation: 1 as const, rescaleIntercept: 0 },
    { pixelRepresentation: 1 as const, bitsStored: 12, rescaleIntercept: -1000 },
  ];
  for (const { ts, name, maxErrorHu } of COMPRESSED) {
    assert.equal(ACCEPTED_TRANSFER_SYNTAXES[ts], name);
    for (const v of variants) {
      const opts = { seed: 13, rows: 96, columns: 110, noduleX: 40, noduleY: 50, transferSyntaxUid: ts, ...v };
      const file = makePhantomDicom(opts);
      const plain = makePhantomDicom({ ...opts, transferSyntaxUid: undefined });
      assert.ok(file.length < plain.length, `${name}: ${file.length} bytes compressed vs ${plain.length}`);
      const slice = decodeDicomCt(file);
      assert.equal(slice.transferSyntaxUid, ts);
      const ref = phantomDicomHu(opts);
      let m = 0;
      for (let r = 0; r < 96; r++) for (let c = 0; c < 110; c++) m = Math.max(m, Math.abs(slice.huAt(c, r) - ref.hu[r * 110 + c]!));
      assert.ok(m <= maxErrorHu, `${name} ${JSON.stringify(v)}: max error ${m} HU`);
      if (maxErrorHu === 0) {
        // Lossless: the model sees exactly what it sees from the uncompressed file.
        const a = prepareSlice({ data: file, offset: 0, centerX: 40, centerY: 50 }, CARD);
        const b = prepareSlice({ data: plain, offset: 0, centerX: 40, centerY: 50 }, CARD);
        assert.deepEqual(a.storedPng, b.storedPng, name);
      }
    }
  }
});

test('compressed DICOM: a frame split over several fragments is joined in order', () => {
  for (const ts of ['1.2.840.10008.1.2.5', '1.2.840.10008.1.2.4.70', '1.2.840.10008.1.2.4.80', '1.2.840.10008.1.2.4.90']) {
    const opts = { seed: 21, rows: 64, columns: 64, transferSyntaxUid: ts, fragmentSize: 1000 };
    const slice = decodeDicomCt(makePhantomDicom(opts));
    const ref = phantomDicomHu(opts);
    let m = 0;
    for (let r = 0; r < 64; r++) for (let c = 0; c < 64; c++) m = Math.max(m, Math.abs(slice.huAt(c, r) - ref.hu[r * 64 + c]!));
    assert.equal(m, 0, ts);
  }
});

test('compressed DICOM: corrupt or mislabelled pixel data is refused by name, and the next file still decodes', () => {
  const withFragment = (ts: string, fragment: Buffer, rows = 64, columns = 64) => {
    // Re-wrap: take a valid file of the syntax and swap its single fragment.
    const file = makePhantomDicom({ seed: 2, rows, columns, transferSyntaxUid: ts });
    const valid = decodeDicomCtFragment(file);
    return Buffer.concat([file.subarray(0, valid.position), lengthPrefixed(fragment), file.subarray(valid.position + 4 + valid.length)]);
  };
  // Truncated RLE, random bytes as JPEG-LS / JPEG 2000 / JPEG Lossless, a JPEG 2000 of another size.
  const noise = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7919 + 13) & 0xff));
  const rle = encodeRle64();
  assertBadInput(() => decodeDicomCt(withFragment('1.2.840.10008.1.2.5', rle.subarray(0, 400))), /RLE segment/);
  assertBadInput(() => decodeDicomCt(withFragment('1.2.840.10008.1.2.4.80', noise)), /JPEG-LS/);
  assertBadInput(() => decodeDicomCt(withFragment('1.2.840.10008.1.2.4.80', Buffer.concat([Buffer.from([0xff, 0xd8]), noise]))), /JPEG-LS/);
  assertBadInput(() => decodeDicomCt(withFragment('1.2.840.10008.1.2.4.90', noise)), /JPEG 2000/);
  assertBadInput(() => decodeDicomCt(withFragment('1.2.840.10008.1.2.4.70', noise)), /JPEG Lossless/);
  const j2k32 = decodeDicomCtFragment(makePhantomDicom({ seed: 2, rows: 32, columns: 32, transferSyntaxUid: '1.2.840.10008.1.2.4.90' }));
  assertBadInput(() => decodeDicomCt(withFragment('1.2.840.10008.1.2.4.90', j2k32.bytes)), /JPEG 2000 frame is 32x32 .* header says 64x64/);
  // Streams damaged or cut after a valid header: OpenJPEG and CharLS may conceal the damage and
  // return a (wrong) frame of the right size; what they must not do is throw anything else.
  for (const ts of ['1.2.840.10008.1.2.4.90', '1.2.840.10008.1.2.4.80', '1.2.840.10008.1.2.4.70']) {
    const good = Buffer.from(decodeDicomCtFragment(makePhantomDicom({ seed: 2, rows: 64, columns: 64, transferSyntaxUid: ts })).bytes);
    const damaged = Buffer.from(good);
    for (let i = 200; i < damaged.length; i += 3) damaged[i] = 0xff;
    for (const bad of [damaged, good.subarray(0, 300)]) {
      try {
        assert.equal(decodeDicomCt(withFragment(ts, bad)).rows, 64);
      } catch (e) {
        assert.ok(e instanceof BadInputErrorClass, `${ts}: ${String(e)}`);
      }
    }
  }
  // After all that, the decoders work as before.
  for (const { ts } of COMPRESSED) assert.equal(decodeDicomCt(makePhantomDicom({ seed: 4, transferSyntaxUid: ts })).rows, 128);
  // Native syntax with encapsulated data, and a compressed label on plain data: both refused.
  assertBadInput(() => decodeDicomCt(relabel(makePhantomDicom({ seed: 2 }), '1.2.840.10008.1.2.5')), /labelled RLE Lossless but its pixel data is not encapsulated/);
});

test('refused DICOM: lossy 8/12-bit JPEG, HTJ2K, big endian and unknown syntaxes are named', () => {
  assertBadInput(() => decodeDicomCt(makePhantomDicom({ transferSyntaxUid: '1.2.840.10008.1.2.4.50' })),
    /JPEG Baseline \(lossy, 8 bits per sample: too few for CT Hounsfield units\) \(transfer syntax 1\.2\.840\.10008\.1\.2\.4\.50\)/, /send it uncompressed or losslessly compressed/, /Accepted DICOM: .*RLE Lossless, JPEG Lossless \(Process 14\), JPEG-LS, JPEG 2000/);
  assertBadInput(() => decodeDicomCt(makePhantomDicom({ transferSyntaxUid: '1.2.840.10008.1.2.4.51' })), /JPEG Extended/);
  assertBadInput(() => decodeDicomCt(makePhantomDicom({ transferSyntaxUid: '1.2.840.10008.1.2.4.201' })), /High-Throughput JPEG 2000 Lossless/);
  assertBadInput(() => decodeDicomCt(makePhantomDicom({ transferSyntaxUid: '1.2.840.10008.1.2.2' })), /Big Endian/);
  assertBadInput(() => decodeDicomCt(makePhantomDicom({ transferSyntaxUid: '1.2.3.4.5' })), /transfer syntax 1\.2\.3\.4\.5 is not supported/);
  for (const ts of Object.keys(REFUSED_TRANSFER_SYNTAXES)) assert.equal(ACCEPTED_TRANSFER_SYNTAXES[ts], undefined);
});

/** The first fragment item of a file with encapsulated pixel data: where it is and its bytes. */
function decodeDicomCtFragment(file: Buffer) {
  const ds = dicomParser.parseDicom(file);
  const f = ds.elements['x7fe00010']!.fragments![0]!;
  return { position: f.position - 8 + 4, length: f.length, bytes: file.subarray(f.position, f.position + f.length) };
}

function lengthPrefixed(fragment: Buffer): Buffer {
  const even = fragment.length % 2 ? Buffer.concat([fragment, Buffer.alloc(1)]) : fragment;
  const len = Buffer.alloc(4);
  len.writeUInt32LE(even.length);
  return Buffer.concat([len, even]);
}

function encodeRle64(): Buffer {
  const file = makePhantomDicom({ seed: 2, rows: 64, columns: 64, transferSyntaxUid: '1.2.840.10008.1.2.5' });
  return Buffer.from(decodeDicomCtFragment(file).bytes);
}

/** Same bytes, another transfer syntax in the meta header (both UIDs have the same padded length). */
function relabel(file: Buffer, ts: string): Buffer {
  const at = file.indexOf(Buffer.from('1.2.840.10008.1.2.1\0', 'latin1'));
  assert.ok(at > 0);
  const out = Buffer.from(file);
  Buffer.from(ts.padEnd(20, '\0'), 'latin1').copy(out, at);
  return out;
}

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
