/**
 * `npm run eval -- --set <folder> [--model models/fcdn-v2.onnx] [--out docs/evaluation-service.md]`
 *
 * A set whose manifest says `"format": "lidc-hu-dicom"` (training/export_eval_set.py --lidc-hu)
 * runs the DICOM mode instead (scripts/eval-dicom.ts: CT DICOM slices through the GraphQL API,
 * per source, bootstrap intervals; default --out docs/evaluation-dicom.md; --rounds, --seed).
 *
 * The product's own retrieval numbers: ingests an evaluation set (made by
 * training/export_eval_set.py from the LIDC folder; never committed) into a fresh in-memory
 * PGlite through the service layer (PNG decoding, ONNX inference, the Joint-distance SQL), then
 * searches with every case (gallery: other patients' cases; relevant: same benign/malignant class)
 * and reports MAP over all ranks, P@10 and the top-10 diameter gap, for the Joint distance and for
 * each layer alone (weights 1/0/0 etc.). Ties are broken as the service breaks them (DM, case id).
 *
 * `--baseline <json of an earlier run on the same set>` adds the paired difference of the Joint
 * MAP (this model minus the baseline's, per query) with its bootstrap 95% interval over query
 * patients: whether a change between models is beyond the noise of these few cases.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { loadConfig, SHIPPED_MODEL } from '../src/config.ts';
import { buildCore } from '../src/core.ts';
import { openDatabase } from '../src/db/database.ts';
import { averagePrecision, bootstrapInterval, diameterGapAt, mean, precisionAt, type RankedItem } from '../src/evaluation/retrieval-metrics.ts';

interface EvalCase {
  key: string;
  patient: string;
  label: 'benign' | 'malignant';
  malignancy: number;
  diameterMm: number | null;
  slices: { file: string; offset: number }[];
}

const { values } = parseArgs({
  options: {
    set: { type: 'string' },
    model: { type: 'string', default: SHIPPED_MODEL },
    out: { type: 'string' },
    json: { type: 'string' },
    baseline: { type: 'string' },
    rounds: { type: 'string', default: '1000' },
    seed: { type: 'string', default: '1' },
  },
});
if (!values.set) {
  console.error('usage: npm run eval -- --set <folder from training/export_eval_set.py> [--model file.onnx] [--out file.md]');
  process.exit(2);
}
const setDir = path.resolve(values.set);
const manifest = JSON.parse(fs.readFileSync(path.join(setDir, 'manifest.json'), 'utf8')) as { splitSeed: number; valFraction: number; cases: EvalCase[] };
if ((manifest as { format?: string }).format === 'lidc-hu-dicom') {
  const { runDicomEval } = await import('./eval-dicom.ts');
  if (!/^[1-9]\d*$/.test(values.rounds!) || !/^\d+$/.test(values.seed!)) {
    console.error('--rounds must be a positive integer and --seed a non-negative integer');
    process.exit(2);
  }
  const model = path.relative(process.cwd(), path.resolve(values.model!));
  const extra = [values.out ? ` --out ${values.out}` : '', values.rounds !== '1000' ? ` --rounds ${values.rounds}` : '', values.seed !== '1' ? ` --seed ${values.seed}` : ''].join('');
  await runDicomEval(manifest as unknown as import('./eval-dicom.ts').HuManifest, {
    setDir,
    command: `npm run eval -- --set ${values.set} --model ${model}${extra}`,
    modelPath: path.resolve(values.model!),
    out: values.out ?? 'docs/evaluation-dicom.md',
    json: values.json,
    rounds: Number(values.rounds),
    seed: Number(values.seed),
  });
  process.exit(0);
}
values.out ??= 'docs/evaluation-service.md';
const storeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcdn-eval-'));
// The service's own core on an in-memory PGlite, images under a temporary folder.
const db = await openDatabase({});
const core = await buildCore(
  loadConfig({ FCDN_DATA_DIR: storeDir, FCDN_MODEL: path.resolve(values.model!), FCDN_EXECUTION_PROVIDER: 'cpu', FCDN_INFERENCE_THREADS: String(os.availableParallelism()), FCDN_DECODE_THREADS: '2', FCDN_DECODE_TIMEOUT_MS: '10000' }),
  { database: db, log: pino({ level: 'warn' }), urlSecret: 'ephemeral' },
);
const { services } = core;
const model = core.model!;

// Patient ids are replaced by pseudonyms; the service never sees the source's ids.
const pseudonym = new Map<string, string>();
const caseIdOf = new Map<string, number>();
const ingestStart = performance.now();
for (const c of manifest.cases) {
  if (!pseudonym.has(c.patient)) pseudonym.set(c.patient, `EVAL-${pseudonym.size + 1}`);
  const id = await services.ingest.ingestCase({
    externalId: c.key,
    patientKey: pseudonym.get(c.patient)!,
    images: c.slices.map((s) => ({ data: fs.readFileSync(path.join(setDir, s.file)).toString('base64'), offset: s.offset })),
    malignancy: c.malignancy,
    malignancyClass: c.label === 'benign' ? 'BENIGN' : 'MALIGNANT',
    diameterMm: c.diameterMm,
  });
  caseIdOf.set(c.key, id);
}
const ingestSeconds = (performance.now() - ingestStart) / 1000;
const byId = new Map(manifest.cases.map((c) => [caseIdOf.get(c.key)!, c]));

const RANKINGS = {
  'Joint (DL + DM + DD)': { shallow: 1, middle: 1, deep: 1 },
  'layer 4 alone (DL)': { shallow: 1, middle: 0, deep: 0 },
  'layer 17 alone (DM)': { shallow: 0, middle: 1, deep: 0 },
  'layer 25 alone (DD)': { shallow: 0, middle: 0, deep: 1 },
};
const rows: { name: string; map: number; p10: number; gap: number; p50ms: number }[] = [];
/** The Joint ranking's average precision per query case, for paired comparisons between models. */
let jointAp: (number | null)[] = [];
for (const [name, weights] of Object.entries(RANKINGS)) {
  const ap: (number | null)[] = [];
  const p10: number[] = [];
  const gap: (number | null)[] = [];
  const took: number[] = [];
  for (const q of manifest.cases) {
    const answer = await services.search.similarCases({ caseId: caseIdOf.get(q.key)!, k: 1000, weights, excludeSamePatient: true });
    took.push(answer.tookMs);
    const ranking: RankedItem[] = answer.hits.map((h) => {
      const c = byId.get(h.caseId)!;
      return { relevant: c.label === q.label, diameterMm: c.diameterMm };
    });
    ap.push(averagePrecision(ranking));
    p10.push(precisionAt(ranking, 10));
    gap.push(diameterGapAt(q.diameterMm, ranking, 10));
  }
  took.sort((a, b) => a - b);
  if (rows.length === 0) jointAp = ap;
  rows.push({ name, map: mean(ap), p10: mean(p10), gap: mean(gap), p50ms: took[Math.floor(took.length / 2)]! });
}

