/**
 * Deterministic synthetic nodule phantoms for tests and demos: a lung-like background
 * (parenchyma with smooth variation, noise and a vessel) and a roundish nodule whose size,
 * outline and texture are parameters. Everything comes from a seeded PRNG, so a seed gives
 * the same bytes on every machine. Phantoms are defined in HU first and then written as a
 * PNG (8-bit windowed or 16-bit HU + 32768) or a DICOM CT instance, so the same phantom in
 * different formats shows the same anatomy.
 */
import { writeDicomPart10, type DicomWriteElement } from './dicom-writer.ts';
import { DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN } from './dicom.ts';
import { encodeJpeg2000, encodeJpegLossless, encodeJpegLs, encodeRle, type FrameSamples } from './dicom-encoders.ts';
import { PNG16_HU_OFFSET, quantizeSamples, windowHu } from './intensity.ts';
import { encodePng } from './png.ts';
import { seededRandom } from '../domain/seeded-random.ts';

export { seededRandom };

function gaussian(rand: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

export type NoduleTexture = 'solid' | 'part-solid' | 'ground-glass';

export interface PhantomOptions {
  seed?: number;
  width?: number;
  height?: number;
  /** Nodule diameter in pixels (before lobulation). */
  diameterPx?: number;
  /** Nodule centre in pixel coordinates; default the image centre. */
  noduleX?: number;
  noduleY?: number;
  texture?: NoduleTexture;
  /** 0 = round; ~0.3 = clearly lobulated/spiculated outline. */
  lobulation?: number;
  /** Minor/major axis ratio, 1 = circular. */
  elongation?: number;
  /** Noise standard deviation in HU. */
  noiseHu?: number;
  /** Include a vessel crossing the image (default true). */
  vessel?: boolean;
}

/** The phantom in HU, row-major width * height. */
export function phantomHu(opts: PhantomOptions = {}): { width: number; height: number; hu: Float64Array } {
  const width = opts.width ?? 64;
  const height = opts.height ?? width;
  const rand = seededRandom(opts.seed ?? 1);
  const normal = gaussian(rand);
  const cx = opts.noduleX ?? (width - 1) / 2;
  const cy = opts.noduleY ?? (height - 1) / 2;
  const radius = (opts.diameterPx ?? 12) / 2;
  const lobulation = opts.lobulation ?? 0;
  const elongation = opts.elongation ?? 1;
  const texture = opts.texture ?? 'solid';
  const noise = opts.noiseHu ?? 25;

  // Random draws happen in a fixed order, independent of image content, so that changing
  // one parameter does not reshuffle the rest of the phantom.
  const lobes = 3 + Math.floor(rand() * 5);
  const lobePhase = rand() * 2 * Math.PI;
  const angle = rand() * Math.PI;
  const waves = Array.from({ length: 3 }, () => ({
    fx: (rand() - 0.5) * 0.15, fy: (rand() - 0.5) * 0.15, phase: rand() * 2 * Math.PI, amp: 15 + rand() * 25,
  }));
  const vesselAngle = rand() * Math.PI;
  const vesselOffset = (rand() - 0.5) * 0.6 * Math.min(width, height);
  const vesselWidth = 0.8 + rand() * 1.2;
  const noduleHu = texture === 'ground-glass' ? -560 : 20 + rand() * 30;
  const cos = Math.cos(angle);
  const sin = Math.sin(angle);

  const hu = new Float64Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let v = -860;
      for (const w of waves) v += w.amp * Math.sin(w.fx * x + w.fy * y + w.phase);
      if (opts.vessel !== false) {
        const d = Math.abs((x - width / 2) * Math.cos(vesselAngle) + (y - height / 2) * Math.sin(vesselAngle) - vesselOffset);
        v += 900 * Math.exp(-(d * d) / (2 * vesselWidth * vesselWidth));
      }
      const dx = x - cx;
      const dy = y - cy;
      const u = dx * cos + dy * sin;
      const t = (-dx * sin + dy * cos) / elongation;
      const r = Math.hypot(u, t);
      const theta = Math.atan2(t, u);
      const edge = radius * (1 + lobulation * Math.sin(lobes * theta + lobePhase));
      // A soft edge (partial volume) so resizing does not meet a perfect step.
      const inside = 1 / (1 + Math.exp((r - edge) / 0.6));
      let nodule = noduleHu;
      if (texture === 'part-solid') nodule = r < edge * 0.5 ? noduleHu : -480;
      v = v * (1 - inside) + nodule * inside;
      hu[y * width + x] = v + noise * normal();
    }
  }
  return { width, height, hu };
}

export interface PhantomPngOptions extends PhantomOptions {
  /** Square side when width/height are not given (default 64). */
  size?: number;
  bitDepth?: 8 | 16;
  /** Write the gray values as RGB or RGBA (all channels equal) instead of grayscale. */
  color?: 'gray' | 'rgb' | 'rgba';
}

