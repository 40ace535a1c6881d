/**
 * What `npm run import` reads: a folder of PNG patches with a labels CSV (the format of the LIDC
 * development folder's labels.csv), or a folder of DICOM series with a centres CSV. Each source
 * gives import cases; a case's slices are read (and hashed) only when it is imported, so a big
 * archive starts at once and a bad file fails its own case only.
 */
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import dicomParser from 'dicom-parser';
import { decodePng, encodeGrayPng, PNG16_HU_OFFSET, WINDOW_MAX_HU, WINDOW_MIN_HU } from '../imaging/index.ts';
import { orderByPosition, type SlicePosition } from '../domain/slice-order.ts';
import type { PacsNoduleInput } from '../pacs/pacs-nodule.ts';
import { MAX_SLICES } from '../services/slice-input.ts';
import { parseCsv } from './csv.ts';

/** How 16-bit PNGs of a labels CSV are to be read (8-bit ones are always windowed 0..255). */
export type Png16Convention = 'windowed' | 'hu';

export interface ImportSlice {
  file: string;
  offset: number;
  centerX?: number;
  centerY?: number;
}

/** A DICOM series folder and where in it the nodule's centre is. */
export interface ImportSeries {
  dir: string;
  /** InstanceNumber of the centre slice, or else the file name of the centre instance. */
  centreInstance?: number;
  centreFile?: string;
  centerX?: number;
  centerY?: number;
}

export interface ImportCase {
  externalId: string;
  patientKey: string;
  malignancy: number | null;
  diameterMm: number | null;
  findings: Record<string, string | number> | null;
  /** PNG source: the slice files and their offsets. */
  slices: ImportSlice[];
  /** DICOM source: slices are chosen when the series is read (loadDicomCase). */
  series?: ImportSeries;
  /** PACS source (pacs-source.ts): fetched over DICOMweb at import; patientKey '' = derived from PatientID. */
  pacs?: PacsNoduleInput;
}

/** A row or group that cannot become a case; reported in the summary, the rest goes on. */
export interface ImportProblem {
  id: string;
  reason: string;
}

export interface ImportPlan {
  cases: ImportCase[];
  problems: ImportProblem[];
}

/** Case ready for ingestCase: the image bytes and a hash of everything that goes into the case. */
export interface LoadedCase {
  images: { data: string; offset: number; centerX?: number; centerY?: number }[];
  sha256: string;
}

/** Label columns kept as the case's findings (where present and non-empty). */
const FINDING_COLUMNS = ['texture', 'texture_class', 'subtlety', 'internal_structure', 'calcification', 'sphericity', 'margin', 'lobulation', 'spiculation', 'size_class', 'eq_diam_vox', 'rating_source'];

/** A CSV cell as a number, null when empty; an error naming the column when it is not valid. */
export function optionalNumber(value: string | undefined, what: string, check: (n: number) => boolean): number | null {
  if (value === undefined || value === '') return null;
  const n = Number(value);
  if (!Number.isFinite(n) || !check(n)) throw new Error(`${what} "${value}" is not valid`);
  return n;
}

export const malignancyOf = (v: string | undefined) => optionalNumber(v, 'malignancy', (n) => Number.isInteger(n) && n >= 1 && n <= 5);
export const diameterOf = (v: string | undefined) => optionalNumber(v, 'diameter_mm', (n) => n >= 0 && n <= 500);

function findingsOf(values: Record<string, string>): Record<string, string | number> | null {
  const out: Record<string, string | number> = {};
  for (const c of FINDING_COLUMNS) {
    const v = values[c];
    if (v === undefined || v === '') continue;
    out[c] = /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v;
  }
  return Object.keys(out).length ? out : null;
}

/** A path inside the import folder (CSV paths never leave it). */
function inside(root: string, relative: string): string {
  const file = path.resolve(root, relative);
  if (file !== root && !file.startsWith(root + path.sep)) throw new Error(`path "${relative}" leaves the import folder`);
  return file;
}

