/**
 * Bulk import (`npm run import`), run as the real CLI process on folders of phantom images the
 * test writes: a first run imports every good case, a second imports nothing new, a changed label
 * re-imports just that case, and bad rows are listed in the summary without stopping the rest.
 * The same for nodules named by UIDs in a real PACS (Orthanc on loopback, `--pacs`).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { png16WindowedToHu } from '../../src/cli/import-sources.ts';
import { openDatabase } from '../../src/db/database.ts';
import { decodePng, encodeGrayPng, PNG16_HU_OFFSET } from '../../src/imaging/index.ts';
import { makePhantomDicom, makePhantomPng } from '../../fixtures/phantoms.ts';
import { phantomHu } from '../../fixtures/phantoms.ts';
import { createTestDatabase, databaseLabel, usingPostgres, type TestDatabase } from '../../fixtures/test-database.ts';
import { ctSeries, type CtSeries } from '../../fixtures/ct-series.ts';
import { startOrthanc, type Orthanc } from '../../fixtures/orthanc.ts';
import { FIXTURE_MODEL } from '../../fixtures/test-service.ts';

const run = promisify(execFile);

interface Target {
  env: Record<string, string>;
  /** Runs fn on the target database while no import process holds it (PGlite allows one). */
  query<T>(sql: string): Promise<T[]>;
  close(): Promise<void>;
}