/** 8-bit: windowed intensities round((HU window) * 255); 16-bit: round(HU) + 32768. */
export function makePhantomPng(opts: PhantomPngOptions = {}): Buffer {
  const width = opts.width ?? opts.size ?? 64;
  const height = opts.height ?? opts.size ?? width;
  const { hu } = phantomHu({ ...opts, width, height });
  const bitDepth = opts.bitDepth ?? 8;
  const samples =
    bitDepth === 8
      ? quantizeSamples(hu.map((v) => windowHu(v) * 255), 'windowed8')
      : quantizeSamples(hu.map((v) => v + PNG16_HU_OFFSET), 'hu16');
  const color = opts.color ?? 'gray';
  if (color === 'gray') return encodePng(samples, width, height, bitDepth, 0);
  const channels = color === 'rgb' ? 3 : 4;
  const maxValue = bitDepth === 8 ? 255 : 65535;
  const inter = new Uint16Array(samples.length * channels);
  for (let i = 0; i < samples.length; i++) {
    for (let c = 0; c < 3; c++) inter[i * channels + c] = samples[i]!;
    if (channels === 4) inter[i * 4 + 3] = maxValue;
  }
  return encodePng(inter, width, height, bitDepth, color === 'rgb' ? 2 : 6);
}

/**
 * Header values that identify a patient, a person or a site (DICOM PS3.15 Annex E, basic
 * application level confidentiality profile: the attributes a CT instance commonly carries).
 * Tests put markers in them and check that none is ever stored or logged.
 */
export const IDENTIFYING_TAGS = {
  StudyDate: { tag: 0x00080020, vr: 'DA' },
  SeriesDate: { tag: 0x00080021, vr: 'DA' },
  AcquisitionDate: { tag: 0x00080022, vr: 'DA' },
  ContentDate: { tag: 0x00080023, vr: 'DA' },
  StudyTime: { tag: 0x00080030, vr: 'TM' },
  AccessionNumber: { tag: 0x00080050, vr: 'SH' },
  InstitutionName: { tag: 0x00080080, vr: 'LO' },
  InstitutionAddress: { tag: 0x00080081, vr: 'ST' },
  ReferringPhysicianName: { tag: 0x00080090, vr: 'PN' },
  ReferringPhysicianAddress: { tag: 0x00080092, vr: 'ST' },
  ReferringPhysicianTelephoneNumbers: { tag: 0x00080094, vr: 'SH' },
  StationName: { tag: 0x00081010, vr: 'SH' },
  StudyDescription: { tag: 0x00081030, vr: 'LO' },
  SeriesDescription: { tag: 0x0008103e, vr: 'LO' },
  InstitutionalDepartmentName: { tag: 0x00081040, vr: 'LO' },
  PhysiciansOfRecord: { tag: 0x00081048, vr: 'PN' },
  PerformingPhysicianName: { tag: 0x00081050, vr: 'PN' },
  NameOfPhysiciansReadingStudy: { tag: 0x00081060, vr: 'PN' },
  OperatorsName: { tag: 0x00081070, vr: 'PN' },
  AdmittingDiagnosesDescription: { tag: 0x00081080, vr: 'LO' },
  PatientName: { tag: 0x00100010, vr: 'PN' },
  PatientID: { tag: 0x00100020, vr: 'LO' },
  IssuerOfPatientID: { tag: 0x00100021, vr: 'LO' },
  PatientBirthDate: { tag: 0x00100030, vr: 'DA' },
  PatientBirthTime: { tag: 0x00100032, vr: 'TM' },
  PatientSex: { tag: 0x00100040, vr: 'CS' },
  OtherPatientIDs: { tag: 0x00101000, vr: 'LO' },
  OtherPatientNames: { tag: 0x00101001, vr: 'PN' },
  PatientAge: { tag: 0x00101010, vr: 'AS' },
  PatientSize: { tag: 0x00101020, vr: 'DS' },
  PatientWeight: { tag: 0x00101030, vr: 'DS' },
  PatientAddress: { tag: 0x00101040, vr: 'LO' },
  PatientMotherBirthName: { tag: 0x00101060, vr: 'PN' },
  MilitaryRank: { tag: 0x00101080, vr: 'LO' },
  MedicalRecordLocator: { tag: 0x00101090, vr: 'LO' },
  PatientTelephoneNumbers: { tag: 0x00102154, vr: 'SH' },
  EthnicGroup: { tag: 0x00102160, vr: 'SH' },
  Occupation: { tag: 0x00102180, vr: 'SH' },
  AdditionalPatientHistory: { tag: 0x001021b0, vr: 'LT' },
  ResponsiblePerson: { tag: 0x00102297, vr: 'PN' },
  PatientComments: { tag: 0x00104000, vr: 'LT' },
  DeviceSerialNumber: { tag: 0x00181000, vr: 'LO' },
  ProtocolName: { tag: 0x00181030, vr: 'LO' },
  StudyID: { tag: 0x00200010, vr: 'SH' },
  ImageComments: { tag: 0x00204000, vr: 'LT' },
  RequestingPhysician: { tag: 0x00321032, vr: 'PN' },
  RequestedProcedureDescription: { tag: 0x00321060, vr: 'LO' },
  PerformedProcedureStepDescription: { tag: 0x00400254, vr: 'LO' },
} as const;

