/**
 * `npm run bench:pacs-import -- [--nodules 200] [--no-doc]`
 *
 * The bulk import of an archive from a PACS, as an admin runs it: a real Orthanc on loopback
 * (fixtures/orthanc.ts) holding synthetic CT series (fixtures/ct-series.ts: 8 slices each, the
 * project's DICOM writer, transfer syntaxes mixed), a CSV naming the nodules by UIDs and a point
 * (5 per series), then `npm run import -- --pacs nodules.csv` as its own process into a fresh
 * database (DATABASE_URL, else PGlite in a temporary data folder). Then the same command again:
 * the resume skips every case without a fetch. Reports time and nodules/s of both runs; writes
 * docs/benchmarks/pacs-import.md.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ctSeries } from '../fixtures/ct-series.ts';
import { startOrthanc } from '../fixtures/orthanc.ts';
import { PROJECT_ROOT } from '../src/paths.ts';

const { values } = parseArgs({ options: { nodules: { type: 'string', default: '200' }, 'no-doc': { type: 'boolean', default: false } } });
const NODULES = Number(values.nodules);
if (!Number.isInteger(NODULES) || NODULES < 5) throw new Error('--nodules must be an integer >= 5');
const PER_SERIES = 5;
const SLICES = 8;
const SYNTAXES = ['1.2.840.10008.1.2.1', '1.2.840.10008.1.2.4.70', '1.2.840.10008.1.2.5', '1.2.840.10008.1.2.4.80', '1.2.840.10008.1.2.4.90'];
const log = (m: string) => console.log(`[bench:pacs-import ${new Date().toISOString().slice(11, 19)}] ${m}`);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcdn-bench-pacs-'));
const pacs = await startOrthanc();
try {
  const seriesCount = Math.ceil(NODULES / PER_SERIES);
  const rows = ['case_id,study_instance_uid,series_instance_uid,sop_instance_uid,center_x,center_y,neighbours,malignancy,diameter_mm'];
  let t = performance.now();
  let instances = 0;
  for (let s = 0; s < seriesCount; s++) {
    // Two series per patient: the derived patient keys group them (HMAC of PatientID).
    const series = ctSeries({ seed: 7000 + s, slices: SLICES, transferSyntaxes: SYNTAXES, identifying: { PatientID: `BENCH-MRN-${Math.floor(s / 2)}` }, diameterPx: 8 + (s % 9) * 2 });
    for (const slice of series.slices) await pacs.upload(slice.file);
    instances += series.slices.length;
    for (let n = 0; n < PER_SERIES && rows.length - 1 < NODULES; n++) {
      const centre = 1 + n; // slices 1..5: neighbours exist on both sides
      rows.push([`bench-${s}-${n}`, series.studyInstanceUid, series.seriesInstanceUid, series.slices[centre]!.sopInstanceUid, 40 + n * 4, 44 + n * 2, 1, 1 + ((s + n) % 5), 5 + ((s * 7 + n) % 20)].join(','));
    }
  }
  const csv = path.join(dir, 'nodules.csv');
  fs.writeFileSync(csv, `${rows.join('\n')}\n`);
  log(`Orthanc holds ${instances} instances (${seriesCount} series); ${rows.length - 1} nodules in ${csv} (${((performance.now() - t) / 1000).toFixed(1)} s to make and store)`);

  const env = {
    ...process.env,
    FCDN_DATA_DIR: path.join(dir, 'data'),
    FCDN_DICOMWEB_URL: pacs.dicomwebUrl,
    FCDN_PATIENT_KEY_SECRET: 'bench-pacs-import-patient-key-secret-0123456789',
    FCDN_EXECUTION_PROVIDER: 'cpu',
    ...(process.env.DATABASE_URL ? {} : { DATABASE_URL: '' }),
  };
  const where = process.env.DATABASE_URL ? 'Postgres (DATABASE_URL, a fresh database expected)' : 'PGlite (temporary data folder)';
  const run = async (label: string) => {
    const started = performance.now();
    const out: string[] = [];
    const code = await new Promise<number>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', path.join(PROJECT_ROOT, 'src/cli/import.ts'), '--pacs', csv, '--concurrency', '2'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout.on('data', (c: Buffer) => out.push(c.toString()));
      child.stderr.on('data', () => {}); // the progress bar
      child.on('exit', (c) => resolve(c ?? 1));
    });
    const seconds = (performance.now() - started) / 1000;
    const summary = out.join('').trim();
    log(`${label}: exit ${code}, ${seconds.toFixed(1)} s wall\n${summary}`);
    if (code !== 0) throw new Error(`${label} failed (exit ${code})`);
    // The importer's own time (after the process has started: model loaded, database migrated).
    const loop = Number(/cases in ([\d.]+) s/.exec(summary)?.[1] ?? NaN);
    return { seconds, loop, summary };
  };
  t = performance.now();
  const first = await run('import');
  const again = await run('resume (same command again)');
  const nodules = rows.length - 1;
  const table = [
    '| run | nodules | process wall time (s) | import loop (s) | nodules/s (loop) | summary |',
    '|---|---|---|---|---|---|',
    `| first import | ${nodules} | ${first.seconds.toFixed(1)} | ${first.loop.toFixed(1)} | ${(nodules / first.loop).toFixed(1)} | ${first.summary.split('\n')[0]} |`,
    `| same command again (resume) | ${nodules} | ${again.seconds.toFixed(1)} | ${again.loop.toFixed(1)} | ${(nodules / again.loop).toFixed(1)} | ${again.summary.split('\n')[0]} |`,
  ].join('\n');
  console.log(table);
  if (!values['no-doc']) {
    const doc = `# Bulk import from a PACS

\`npm run bench:pacs-import -- --nodules ${NODULES}\` (scripts/bench-pacs-import.ts), ${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'cpu'}), database: ${where}.

Orthanc ${'1.10.1'} with its DICOMweb plugin on loopback holds ${seriesCount} synthetic CT series of ${SLICES} slices (96x96, transfer syntaxes mixed: ${SYNTAXES.join(', ')}); the CSV names ${nodules} nodules by Study/Series/SOP Instance UID and a point, 1 neighbour each side (3 slices per case, fetched with QIDO-RS + WADO-RS), patient keys derived from PatientID (HMAC). \`npm run import -- --pacs nodules.csv --concurrency 2\` runs as its own process: the process wall time includes its start (tsx, model load, database open and migrations), the import loop is the importer's own summary time. The machine is shared with other work, so take the numbers as an order of magnitude.

${table}

The wall time of the first run covers, per nodule: one QIDO-RS listing, three WADO-RS retrievals, decoding on the decoding threads, encoding by the shipped model on CPU, and the ingest transaction. The second run reads the CSV, finds every case stored with the same row hash, and fetches nothing.
`;
    fs.writeFileSync(path.join(PROJECT_ROOT, 'docs/benchmarks/pacs-import.md'), doc);
    log('wrote docs/benchmarks/pacs-import.md');
  }
} finally {
  await pacs.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}