/** Postgres: a fresh database from the factory; PGlite: a data folder the CLI opens. */
async function importTarget(): Promise<Target> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcdn-import-data-'));
  let pg: TestDatabase | undefined;
  if (usingPostgres) pg = await createTestDatabase();
  return {
    env: { FCDN_DATA_DIR: dataDir, ...(pg ? { DATABASE_URL: pg.url! } : {}) },
    async query<T>(sql: string) {
      if (pg) return pg.raw.query<T>(sql);
      const db = await openDatabase({ pgliteDir: path.join(dataDir, 'pglite') });
      try {
        return await db.raw.query<T>(sql);
      } finally {
        await db.close();
      }
    },
    async close() {
      await pg?.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

async function importCli(target: Target, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: Record<string, string | undefined> = {
    ...process.env,
    FCDN_MODEL: FIXTURE_MODEL,
    FCDN_EXECUTION_PROVIDER: 'cpu',
    FCDN_API_KEYS: 'admin:import-test-key',
    FCDN_URL_SECRET: 'import-test-url-secret-0123456789abcdef',
    DATABASE_URL: undefined,
    ...target.env,
  };
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'src/cli/import.ts', ...args], { env: env as NodeJS.ProcessEnv, maxBuffer: 16 << 20 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const write = (dir: string, file: string, bytes: Buffer | string) => {
  fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
  fs.writeFileSync(path.join(dir, file), bytes);
};

const HEADER = 'id,subset,image_path,patient_id,nodule_key,slice_index,malignancy,malignancy_binary,texture_class,diameter_mm';

/** A windowed 16-bit PNG as the LIDC folder's daco134 subset has them: intensity in [0,1] x 65535. */
function windowed16Png(seed: number): Buffer {
  const { hu, width, height } = phantomHu({ seed, width: 51, height: 51, diameterPx: 10 });
  return encodeGrayPng(hu.map((v) => Math.round(Math.min(1, Math.max(0, (v + 1200) / 1800)) * 65535)), width, height, 16);
}

function labelsFolder(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcdn-import-png-'));
  const rows = [HEADER];
  // Nodule A: slices 10-12 (centre 11); nodule B: slices 4-5 (centre: the upper middle, 5).
  for (const [key, patient, indices, malignancy, diameter] of [
    ['set/A', 'exam:0001', [12, 10, 11], 2, '6.5'],
    ['set/B', 'exam:0002', [4, 5], 5, '21.0'],
  ] as const) {
    for (const i of indices) {
      const file = `png/${key.replace('/', '_')}__s${i}.png`;
      write(dir, file, makePhantomPng({ seed: i + patient.length, size: 64, diameterPx: 8 + i / 2 }));
      rows.push(`${key}/${i},set,${file},${patient},${key},${i},${malignancy},x,solid,${diameter}`);
    }
  }
  // Nodule C: one 16-bit windowed slice with lung context, malignancy 3, no diameter (as daco134).
  write(dir, 'axial/C.png', windowed16Png(3));
  rows.push('ctx/C,ctx,axial/C.png,daco:7,ctx/C,27,3,indeterminate,part_solid,');
  // Bad rows: a corrupt image, an impossible rating, a missing file; none stops the others.
  write(dir, 'png/corrupt.png', Buffer.from('not a png at all'));
  rows.push('set/corrupt/0,set,png/corrupt.png,exam:0003,set/corrupt,0,2,benign,,4');
  rows.push('set/rating/0,set,png/set_A__s10.png,exam:0004,set/rating,0,7,x,,4');
  rows.push('set/missing/0,set,png/nowhere.png,exam:0005,set/missing,0,4,malignant,,9');
  write(dir, 'labels.csv', rows.join('\n') + '\n');
  return dir;
}

test('a 16-bit windowed PNG is carried over in the service convention HU + 32768', () => {
  const converted = decodePng(png16WindowedToHu(windowed16Png(3)));
  const original = decodePng(windowed16Png(3));
  assert.equal(converted.bitDepth, 16);
  for (let i = 0; i < original.raster.data.length; i += 97) {
    const hu = (original.raster.data[i]! / 65535) * 1800 - 1200;
    assert.ok(Math.abs(converted.raster.data[i]! - PNG16_HU_OFFSET - hu) <= 0.5, `sample ${i}`);
  }
});

describe(`npm run import: PNG patches with a labels CSV (${databaseLabel})`, () => {
  let dir: string;
  let target: Target;
  before(async () => {
    dir = labelsFolder();
    target = await importTarget();
  });
  after(async () => {
    await target?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the first run imports every good case and lists the bad rows with their reasons', async () => {
    const first = await importCli(target, [dir, '--concurrency', '2']);
    assert.equal(first.code, 1, 'failures give exit status 1');
    assert.match(first.stdout, /6 cases in [\d.]+ s: imported 3, updated 0, unchanged 0 \(already stored\), failed 3/);
    assert.match(first.stdout, /set\/corrupt: images\[0\] \(offset 0\): .*(PNG|DICOM)/, 'the service\'s own validation message');
    assert.match(first.stdout, /set\/rating: malignancy "7" is not valid/);
    assert.match(first.stdout, /set\/missing: cannot read nowhere\.png: ENOENT/);
    assert.match(first.stderr, /import \[#{30}\] 6\/6 100%/, 'progress bar (plain lines, no TTY)');

    const cases = await target.query<{ external_id: string; patient_key: string; malignancy: number; malignancy_class: string; diameter_mm: number | null; offsets: number[]; findings: any }>(
      `SELECT c.external_id, p.patient_key, c.malignancy, c.malignancy_class, c.diameter_mm, c.findings,
              array_agg(s.slice_offset ORDER BY s.slice_offset) AS offsets
       FROM nodule_cases c JOIN patients p ON p.id = c.patient_id JOIN slices s ON s.case_id = c.id
       GROUP BY c.id, p.patient_key ORDER BY c.external_id`,
    );
    assert.deepEqual(
      cases.map((c) => [c.external_id, c.patient_key, c.malignancy, c.malignancy_class, c.diameter_mm, c.offsets]),
      [
        ['ctx/C', 'daco:7', 3, 'INDETERMINATE', null, [0]],
        ['set/A', 'exam:0001', 2, 'BENIGN', 6.5, [-1, 0, 1]],
        ['set/B', 'exam:0002', 5, 'MALIGNANT', 21, [-1, 0]],
      ],
    );
    assert.equal(cases[0]!.findings.texture_class, 'part_solid');
    assert.match(cases[0]!.findings.import.sha256, /^[0-9a-f]{64}$/);
    const [codes] = await target.query<{ n: number }>('SELECT count(*)::int AS n FROM slice_codes');
    assert.equal(codes!.n, 6, 'every slice was encoded');
  });

  test('the second run imports nothing new and says so', async () => {
    const second = await importCli(target, [dir]);
    assert.match(second.stdout, /imported 0, updated 0, unchanged 3 \(already stored\), failed 3/);
    assert.match(second.stdout, /nothing new to import/);
    const [n] = await target.query<{ n: number }>('SELECT count(*)::int AS n FROM nodule_cases');
    assert.equal(n!.n, 3);
  });

  test('a changed label re-imports that case only; --subset and --limit choose what is read', async () => {
    const csv = path.join(dir, 'labels.csv');
    fs.writeFileSync(csv, fs.readFileSync(csv, 'utf8').replaceAll(',5,x,solid,21.0', ',5,x,solid,22.5'));
    const third = await importCli(target, [dir, '--subset', 'set', '--limit', '2']);
    // --limit counts cases (A and B of subset "set"); rows unusable before any image is read are still listed.
    assert.match(third.stdout, /3 cases in [\d.]+ s: imported 0, updated 1, unchanged 1 \(already stored\), failed 1\n/);
    const rows = await target.query<{ diameter_mm: number }>(`SELECT diameter_mm FROM nodule_cases WHERE external_id = 'set/B'`);
    assert.deepEqual(rows, [{ diameter_mm: 22.5 }]);
  });
});

describe(`npm run import --dicom: DICOM series with a centres CSV (${databaseLabel})`, () => {
  let dir: string;
  let target: Target;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcdn-import-dicom-'));
    for (let i = 0; i < 5; i++) write(dir, `series1/im${i}.dcm`, makePhantomDicom({ seed: 40 + i, diameterPx: 10 + i, seriesInstanceUid: '1.2.3.4', studyInstanceUid: '1.2.3' }));
    write(dir, 'series1/README.txt', 'not DICOM: skipped');
    write(
      dir,
      'centres.csv',
      ['case_id,patient_key,series_dir,center_file,center_x,center_y,malignancy,diameter_mm', 'dcm-1,PSEUDO-D1,series1,im2.dcm,64,64,4,12', 'dcm-2,PSEUDO-D2,series1,im9.dcm,,,2,'].join('\n'),
    );
    target = await importTarget();
  });
  after(async () => {
    await target?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('imports the centre instance with its neighbours, and reports a centre that is not there', async () => {
    const first = await importCli(target, [dir, '--dicom', '--centres', 'centres.csv', '--context', '1']);
    assert.match(first.stdout, /imported 1, updated 0, unchanged 0 \(already stored\), failed 1/);
    assert.match(first.stdout, /dcm-2: no DICOM file im9\.dcm in the series/);
    const rows = await target.query<{ offsets: number[]; series_instance_uid: string }>(
      `SELECT array_agg(s.slice_offset ORDER BY s.slice_offset) AS offsets, c.series_instance_uid
       FROM nodule_cases c JOIN slices s ON s.case_id = c.id WHERE c.external_id = 'dcm-1' GROUP BY c.id`,
    );
    assert.deepEqual(rows, [{ offsets: [-1, 0, 1], series_instance_uid: '1.2.3.4' }]);
    const second = await importCli(target, [dir, '--dicom', '--centres', 'centres.csv', '--context', '1']);
    assert.match(second.stdout, /imported 0, updated 0, unchanged 1/);
  });
});

describe(`npm run import --pacs: nodules named by UIDs, fetched from a real PACS (Orthanc) (${databaseLabel})`, () => {
  let dir: string;
  let target: Target;
  let pacs: Orthanc;
  let series: CtSeries;
  let other: CtSeries;
  before(async () => {
    pacs = await startOrthanc();
    series = ctSeries({ seed: 61, slices: 5, transferSyntaxes: ['1.2.840.10008.1.2.1', '1.2.840.10008.1.2.4.70'], identifying: { PatientID: 'ZQMRN-IMPORT-61' } });
    other = ctSeries({ seed: 62, slices: 3, transferSyntaxes: ['1.2.840.10008.1.2.5'] });
    for (const s of [...series.slices, ...other.slices]) await pacs.upload(s.file);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcdn-import-pacs-'));
    const uids = `${series.studyInstanceUid},${series.seriesInstanceUid}`;
    write(dir, 'nodules.csv', [
      'case_id,study_instance_uid,series_instance_uid,sop_instance_uid,center_x,center_y,neighbours,patient_key,malignancy,diameter_mm',
      `pacs-1,${uids},${series.slices[2]!.sopInstanceUid},48,48,1,,4,12`,
      `pacs-2,${other.studyInstanceUid},${other.seriesInstanceUid},${other.slices[0]!.sopInstanceUid},40,44,2,PSEUDO-P2,2,`,
      `pacs-3,${uids},1.2.826.0.1.77,48,48,1,,,`,
      `pacs-4,${uids},${series.slices[1]!.sopInstanceUid},48,48,5,,,`,
    ].join('\n'));
    target = await importTarget();
  });
  after(async () => {
    await target?.close();
    await pacs?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('imports every good row with the PACS slices, derives patient keys, lists bad rows; a second run fetches nothing', async () => {
    const env = { ...target.env, FCDN_DICOMWEB_URL: pacs.dicomwebUrl, FCDN_PATIENT_KEY_SECRET: 'import-test-patient-key-secret-0123456789' };
    const first = await importCli({ ...target, env }, ['--pacs', path.join(dir, 'nodules.csv')]);
    assert.match(first.stdout, /4 cases in [\d.]+ s: imported 2, updated 0, unchanged 0 \(already stored\), failed 2/, first.stdout + first.stderr);
    assert.match(first.stdout, /pacs-3: nodule\.sopInstanceUid: instance 1\.2\.826\.0\.1\.77 is not in series/);
    assert.match(first.stdout, /pacs-4: row\.neighbours must be an integer from 0 to 2/);
    const rows = await target.query<{ external_id: string; key: string; offsets: number[]; sops: string[] }>(
      `SELECT c.external_id, p.patient_key AS key, array_agg(s.slice_offset ORDER BY s.slice_offset) AS offsets, array_agg(s.sop_instance_uid ORDER BY s.slice_offset) AS sops
       FROM nodule_cases c JOIN patients p ON p.id = c.patient_id JOIN slices s ON s.case_id = c.id GROUP BY c.id, p.patient_key ORDER BY c.external_id`,
    );
    assert.deepEqual(rows.map((r) => [r.external_id, r.offsets, r.sops]), [
      ['pacs-1', [-1, 0, 1], [1, 2, 3].map((i) => series.slices[i]!.sopInstanceUid)],
      ['pacs-2', [0, 1, 2], [0, 1, 2].map((i) => other.slices[i]!.sopInstanceUid)],
    ]);
    assert.match(rows[0]!.key, /^pk-[0-9a-f]{32}$/);
    assert.equal(rows[1]!.key, 'PSEUDO-P2');
    const again = await importCli({ ...target, env }, ['--pacs', path.join(dir, 'nodules.csv')]);
    assert.match(again.stdout, /imported 0, updated 0, unchanged 2/);
    // Without a PACS configured the command refuses to start.
    const none = await importCli(target, ['--pacs', path.join(dir, 'nodules.csv')]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /--pacs needs the PACS: set FCDN_DICOMWEB_URL/);
  });
});