export type IdentifyingField = keyof typeof IDENTIFYING_TAGS;

export interface PhantomDicomOptions extends PhantomOptions {
  /** Image size (default 128 x 128); nodule at noduleX/noduleY, default the image centre. */
  rows?: number;
  columns?: number;
  /** PixelSpacing: row spacing, column spacing in mm (default 0.75, 0.75); null leaves it out. */
  pixelSpacingMm?: [number, number] | null;
  /** ImagerPixelSpacing (0018,1164), written when given. */
  imagerPixelSpacingMm?: [number, number];
  /** PixelSpacing as raw text, for bad-input tests (overrides pixelSpacingMm). */
  pixelSpacingText?: string;
  rescaleSlope?: number;
  rescaleIntercept?: number;
  /** 0 unsigned (default, with intercept -1024), 1 two's complement. */
  pixelRepresentation?: 0 | 1;
  bitsStored?: number;
  /** 'explicit' (default) or 'implicit' VR little endian. */
  vr?: 'explicit' | 'implicit';
  /** Another transfer syntax: accepted compressed ones are really encoded (dicom-encoders.ts). */
  transferSyntaxUid?: string;
  /** Split compressed pixel data into fragments of this many bytes (default one fragment). */
  fragmentSize?: number;
  modality?: string;
  studyInstanceUid?: string;
  seriesInstanceUid?: string;
  sopInstanceUid?: string;
  identifying?: Partial<Record<IdentifyingField, string>>;
  /** Header values that lie about the pixel data (for bad-input tests). */
  declaredRows?: number;
  declaredColumns?: number;
}

const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';

function derivedUid(seed: number, kind: number): string {
  // 2.25.<decimal>: the UUID-derived UID root, no registration needed (PS3.5 B.2).
  return `2.25.${1000 + kind}${String(seed >>> 0).padStart(10, '0')}${kind}`;
}

function ds(value: number): string {
  // DS is at most 16 characters.
  return String(Number(value.toPrecision(10)));
}

/** The phantom's HU as the DICOM file will carry them (after storage rounding). */
export function phantomDicomHu(opts: PhantomDicomOptions = {}): { width: number; height: number; hu: Float64Array } {
  const columns = opts.columns ?? 128;
  const rows = opts.rows ?? 128;
  const { hu } = phantomHu({ ...opts, width: columns, height: rows });
  const slope = opts.rescaleSlope ?? 1;
  const intercept = opts.rescaleIntercept ?? -1024;
  const stored = storedValues(hu, opts);
  return { width: columns, height: rows, hu: Float64Array.from(stored, (s) => s * slope + intercept) };
}

function storedValues(hu: Float64Array, opts: PhantomDicomOptions): Int32Array {
  const slope = opts.rescaleSlope ?? 1;
  const intercept = opts.rescaleIntercept ?? -1024;
  const signed = (opts.pixelRepresentation ?? 0) === 1;
  const bits = opts.bitsStored ?? 16;
  const lo = signed ? -(2 ** (bits - 1)) : 0;
  const hi = signed ? 2 ** (bits - 1) - 1 : 2 ** bits - 1;
  return Int32Array.from(hu, (v) => Math.min(hi, Math.max(lo, Math.round((v - intercept) / slope))));
}

/**
 * Pixel data of a compressed syntax: really encoded for those we accept, split into fragments
 * of fragmentSize bytes when asked (one frame may span fragments); a 1 KiB stand-in for the
 * ones we refuse (they are refused before the pixel data is read).
 */
function compressedFragments(transferSyntaxUid: string, frame: FrameSamples, fragmentSize?: number): Buffer[] {
  const encoders: Record<string, () => Buffer> = {
    '1.2.840.10008.1.2.5': () => encodeRle(frame),
    '1.2.840.10008.1.2.4.57': () => encodeJpegLossless(frame, 2),
    '1.2.840.10008.1.2.4.70': () => encodeJpegLossless(frame, 1),
    '1.2.840.10008.1.2.4.80': () => encodeJpegLs(frame),
    '1.2.840.10008.1.2.4.81': () => encodeJpegLs(frame, 2),
    '1.2.840.10008.1.2.4.90': () => encodeJpeg2000(frame),
    '1.2.840.10008.1.2.4.91': () => encodeJpeg2000(frame, true),
  };
  const encoded = encoders[transferSyntaxUid]?.() ?? Buffer.from(frame.bytes.subarray(0, 1024));
  if (!fragmentSize) return [encoded];
  const fragments: Buffer[] = [];
  for (let i = 0; i < encoded.length; i += fragmentSize) fragments.push(encoded.subarray(i, i + fragmentSize));
  return fragments;
}

