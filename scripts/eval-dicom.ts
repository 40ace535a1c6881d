/**
 * The DICOM mode of `npm run eval` (scripts/eval.ts picks it for a set whose manifest says
 * `"format": "lidc-hu-dicom"`, made by `training/export_eval_set.py --lidc-hu`).
 *
 * The product's number on what a PACS sends: every slice of the set becomes a CT DICOM Part 10
 * instance (int16 stored as HU + 1024, RescaleSlope 1, RescaleIntercept -1024, signed pixels,
 * PixelSpacing, ImagePositionPatient along z, one study and series per case). Per source, a
 * fresh service (the real composition root, src/app.ts, on an in-memory PGlite) listens on a
 * loopback port; every case is ingested through `POST /graphql` (ingestCase, DICOM slices with
 * the nodule centre), then queried with its own DICOM slices (similarCases by images, centre
 * given, excludePatientKey = its patient, k = the whole gallery) for the Joint distance and each
 * layer alone. Gallery: the other patients' nodules of the same source. Relevant: same
 * benign/malignant class. Intervals: percentile bootstrap over query patients.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { startService } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { openDatabase } from '../src/db/database.ts';
import {
  averagePrecision,
  bootstrapInterval,
  diameterGapAt,
  mean,
  precisionAt,
  seededRandom,
  shuffled,
  tiedWithRank,
  topHitZeroOtherClass,
  type Interval,
  type RankedItem,
} from '../src/evaluation/retrieval-metrics.ts';
import { writeDicomPart10, type DicomWriteElement } from '../fixtures/dicom-writer.ts';

export interface HuCase {
  key: string;
  source: string;
  patient: string;
  label: 'benign' | 'malignant';
  malignancy: number | null;
  diameterMm: number | null;
  ratings?: Record<string, number | null>;
  rows: number;
  columns: number;
  pixelSpacingMm: [number, number];
  slices: { file: string; offset: number; zMm: number }[];
  centre: { x: number; y: number };
}

export interface HuManifest {
  format: 'lidc-hu-dicom';
  split?: string;
  cases: HuCase[];
}

export interface DicomEvalOptions {
  setDir: string;
  /** The command line that made the report, written into it. */
  command: string;
  modelPath: string;
  out: string;
  json?: string;
  rounds: number;
  seed: number;
}

const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';
const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';
const HU_OFFSET = 1024;
const K = 10;

/** A DICOM UID under the 2.25 root (a UUID as a decimal), derived from the case key so reruns send the same UIDs; the key itself is not in it. */
function uidFor(...parts: string[]): string {
  const digest = crypto.createHash('sha256').update(['fcdn-eval-dicom', ...parts].join('\0')).digest();
  return `2.25.${BigInt(`0x${digest.subarray(0, 16).toString('hex')}`).toString()}`;
}

const ds = (v: number) => {
  const s = String(Number(v.toPrecision(10)));
  return s.length <= 16 ? s : v.toFixed(Math.max(0, 14 - Math.floor(Math.log10(Math.abs(v)) + 1)));
};