const distinct = await db.raw.query<{ shallow: number; middle: number; deep: number; n: number }>(
  `SELECT count(DISTINCT shallow)::int AS shallow, count(DISTINCT middle)::int AS middle, count(DISTINCT deep)::int AS deep, count(*)::int AS n
   FROM slice_codes WHERE slice_offset = 0 AND model_id = $1`,
  [model.id],
);
const benign = manifest.cases.filter((c) => c.label === 'benign').length;
const command = `npm run eval -- --set ${values.set} --model ${path.relative(process.cwd(), path.resolve(values.model!))}${values.baseline ? ` --baseline ${values.baseline}` : ''}`;
const perQuery = manifest.cases.map((c, i) => ({ key: c.key, patient: c.patient, ap: jointAp[i] ?? null }));
let comparison = '';
if (values.baseline) {
  const base = JSON.parse(fs.readFileSync(values.baseline, 'utf8')) as { model: string; perQuery?: { key: string; ap: number | null }[] };
  if (!base.perQuery) throw new Error(`${values.baseline} has no per-query figures: make it with this version of npm run eval --json`);
  const baseAp = new Map(base.perQuery.map((q) => [q.key, q.ap]));
  const paired = perQuery.filter((q) => q.ap != null && baseAp.get(q.key) != null);
  const diff = bootstrapInterval(paired.map((q) => q.ap! - baseAp.get(q.key)!), paired.map((q) => q.patient), { rounds: Number(values.rounds), seed: Number(values.seed) });
  comparison = `\nJoint MAP minus \`${base.model}\`'s on the same ${paired.length} queries (paired, bootstrap 95% interval over query patients, ${values.rounds} rounds): ${diff.estimate >= 0 ? '+' : ''}${diff.estimate.toFixed(3)} [${diff.low.toFixed(3)}, ${diff.high.toFixed(3)}].\n`;
}
const table = [
  '| ranking (service SQL, 64 bits) | MAP | P@10 | top-10 diameter gap (mm) | search p50 (ms) |',
  '|---|---|---|---|---|',
  ...rows.map((r) => `| ${r.name} | ${r.map.toFixed(3)} | ${r.p10.toFixed(3)} | ${r.gap.toFixed(2)} | ${r.p50ms.toFixed(1)} |`),
].join('\n');
const report = `# Retrieval through the service (PGlite, ONNX Runtime, Joint-distance SQL)

Made by \`${command}\` (the set from \`/usr/bin/python3 training/export_eval_set.py --data <lidc> --out <set>\`,
split seed ${manifest.splitSeed}, validation fraction ${manifest.valFraction}) on ${new Date().toISOString().slice(0, 10)}.

Model \`${model.name}\` (sha256 \`${model.sha256.slice(0, 12)}\`). ${manifest.cases.length} validation cases (${benign} benign,
${manifest.cases.length - benign} malignant) of ${pseudonym.size} patients, ${manifest.cases.reduce((n, c) => n + c.slices.length, 0)} slices,
ingested through the service in ${ingestSeconds.toFixed(1)} s. Each case queries every other patient's case (k = 1000);
relevant = same benign/malignant class; ties broken as the service does (DM, then case id).

${table}

Distinct 64-bit codes among the ${distinct[0]!.n} centre slices: layer 4 ${distinct[0]!.shallow}, layer 17 ${distinct[0]!.middle}, layer 25 ${distinct[0]!.deep}.
${comparison}`;
console.log(report);
fs.mkdirSync(path.dirname(path.resolve(values.out!)), { recursive: true });
fs.writeFileSync(values.out!, report);
if (values.json) fs.writeFileSync(values.json, JSON.stringify({ model: model.name, sha256: model.sha256, cases: manifest.cases.length, rows, distinct: distinct[0], perQuery }, null, 2));
await core.close();
await db.close();
fs.rmSync(storeDir, { recursive: true, force: true });