export interface LabelsOptions {
  subset?: string;
}

/**
 * labels.csv: one row per image; `nodule_key` groups a nodule's slices (else each row is a case),
 * `slice_index` orders them and the middle one (index n/2 of the sorted list, as in training) is
 * offset 0; `patient_id` is the (already pseudonymous) patient key; `malignancy`, `diameter_mm`.
 * The case's externalId is the nodule_key, so a re-run finds what it imported.
 */
export async function readLabelsCsv(root: string, csvFile: string, opts: LabelsOptions = {}): Promise<ImportPlan> {
  const { header, rows } = parseCsv(await fs.readFile(csvFile, 'utf8'));
  for (const required of ['image_path', 'patient_id']) {
    if (!header.includes(required)) throw new Error(`${csvFile}: no "${required}" column (columns: ${header.join(', ')})`);
  }
  const problems: ImportProblem[] = [];
  const groups = new Map<string, typeof rows>();
  for (const row of rows) {
    const v = row.values;
    if (opts.subset && v.subset !== opts.subset) continue;
    const key = v.nodule_key || v.id;
    if (!key) {
      problems.push({ id: `line ${row.line}`, reason: 'neither nodule_key nor id is set' });
      continue;
    }
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key)!.push(row);
  }
  const cases: ImportCase[] = [];
  for (const [key, group] of groups) {
    try {
      const first = group[0]!.values;
      for (const r of group) {
        if (r.values.patient_id !== first.patient_id) throw new Error(`line ${r.line}: patient_id differs from the nodule's other slices`);
        if ((r.values.malignancy ?? '') !== (first.malignancy ?? '')) throw new Error(`line ${r.line}: malignancy differs from the nodule's other slices`);
        if (!r.values.image_path) throw new Error(`line ${r.line}: image_path is empty`);
      }
      if (!first.patient_id) throw new Error('patient_id is empty');
      const indexed = group.map((r) => {
        const raw = r.values.slice_index ?? '';
        const index = raw === '' && group.length === 1 ? 0 : Number(raw);
        if (!Number.isInteger(index)) throw new Error(`line ${r.line}: slice_index "${raw}" is not an integer`);
        return { index, file: inside(root, r.values.image_path!) };
      });
      indexed.sort((a, b) => a.index - b.index);
      if (new Set(indexed.map((s) => s.index)).size !== indexed.length) throw new Error('two rows have the same slice_index');
      const centre = indexed[Math.floor(indexed.length / 2)]!.index;
      // At most 64 slices (the contract's limit): the ones nearest the centre.
      const kept = [...indexed].sort((a, b) => Math.abs(a.index - centre) - Math.abs(b.index - centre) || a.index - b.index).slice(0, MAX_SLICES);
      cases.push({
        externalId: key,
        patientKey: first.patient_id,
        malignancy: malignancyOf(first.malignancy),
        diameterMm: diameterOf(first.diameter_mm),
        findings: findingsOf(first),
        slices: kept.sort((a, b) => a.index - b.index).map((s) => ({ file: s.file, offset: s.index - centre })),
      });
    } catch (err) {
      problems.push({ id: key, reason: (err as Error).message });
    }
  }
  return { cases, problems };
}

/**
 * centres.csv for a folder of DICOM series, one row per nodule:
 *   case_id (externalId), patient_key (pseudonymous), series_dir (folder of the series' instances,
 *   relative to the import folder), center_instance (InstanceNumber of the nodule's centre slice)
 *   or center_file (file name of the centre instance in series_dir), center_x, center_y (pixel
 *   column and row of the centre; default the image centre), malignancy (1-5), diameter_mm.
 *   case_id, patient_key, series_dir and one of center_instance / center_file are required.
 * The slices are the centre instance and `context` neighbours each side in slice order
 * (ImagePositionPatient along the slice normal, else InstanceNumber, else file name).
 */