/** One slice of the set as a CT DICOM Part 10 instance. */
export function huSliceDicom(c: HuCase, slice: HuCase['slices'][number], hu: Int16Array): Buffer {
  if (hu.length !== c.rows * c.columns) throw new Error(`${slice.file}: ${hu.length} pixels, expected ${c.rows}x${c.columns}`);
  const stored = Buffer.alloc(hu.length * 2);
  for (let i = 0; i < hu.length; i++) {
    const v = hu[i]! + HU_OFFSET;
    if (v < -32768 || v > 32767) throw new Error(`${slice.file}: ${hu[i]} HU does not fit HU + ${HU_OFFSET} in int16`);
    stored.writeInt16LE(v, i * 2);
  }
  const sopInstanceUid = uidFor(c.key, 'instance', String(slice.offset));
  const elements: DicomWriteElement[] = [
    { tag: 0x00080016, vr: 'UI', value: CT_IMAGE_STORAGE },
    { tag: 0x00080018, vr: 'UI', value: sopInstanceUid },
    { tag: 0x00080060, vr: 'CS', value: 'CT' },
    { tag: 0x0020000d, vr: 'UI', value: uidFor(c.key, 'study') },
    { tag: 0x0020000e, vr: 'UI', value: uidFor(c.key, 'series') },
    { tag: 0x00200013, vr: 'IS', value: String(slice.offset + 100) },
    { tag: 0x00200032, vr: 'DS', value: ['0', '0', ds(slice.zMm)].join('\\') },
    { tag: 0x00200037, vr: 'DS', value: '1\\0\\0\\0\\1\\0' },
    { tag: 0x00201041, vr: 'DS', value: ds(slice.zMm) },
    { tag: 0x00280002, vr: 'US', value: { us: [1] } },
    { tag: 0x00280004, vr: 'CS', value: 'MONOCHROME2' },
    { tag: 0x00280010, vr: 'US', value: { us: [c.rows] } },
    { tag: 0x00280011, vr: 'US', value: { us: [c.columns] } },
    { tag: 0x00280030, vr: 'DS', value: c.pixelSpacingMm.map(ds).join('\\') },
    { tag: 0x00280100, vr: 'US', value: { us: [16] } },
    { tag: 0x00280101, vr: 'US', value: { us: [16] } },
    { tag: 0x00280102, vr: 'US', value: { us: [15] } },
    { tag: 0x00280103, vr: 'US', value: { us: [1] } },
    { tag: 0x00281052, vr: 'DS', value: String(-HU_OFFSET) },
    { tag: 0x00281053, vr: 'DS', value: '1' },
    { tag: 0x00281054, vr: 'LO', value: 'HU' },
    { tag: 0x7fe00010, vr: 'OW', value: stored },
  ];
  return writeDicomPart10({ transferSyntaxUid: EXPLICIT_VR_LITTLE_ENDIAN, sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid, elements });
}

function readHu(file: string): Int16Array {
  const bytes = fs.readFileSync(file);
  const hu = new Int16Array(bytes.length / 2);
  for (let i = 0; i < hu.length; i++) hu[i] = bytes.readInt16LE(i * 2);
  return hu;
}

interface GraphQLAnswer<T> {
  data?: T;
  errors?: { message: string; extensions?: { code?: string } }[];
}

interface Hit {
  jointDistance: number;
  shallowDistance: number;
  middleDistance: number;
  deepDistance: number;
  case: { id: string };
}

const INGEST = `mutation ($input: IngestCaseInput!) {
  ingestCase(input: $input) { id slices { offset codes { shallow middle deep } } }
}`;
const SEARCH = `query ($input: SimilarCasesInput!) {
  similarCases(input: $input) { tookMs hits { jointDistance shallowDistance middleDistance deepDistance case { id } } }
}`;

const RANKINGS = {
  'Joint (DL + DM + DD)': { shallow: 1, middle: 1, deep: 1 },
  'layer 4 alone (DL)': { shallow: 1, middle: 0, deep: 0 },
  'layer 17 alone (DM)': { shallow: 0, middle: 1, deep: 0 },
  'layer 25 alone (DD)': { shallow: 0, middle: 0, deep: 1 },
} as const;

interface Row {
  name: string;
  /** true for rankings made by the service (false: the random and diameter references, made here). */
  service: boolean;
  map: Interval;
  p10: Interval;
  gap: Interval;
  /** Mean number of cases tied at the 10th hit's distance; share of queries whose top hit is at distance 0 of the other class. */
  tiedAt10?: number;
  topZeroOtherClass?: { queries: number; share: number };
  searchMs?: { serverP50: number; serverP95: number; wallP50: number; wallP95: number };
}

interface SourceResult {
  source: string;
  cases: number;
  benign: number;
  malignant: number;
  patients: number;
  slices: number;
  galleryMean: number;
  rows: Row[];
  distinct: { shallow: number; middle: number; deep: number };
  timing: { dicomBuildS: number; ingestS: number; ingestCaseP50Ms: number; ingestCaseP95Ms: number; queries: number; queriesS: number };
  model: { name: string; sha256: string; executionProvider: string };
}

