/**
 * `npm run import -- <folder> [options]`: bulk import of nodule cases through the service layer
 * (the composition root's IngestService, as the ingestCase mutation uses it), into the database of
 * DATABASE_URL or the embedded PGlite in FCDN_DATA_DIR. See docs/import.md.
 *
 *   <folder> [--labels labels.csv] [--subset md882] [--png16 windowed|hu]   PNG patches
 *   <folder> --dicom --centres centres.csv [--context 2]                       DICOM series
 *   --pacs nodules.csv                                                          nodules in the PACS (FCDN_DICOMWEB_URL, docs/pacs.md)
 *   common: [--limit N] [--concurrency 2] [--log-level warn]
 *
 * Exit status: 0 all imported or unchanged, 1 some cases failed (listed at the end), 2 bad usage.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { loadConfig } from '../config.ts';
import { buildCore, type Core } from '../core.ts';
import { loadDicomCase, loadPngCase, readCentresCsv, readLabelsCsv, type ImportPlan, type Png16Convention } from './import-sources.ts';
import { formatSummary, runImport } from './importer.ts';
import { readPacsCsv } from './pacs-source.ts';

const USAGE = `usage: npm run import -- <folder> [--labels labels.csv] [--subset NAME] [--png16 windowed|hu]
       npm run import -- <folder> --dicom --centres centres.csv [--context 2]
       npm run import -- --pacs nodules.csv
       common options: [--limit N] [--concurrency 2] [--log-level warn]`;

function fail(message: string): never {
  console.error(`import: ${message}\n${USAGE}`);
  process.exit(2);
}

function positiveInt(name: string, value: string | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) fail(`--${name} must be an integer of at least ${min}`);
  return n;
}

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      labels: { type: 'string' },
      subset: { type: 'string' },
      png16: { type: 'string', default: 'windowed' },
      dicom: { type: 'boolean', default: false },
      centres: { type: 'string' },
      context: { type: 'string' },
      pacs: { type: 'string' },
      limit: { type: 'string' },
      concurrency: { type: 'string' },
      'log-level': { type: 'string', default: 'warn' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
} catch (err) {
  fail((err as Error).message);
}
const { values, positionals } = parsed;
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
if (values.pacs) {
  if (positionals.length !== 0 || values.dicom) fail('--pacs takes a CSV of nodules, no folder and no --dicom');
} else if (positionals.length !== 1) {
  fail('give exactly one folder');
}
const root = path.resolve(positionals[0] ?? '.');
if (!values.pacs && !fs.statSync(root, { throwIfNoEntry: false })?.isDirectory()) fail(`${root} is not a folder`);
const png16 = values.png16 as Png16Convention;
if (png16 !== 'windowed' && png16 !== 'hu') fail('--png16 must be windowed or hu');
const limit = positiveInt('limit', values.limit, Infinity);
const concurrency = positiveInt('concurrency', values.concurrency, 2);
const context = positiveInt('context', values.context, 2, 0);

let plan: ImportPlan;
let csvFile: string;
try {
  if (values.pacs) {
    csvFile = path.resolve(values.pacs);
    plan = await readPacsCsv(csvFile);
  } else if (values.dicom) {
    if (!values.centres) fail('--dicom needs --centres centres.csv');
    csvFile = path.resolve(root, values.centres);
    plan = await readCentresCsv(root, csvFile, context);
  } else {
    csvFile = path.resolve(root, values.labels ?? 'labels.csv');
    plan = await readLabelsCsv(root, csvFile, { subset: values.subset });
  }
} catch (err) {
  fail((err as Error).message);
}
const cases = plan.cases.slice(0, limit);

const config = loadConfig();
if (values.pacs && !config.dicomweb) fail('--pacs needs the PACS: set FCDN_DICOMWEB_URL (docs/pacs.md)');
// The import is not a server: the core's services only (no HTTP, no background loops).
const log = pino({ level: values['log-level'] }, pino.destination(2));
let core: Core;
try {
  core = await buildCore(config, { log });
} catch (err) {
  console.error(`import: the service could not start: ${(err as Error).message}`);
  process.exit(1);
}
const where = config.databaseUrl ? 'Postgres (DATABASE_URL)' : `embedded PGlite in ${config.dataDir}`;
console.error(`import: ${cases.length} cases${plan.problems.length ? ` and ${plan.problems.length} unusable rows` : ''} from ${path.relative(process.cwd(), csvFile) || csvFile} into ${where}, ${concurrency} at a time`);
try {
  const summary = await runImport(core.services, cases, plan.problems, {
    concurrency,
    // PACS cases are fetched by the PACS service itself (importer.ts).
    load: values.pacs ? undefined : values.dicom ? (c) => loadDicomCase(c, context) : (c) => loadPngCase(c, png16),
    progress: process.stderr,
    source: path.basename(csvFile),
  });
  console.log(formatSummary(summary));
  process.exitCode = summary.failures.length > 0 ? 1 : 0;
} finally {
  await core.close();
}