export async function readCentresCsv(root: string, csvFile: string, context: number): Promise<ImportPlan> {
  if (context < 0 || 2 * context + 1 > MAX_SLICES) throw new Error(`--context must be 0 to ${(MAX_SLICES - 1) / 2 | 0}`);
  return readCaseRows(csvFile, ['case_id', 'patient_key', 'series_dir'], (v) => {
    if (!v.patient_key) throw new Error('patient_key is empty');
    const centreInstance = v.center_instance ? Number(v.center_instance) : undefined;
    if (centreInstance !== undefined && !Number.isInteger(centreInstance)) throw new Error(`center_instance "${v.center_instance}" is not an integer`);
    const centreFile = v.center_file || undefined;
    if (centreInstance === undefined && !centreFile) throw new Error('give center_instance or center_file');
    if (!v.series_dir) throw new Error('series_dir is empty');
    const centerX = optionalNumber(v.center_x, 'center_x', () => true) ?? undefined;
    const centerY = optionalNumber(v.center_y, 'center_y', () => true) ?? undefined;
    return {
      externalId: v.case_id!,
      patientKey: v.patient_key,
      malignancy: malignancyOf(v.malignancy),
      diameterMm: diameterOf(v.diameter_mm),
      findings: null,
      slices: [],
      series: { dir: inside(root, v.series_dir), centreInstance, centreFile, centerX, centerY },
    };
  }, (header) => (header.includes('center_instance') || header.includes('center_file') ? null : 'needs a center_instance or a center_file column'));
}

/**
 * The cases of a CSV with one row per case (centres.csv, the PACS list): the required columns
 * must be there (else the whole file is refused), and each row needs a case_id seen once;
 * `toCase` makes the case or throws the reason that row goes on the problems list.
 */
export async function readCaseRows(
  csvFile: string,
  required: readonly string[],
  toCase: (values: Record<string, string | undefined>) => ImportCase,
  checkHeader: (header: string[]) => string | null = () => null,
): Promise<ImportPlan> {
  const { header, rows } = parseCsv(await fs.readFile(csvFile, 'utf8'));
  for (const column of required) {
    if (!header.includes(column)) throw new Error(`${csvFile}: no "${column}" column (columns: ${header.join(', ')})`);
  }
  const headerProblem = checkHeader(header);
  if (headerProblem) throw new Error(`${csvFile}: ${headerProblem}`);
  const cases: ImportCase[] = [];
  const problems: ImportProblem[] = [];
  const seen = new Set<string>();
  for (const row of rows) {
    const v = row.values;
    try {
      if (!v.case_id) throw new Error('case_id is empty');
      if (seen.has(v.case_id)) throw new Error('case_id appears twice');
      seen.add(v.case_id);
      cases.push(toCase(v));
    } catch (err) {
      problems.push({ id: v.case_id || `line ${row.line}`, reason: (err as Error).message });
    }
  }
  return { cases, problems };
}

const sha = (b: Buffer | string) => crypto.createHash('sha256').update(b).digest('hex');

function caseHash(c: ImportCase, images: { bytes: Buffer; offset: number; centerX?: number; centerY?: number }[]): string {
  const labels = JSON.stringify({ p: c.patientKey, m: c.malignancy, d: c.diameterMm, f: c.findings });
  return sha(JSON.stringify([labels, ...images.map((i) => [i.offset, i.centerX ?? null, i.centerY ?? null, sha(i.bytes)])]));
}

/**
 * The LIDC folder's 16-bit PNGs hold the windowed intensity x 65535, not the service's 16-bit
 * convention (HU + 32768): map v in [0,1] back to HU = v * 1800 - 1200 (window [-1200, 600]),
 * exactly as training/export_eval_set.py does. Anything the decoder refuses goes on unchanged, so
 * that the service reports it as it would for an API client.
 */