const pct = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;

async function evaluateSource(source: string, cases: HuCase[], opts: DicomEvalOptions): Promise<SourceResult> {
  const patientCount = new Map<string, number>();
  for (const c of cases) patientCount.set(c.patient, (patientCount.get(c.patient) ?? 0) + 1);
  const gallerySize = (q: HuCase) => cases.length - patientCount.get(q.patient)!;
  const largest = Math.max(...cases.map(gallerySize));
  if (largest > 1000) throw new Error(`${source}: a gallery of ${largest} cases is larger than similarCases' k limit (1000); MAP over all ranks needs the whole gallery`);
  // DICOM instances, built once, sent for ingest and again for each query.
  const buildStart = performance.now();
  const images = new Map(
    cases.map((c) => [
      c.key,
      c.slices.map((s) => ({
        data: huSliceDicom(c, s, readHu(path.join(opts.setDir, s.file))).toString('base64'),
        offset: s.offset,
        centerX: c.centre.x,
        centerY: c.centre.y,
      })),
    ]),
  );
  const dicomBuildS = (performance.now() - buildStart) / 1000;

  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcdn-eval-dicom-'));
  const keys = { writer: crypto.randomBytes(16).toString('hex'), reader: crypto.randomBytes(16).toString('hex') };
  // The operator's FCDN_* settings apply (search method, threads, slice window, ...), except what
  // makes this run self-contained: its own data folder, database, keys and model.
  const env: NodeJS.ProcessEnv = {
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('FCDN_'))),
    FCDN_DATA_DIR: dataDir,
    FCDN_MODEL: opts.modelPath,
    FCDN_EXECUTION_PROVIDER: process.env.FCDN_EXECUTION_PROVIDER ?? 'cpu',
    FCDN_API_KEYS: `writer:${keys.writer},reader:${keys.reader}`,
    FCDN_URL_SECRET: crypto.randomBytes(32).toString('hex'),
    FCDN_IN_PROCESS_WORKER: 'false',
    LOG_LEVEL: 'warn',
  };
  delete env.DATABASE_URL;
  delete env.S3_ENDPOINT;
  const database = await openDatabase({});
  const service = await startService(loadConfig(env), { database, log: pino({ level: 'warn' }) });
  const server = http.createServer(service.handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`;

  const gql = async <T>(query: string, variables: Record<string, unknown>, role: keyof typeof keys): Promise<T> => {
    for (let attempt = 0; ; attempt++) {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${keys[role]}` },
        body: JSON.stringify({ query, variables }),
      });
      // Rate limiting or overload: wait as told and try again.
      if ((res.status === 429 || res.status === 503) && attempt < 20) {
        await new Promise((r) => setTimeout(r, 1000 * Number(res.headers.get('retry-after') ?? 1)));
        continue;
      }
      const body = (await res.json()) as GraphQLAnswer<T>;
      if (body.errors?.length || !body.data) throw new Error(`HTTP ${res.status}: ${JSON.stringify(body.errors ?? body).slice(0, 500)}`);
      return body.data;
    }
  };

  try {
    const pseudonym = new Map<string, string>();
    const byId = new Map<string, HuCase>();
    const centreCodes = { shallow: new Set<string>(), middle: new Set<string>(), deep: new Set<string>() };
    const ingestMs: number[] = [];
    const ingestStart = performance.now();
    for (const c of cases) {
      if (!pseudonym.has(c.patient)) pseudonym.set(c.patient, `EVAL-${source}-${pseudonym.size + 1}`);
      const t = performance.now();
      const { ingestCase } = await gql<{ ingestCase: { id: string; slices: { offset: number; codes: { shallow: string; middle: string; deep: string } | null }[] } }>(
        INGEST,
        { input: {
          externalId: c.key,
          patientKey: pseudonym.get(c.patient),
          images: images.get(c.key),
          malignancy: c.malignancy,
          malignancyClass: c.label === 'benign' ? 'BENIGN' : 'MALIGNANT',
          diameterMm: c.diameterMm,
        } },
        'writer',
      );
      ingestMs.push(performance.now() - t);
      byId.set(ingestCase.id, c);
      const centre = ingestCase.slices.find((s) => s.offset === 0)?.codes;
      if (!centre) throw new Error(`${c.key}: no codes for the centre slice`);
      centreCodes.shallow.add(centre.shallow);
      centreCodes.middle.add(centre.middle);
      centreCodes.deep.add(centre.deep);
    }
    const ingestS = (performance.now() - ingestStart) / 1000;
    const { activeModel: model } = await gql<{ activeModel: SourceResult['model'] }>('{ activeModel { name sha256 executionProvider } }', {}, 'reader');

    const groups = cases.map((c) => c.patient);
    const interval = (values: (number | null)[], salt: number) => bootstrapInterval(values, groups, { rounds: opts.rounds, seed: opts.seed + salt });
    const rows: Row[] = [];
    const queriesStart = performance.now();
    let queries = 0;
    for (const [name, weights] of Object.entries(RANKINGS)) {
      const ap: (number | null)[] = [];
      const p10: number[] = [];
      const gap: (number | null)[] = [];
      const tied: (number | null)[] = [];
      const zeroOther: boolean[] = [];
      const server: number[] = [];
      const wall: number[] = [];
      for (const q of cases) {
        const k = gallerySize(q);
        const t = performance.now();
        const { similarCases } = await gql<{ similarCases: { tookMs: number; hits: Hit[] } }>(
          SEARCH,
          { input: { images: images.get(q.key), k, weights, excludePatientKey: pseudonym.get(q.patient) } },
          'reader',
        );
        wall.push(performance.now() - t);
        server.push(similarCases.tookMs);
        queries++;
        if (similarCases.hits.length !== k) throw new Error(`${name}: ${similarCases.hits.length} hits for a gallery of ${k}`);
        const ranked = similarCases.hits.map((h) => {
          const c = byId.get(h.case.id)!;
          if (c.patient === q.patient) throw new Error('a case of the query patient came back despite excludePatientKey');
          const expected = weights.shallow * h.shallowDistance + weights.middle * h.middleDistance + weights.deep * h.deepDistance;
          if (Math.abs(expected - h.jointDistance) > 1e-9) throw new Error(`${name}: jointDistance ${h.jointDistance} is not the weighted sum ${expected}`);
          return { relevant: c.label === q.label, diameterMm: c.diameterMm, distance: h.jointDistance };
        });
        ap.push(averagePrecision(ranked));
        p10.push(precisionAt(ranked, K));
        gap.push(diameterGapAt(q.diameterMm, ranked, K));
        tied.push(tiedWithRank(ranked.map((r) => r.distance), K));
        zeroOther.push(topHitZeroOtherClass(ranked) === true);
      }
      server.sort((a, b) => a - b);
      wall.sort((a, b) => a - b);
      const zeroCount = zeroOther.filter(Boolean).length;
      rows.push({
        name,
        service: true,
        map: interval(ap, 1),
        p10: interval(p10, 2),
        gap: interval(gap, 3),
        tiedAt10: mean(tied),
        topZeroOtherClass: { queries: zeroCount, share: zeroCount / cases.length },
        searchMs: { serverP50: pct(server, 0.5), serverP95: pct(server, 0.95), wallP50: pct(wall, 0.5), wallP95: pct(wall, 0.95) },
      });
    }
    const queriesS = (performance.now() - queriesStart) / 1000;

    // References that need no network, on exactly the same queries and galleries.
    const references: [string, (q: HuCase, gallery: HuCase[], random: () => number) => HuCase[]][] = [
      ['random ranking', (_q, gallery, random) => shuffled(gallery, random)],
      ['diameter alone (\\|diameter difference\\|)', (q, gallery) =>
        [...gallery].sort((a, b) => {
          const da = q.diameterMm == null || a.diameterMm == null ? Infinity : Math.abs(a.diameterMm - q.diameterMm);
          const db = q.diameterMm == null || b.diameterMm == null ? Infinity : Math.abs(b.diameterMm - q.diameterMm);
          return da - db || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
        })],
    ];
    for (const [i, [name, rank]] of references.entries()) {
      const random = seededRandom(opts.seed + 100 + i);
      const ap: (number | null)[] = [];
      const p10: number[] = [];
      const gap: (number | null)[] = [];
      for (const q of cases) {
        const ranked: RankedItem[] = rank(q, cases.filter((c) => c.patient !== q.patient), random).map((c) => ({ relevant: c.label === q.label, diameterMm: c.diameterMm }));
        ap.push(averagePrecision(ranked));
        p10.push(precisionAt(ranked, K));
        gap.push(diameterGapAt(q.diameterMm, ranked, K));
      }
      rows.push({ name, service: false, map: interval(ap, 1), p10: interval(p10, 2), gap: interval(gap, 3) });
    }

    const ingestSorted = [...ingestMs].sort((a, b) => a - b);
    const benign = cases.filter((c) => c.label === 'benign').length;
    return {
      source,
      cases: cases.length,
      benign,
      malignant: cases.length - benign,
      patients: patientCount.size,
      slices: cases.reduce((n, c) => n + c.slices.length, 0),
      galleryMean: mean(cases.map(gallerySize)),
      rows,
      distinct: { shallow: centreCodes.shallow.size, middle: centreCodes.middle.size, deep: centreCodes.deep.size },
      timing: { dicomBuildS, ingestS, ingestCaseP50Ms: pct(ingestSorted, 0.5), ingestCaseP95Ms: pct(ingestSorted, 0.95), queries, queriesS },
      model,
    };
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await service.close();
    await database.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

const f3 = (i: Interval) => `${i.estimate.toFixed(3)} [${i.low.toFixed(3)}, ${i.high.toFixed(3)}]`;
const f2 = (i: Interval) => `${i.estimate.toFixed(2)} [${i.low.toFixed(2)}, ${i.high.toFixed(2)}]`;
const share = (n: number, of: number) => `${n} (${((100 * n) / of).toFixed(0)}%)`;

function sourceSection(r: SourceResult): string {
  const table = [
    '| ranking (64 bits) | MAP [95% CI] | P@10 [95% CI] | top-10 diameter gap, mm [95% CI] | cases tied at the 10th hit\'s distance (mean) | top hit at distance 0 and of the other class | search p50 / p95, server (ms) | search p50, HTTP round trip (ms) |',
    '|---|---|---|---|---|---|---|---|',
    ...r.rows.map((row) =>
      row.service
        ? `| ${row.name} | ${f3(row.map)} | ${f3(row.p10)} | ${f2(row.gap)} | ${row.tiedAt10!.toFixed(1)} | ${share(row.topZeroOtherClass!.queries, r.cases)} | ${row.searchMs!.serverP50.toFixed(1)} / ${row.searchMs!.serverP95.toFixed(1)} | ${row.searchMs!.wallP50.toFixed(1)} |`
        : `| ${row.name} (reference, not the service) | ${f3(row.map)} | ${f3(row.p10)} | ${f2(row.gap)} | | | | |`,
    ),
  ].join('\n');
  const t = r.timing;
  return `## ${r.source}

${r.cases} validation nodules (${r.benign} benign, ${r.malignant} malignant) of ${r.patients} patients, ${r.slices} DICOM slices;
mean gallery ${r.galleryMean.toFixed(1)} cases (this source's nodules of the other patients).

${table}

Distinct 64-bit centre-slice codes among the ${r.cases} cases: layer 4 ${share(r.distinct.shallow, r.cases)}, layer 17 ${share(r.distinct.middle, r.cases)}, layer 25 ${share(r.distinct.deep, r.cases)}.

Time: DICOM instances built in ${t.dicomBuildS.toFixed(1)} s; ingest through the API ${t.ingestS.toFixed(1)} s (per case p50 ${t.ingestCaseP50Ms.toFixed(0)} ms, p95 ${t.ingestCaseP95Ms.toFixed(0)} ms);
${t.queries} searches by DICOM images in ${t.queriesS.toFixed(1)} s.
`;
}

export async function runDicomEval(manifest: HuManifest, opts: DicomEvalOptions): Promise<void> {
  const sources = [...new Set(manifest.cases.map((c) => c.source))].sort();
  const results: SourceResult[] = [];
  const start = performance.now();
  for (const source of sources) {
    const cases = manifest.cases.filter((c) => c.source === source);
    console.error(`${source}: ${cases.length} cases ...`);
    results.push(await evaluateSource(source, cases, opts));
  }
  const totalS = (performance.now() - start) / 1000;
  const m = results[0]!.model;
  const date = new Date().toISOString().slice(0, 10);
  const report = `# Retrieval through the product's DICOM path (lidc-hu validation patients)

Made by \`${opts.command}\` on ${date}, the set from
\`/usr/bin/python3 training/export_eval_set.py --lidc-hu --data <lidc-hu> --out <set>\`
(${manifest.split ?? 'validation patients of training/lidc_hu_split.py'}).

Data: LIDC-IDRI (Armato et al., Medical Physics 38(2):915-931, 2011; The Cancer Imaging Archive, CC BY 3.0),
crops from \`../shared/data/lidc-hu\` (see its README for sources and attribution).

Model \`${m.name}\` (sha256 \`${m.sha256.slice(0, 12)}\`), execution provider ${m.executionProvider}; ${totalS.toFixed(0)} s in all.

Protocol (issue 11's held-out check): each validation nodule labelled benign or malignant, with a mask, is
sent as CT DICOM Part 10 instances: the slice of largest mask area plus one neighbour each side
for the 3D VOIs (ctslicing), one slice for the 2D crops (gdro); each slice reflect-padded to at
least 160x160 px, int16 stored as HU + 1024 (RescaleSlope 1, RescaleIntercept -1024,
PixelRepresentation 1), PixelSpacing from labels.csv, ImagePositionPatient along z, one study and
series per case; centerX/centerY = the mask centroid on the centre slice. Per source, a fresh
service (src/app.ts on an in-memory PGlite) ingests every case through \`POST /graphql\`
(\`ingestCase\`), then each case queries it with its own DICOM slices (\`similarCases\` by
\`images\`, centre given, \`excludePatientKey\` = its patient, k = the whole gallery).
Gallery: the other patients' nodules of the same source. Relevant: same benign/malignant class.
Ranking ties are broken as the service breaks them (DM, then case id).

- MAP: mean over queries of average precision over all ranks. P@10: precision of the top 10.
  Top-10 diameter gap: mean |diameter difference| between the query and its top 10.
- [95% CI]: percentile bootstrap, ${opts.rounds} rounds (seed ${opts.seed}), resampling query
  patients with replacement (a patient's nodules stay together).
- Cases tied at the 10th hit's distance: the number of cases in the whole ranking whose
  distance (the row's weighted Joint) equals the 10th hit's, the 10th hit itself included
  (1 = no tie), averaged over queries.
- Top hit at distance 0 and of the other class: queries whose first hit has distance 0 under
  the row's weights and the other benign/malignant label.
- The random and diameter rows rank the same galleries without the service (diameter: by
  |diameter difference| from labels.csv, ties by case key): context, not competitors.
- Search time: server = \`tookMs\` (decoding, inference and SQL of one search of 1 or 3 DICOM
  slices); the HTTP round trip adds GraphQL, JSON and the whole gallery's hits on loopback.

${results.map(sourceSection).join('\n')}`;
  console.log(report);
  fs.mkdirSync(path.dirname(path.resolve(opts.out)), { recursive: true });
  fs.writeFileSync(opts.out, report);
  if (opts.json) {
    fs.writeFileSync(opts.json, JSON.stringify({ command: opts.command, date, model: m, rounds: opts.rounds, seed: opts.seed, totalS, sources: results }, null, 2));
  }
}