/** A valid DICOM Part 10 CT instance of the phantom. */
export function makePhantomDicom(opts: PhantomDicomOptions = {}): Buffer {
  const seed = opts.seed ?? 1;
  const columns = opts.columns ?? 128;
  const rows = opts.rows ?? 128;
  const { hu } = phantomHu({ ...opts, width: columns, height: rows });
  const stored = storedValues(hu, opts);
  const pixels = Buffer.alloc(stored.length * 2);
  stored.forEach((v, i) => pixels.writeUInt16LE(v & 0xffff, i * 2));

  const transferSyntaxUid =
    opts.transferSyntaxUid ?? (opts.vr === 'implicit' ? IMPLICIT_VR_LITTLE_ENDIAN : EXPLICIT_VR_LITTLE_ENDIAN);
  const native = transferSyntaxUid === IMPLICIT_VR_LITTLE_ENDIAN || transferSyntaxUid === EXPLICIT_VR_LITTLE_ENDIAN ||
    transferSyntaxUid === DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN;
  const sopInstanceUid = opts.sopInstanceUid ?? derivedUid(seed, 3);
  const spacing = opts.pixelSpacingMm === undefined ? [0.75, 0.75] : opts.pixelSpacingMm;
  const spacingText = (mm: number[]) => mm.map(ds).join('\\');
  const pixelSpacing = opts.pixelSpacingText ?? (spacing ? spacingText(spacing) : undefined);
  const bitsStored = opts.bitsStored ?? 16;

  const elements: DicomWriteElement[] = [
    { tag: 0x00080016, vr: 'UI', value: CT_IMAGE_STORAGE },
    { tag: 0x00080018, vr: 'UI', value: sopInstanceUid },
    { tag: 0x00080060, vr: 'CS', value: opts.modality ?? 'CT' },
    { tag: 0x0020000d, vr: 'UI', value: opts.studyInstanceUid ?? derivedUid(seed, 1) },
    { tag: 0x0020000e, vr: 'UI', value: opts.seriesInstanceUid ?? derivedUid(seed, 2) },
    { tag: 0x00200013, vr: 'IS', value: '1' },
    { tag: 0x00280002, vr: 'US', value: { us: [1] } },
    { tag: 0x00280004, vr: 'CS', value: 'MONOCHROME2' },
    { tag: 0x00280010, vr: 'US', value: { us: [opts.declaredRows ?? rows] } },
    { tag: 0x00280011, vr: 'US', value: { us: [opts.declaredColumns ?? columns] } },
    { tag: 0x00280100, vr: 'US', value: { us: [16] } },
    { tag: 0x00280101, vr: 'US', value: { us: [bitsStored] } },
    { tag: 0x00280102, vr: 'US', value: { us: [bitsStored - 1] } },
    { tag: 0x00280103, vr: 'US', value: { us: [opts.pixelRepresentation ?? 0] } },
    { tag: 0x00281052, vr: 'DS', value: ds(opts.rescaleIntercept ?? -1024) },
    { tag: 0x00281053, vr: 'DS', value: ds(opts.rescaleSlope ?? 1) },
    native
      ? { tag: 0x7fe00010, vr: 'OW', value: pixels }
      : { tag: 0x7fe00010, vr: 'OB', value: { encapsulatedFragments: compressedFragments(transferSyntaxUid, {
        rows, columns, bitsAllocated: 16, bitsStored, signed: opts.pixelRepresentation === 1, bytes: pixels,
      }, opts.fragmentSize) } },
  ];
  if (pixelSpacing !== undefined) elements.push({ tag: 0x00280030, vr: 'DS', value: pixelSpacing });
  if (opts.imagerPixelSpacingMm) elements.push({ tag: 0x00181164, vr: 'DS', value: spacingText(opts.imagerPixelSpacingMm) });
  for (const [name, value] of Object.entries(opts.identifying ?? {})) {
    const def = IDENTIFYING_TAGS[name as IdentifyingField];
    if (def && value !== undefined) elements.push({ tag: def.tag, vr: def.vr, value });
  }
  return writeDicomPart10({
    transferSyntaxUid,
    sopClassUid: CT_IMAGE_STORAGE,
    sopInstanceUid,
    elements,
    implicitVr: transferSyntaxUid === IMPLICIT_VR_LITTLE_ENDIAN,
  });
}