export function png16WindowedToHu(bytes: Buffer): Buffer {
  let decoded;
  try {
    decoded = decodePng(bytes);
  } catch {
    return bytes;
  }
  if (decoded.bitDepth !== 16) return bytes;
  const { width, height, data } = decoded.raster;
  const out = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) {
    out[i] = Math.round((data[i]! / 65535) * (WINDOW_MAX_HU - WINDOW_MIN_HU) + WINDOW_MIN_HU) + PNG16_HU_OFFSET;
  }
  return encodeGrayPng(out, width, height, 16);
}

export async function loadPngCase(c: ImportCase, png16: Png16Convention): Promise<LoadedCase> {
  const images = await Promise.all(
    c.slices.map(async (s) => {
      let bytes: Buffer;
      try {
        bytes = await fs.readFile(s.file);
      } catch (err) {
        throw new Error(`cannot read ${path.basename(s.file)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      return { bytes: png16 === 'windowed' ? png16WindowedToHu(bytes) : bytes, offset: s.offset };
    }),
  );
  return { images: images.map((i) => ({ data: i.bytes.toString('base64'), offset: i.offset })), sha256: caseHash(c, images) };
}

interface SeriesInstance extends SlicePosition {
  file: string;
}

function readInstanceHeader(file: string, bytes: Buffer): SeriesInstance | null {
  let ds;
  try {
    ds = dicomParser.parseDicom(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length), { untilTag: 'x7fe00010' });
  } catch {
    return null; // not a DICOM file: a README, a DICOMDIR's siblings; skipped
  }
  const numbers = (tag: string, n: number) => {
    const v = ds.string(tag)?.split('\\').map(Number);
    return v?.length === n && v.every(Number.isFinite) ? v : null;
  };
  return {
    file,
    instanceNumber: ds.intString('x00200013') ?? null,
    imagePositionPatient: numbers('x00200032', 3) as [number, number, number] | null,
    imageOrientationPatient: numbers('x00200037', 6),
  };
}

/** The centre instance and `context` neighbours each side, in slice order. */
export async function loadDicomCase(c: ImportCase, context: number): Promise<LoadedCase> {
  const spec = c.series!;
  let names: string[];
  try {
    names = (await fs.readdir(spec.dir, { withFileTypes: true })).filter((e) => e.isFile() && !e.name.startsWith('.')).map((e) => e.name).sort();
  } catch (err) {
    throw new Error(`cannot read the series folder ${path.basename(spec.dir)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const files = new Map<string, Buffer>();
  const instances: SeriesInstance[] = [];
  for (const name of names) {
    const file = path.join(spec.dir, name);
    const bytes = await fs.readFile(file);
    const header = readInstanceHeader(file, bytes);
    if (!header) continue;
    files.set(file, bytes);
    instances.push(header);
  }
  if (instances.length === 0) throw new Error(`no DICOM instances in ${path.basename(spec.dir)}`);
  // The one slice order of every series source (src/domain/slice-order.ts); ties by file name.
  const ordered = orderByPosition(instances, (i) => path.basename(i.file));
  instances.splice(0, instances.length, ...ordered);
  const centre =
    spec.centreInstance !== undefined
      ? instances.findIndex((i) => i.instanceNumber === spec.centreInstance)
      : instances.findIndex((i) => path.basename(i.file) === spec.centreFile);
  if (centre < 0) {
    throw new Error(spec.centreInstance !== undefined ? `no instance with InstanceNumber ${spec.centreInstance} in the series` : `no DICOM file ${spec.centreFile} in the series`);
  }
  const chosen = instances.slice(Math.max(0, centre - context), centre + context + 1).map((inst) => ({
    bytes: files.get(inst.file)!,
    offset: instances.indexOf(inst) - centre,
    centerX: spec.centerX,
    centerY: spec.centerY,
  }));
  return {
    images: chosen.map((i) => ({ data: i.bytes.toString('base64'), offset: i.offset, centerX: i.centerX, centerY: i.centerY })),
    sha256: caseHash(c, chosen),
  };
}
