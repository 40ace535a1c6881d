/**
 * A PACS sends CT slices whose headers are full of patient, physician and site details (DICOM
 * PS3.15 Annex E, basic profile). The service ingests them, searches with them, serves their
 * images, and fetches them itself from a real PACS (Orthanc: importFromPacs with a patient key
 * derived from PatientID, a search by PACS nodule, a refused one)... and afterwards not one of those values can be found in any byte it stored: every
 * row of every table (and, on PGlite, every file of the data directory, dead rows and WAL
 * included; on Postgres, a pg_dump of the database), every object in the object store, every
 * file in the data folder, and every log line at trace level.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { openDatabase } from '../../src/db/database.ts';
import { migrate } from '../../src/db/migrator.ts';
import { makePhantomDicom, type IdentifyingField } from '../../fixtures/phantoms.ts';
import { ctSeries } from '../../fixtures/ct-series.ts';
import { startOrthanc, type Orthanc } from '../../fixtures/orthanc.ts';
import { createTestDatabase, databaseLabel, usingPostgres, type TestDatabase } from '../../fixtures/test-database.ts';
import { startTestService, type TestService } from '../../fixtures/test-service.ts';

/** Distinctive values, each valid for its VR (PatientSex 'O' and PatientAge '077Y' are too short to search for: sent, not checked). */
const IDENTIFYING: Record<IdentifyingField, string> = {
  StudyDate: '19980711',
  SeriesDate: '19980712',
  AcquisitionDate: '19980713',
  ContentDate: '19980714',
  StudyTime: '071523.417',
  AccessionNumber: 'ZQACC5551234',
  InstitutionName: 'ZQ St Elsewhere General',
  InstitutionAddress: 'ZQ 12 Harbour Road, Portwenn',
  ReferringPhysicianName: 'ZQHOUSE^ZQGREGORY',
  ReferringPhysicianAddress: 'ZQ 221B Baker Street',
  ReferringPhysicianTelephoneNumbers: 'ZQ555-0142',
  StationName: 'ZQCTROOM7',
  StudyDescription: 'ZQ CT chest of Jane Doe',
  SeriesDescription: 'ZQ Lung 1mm Doe',
  InstitutionalDepartmentName: 'ZQ Radiology West',
  PhysiciansOfRecord: 'ZQKILDARE^ZQJAMES',
  PerformingPhysicianName: 'ZQQUINN^ZQMICHAELA',
  NameOfPhysiciansReadingStudy: 'ZQGREY^ZQMEREDITH',
  OperatorsName: 'ZQTECH^ZQTERRY',
  AdmittingDiagnosesDescription: 'ZQ suspected carcinoma',
  PatientName: 'ZQDOE^ZQJANE^QUINCY',
  PatientID: 'ZQMRN99887766',
  IssuerOfPatientID: 'ZQ Hospital MRN Issuer',
  PatientBirthDate: '19130517',
  PatientBirthTime: '042211',
  PatientSex: 'O',
  OtherPatientIDs: 'ZQOTHERID4455',
  OtherPatientNames: 'ZQSMITH^ZQJANET',
  PatientAge: '077Y',
  PatientSize: '1.7734251',
  PatientWeight: '81.734251963',
  PatientAddress: 'ZQ 4 Privet Drive, Little Whinging',
  PatientMotherBirthName: 'ZQMOTHERNAME^ZQMARY',
  MilitaryRank: 'ZQ Lance Corporal',
  MedicalRecordLocator: 'ZQ Archive Box 88',
  PatientTelephoneNumbers: 'ZQ555-0199',
  EthnicGroup: 'ZQETHNIC',
  Occupation: 'ZQOCCUPATION',
  AdditionalPatientHistory: 'ZQ smoker, 40 pack years',
  ResponsiblePerson: 'ZQGUARDIAN^ZQPAT',
  PatientComments: 'ZQ prefers morning appointments',
  DeviceSerialNumber: 'ZQSN-0042-7781',
  ProtocolName: 'ZQ Protocol Doe Chest',
  StudyID: 'ZQSTUDY31',
  ImageComments: 'ZQ image of Jane Doe',
  RequestingPhysician: 'ZQWELBY^ZQMARCUS',
  RequestedProcedureDescription: 'ZQ CT thorax requested',
  PerformedProcedureStepDescription: 'ZQ CT thorax performed',
};

const TOO_SHORT: ReadonlySet<IdentifyingField> = new Set(['PatientSex', 'PatientAge']);

/** Every value, and each component of a person name, as the bytes a leak would contain. */
const MARKERS = [
  ...new Set(
    Object.entries(IDENTIFYING)
      .filter(([field]) => !TOO_SHORT.has(field as IdentifyingField))
      .flatMap(([, value]) => [value, ...value.split('^').filter((part) => part.length >= 5)]),
  ),
];

let svc: TestService;
let db: TestDatabase;
let pgliteDir: string | undefined;
let logText = '';
let caseId: string;
let pacs: Orthanc;

/** Compressed syntaxes too: the header is the same whatever encodes the pixels. */
const SYNTAX = {
  explicit: '1.2.840.10008.1.2.1', rle: '1.2.840.10008.1.2.5', j2k: '1.2.840.10008.1.2.4.90',
  jpegLs: '1.2.840.10008.1.2.4.80', jpegLossless: '1.2.840.10008.1.2.4.70', deflated: '1.2.840.10008.1.2.1.99',
} as const;

function dicomSlice(seed: number, offset: number, transferSyntaxUid: string = SYNTAX.explicit) {
  const file = makePhantomDicom({ seed, rows: 160, columns: 160, noduleX: 70, noduleY: 90, diameterPx: 14, pixelSpacingMm: [0.68, 0.68], identifying: IDENTIFYING, transferSyntaxUid });
  return { data: file.toString('base64'), offset, centerX: 70, centerY: 90 };
}

before(async () => {
  if (usingPostgres) {
    db = await createTestDatabase();
  } else {
    // On disk rather than in memory, so that the data files themselves can be searched.
    pgliteDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcdn-phi-pglite-'));
    const opened = await openDatabase({ pgliteDir });
    await migrate(opened.raw);
    db = opened;
  }
  const sink = { write: (line: string) => void (logText += line) };
  // The same headers in a PACS the service fetches from (every marker in every instance).
  pacs = await startOrthanc();
  const series = ctSeries({ seed: 88, slices: 3, identifying: IDENTIFYING, transferSyntaxes: [SYNTAX.explicit, SYNTAX.jpegLs, SYNTAX.rle] });
  for (const slice of series.slices) await pacs.upload(slice.file);
  svc = await startTestService({
    db,
    overrides: { log: pino({ level: 'trace' }, sink) },
    env: { FCDN_DICOMWEB_URL: pacs.dicomwebUrl, FCDN_PATIENT_KEY_SECRET: 'phi-test-patient-key-secret-0123456789ab' },
  });

  const ingest = await svc.gql('mutation ($input: IngestCaseInput!) { ingestCase(input: $input) { id study { studyInstanceUid } slices { imageUrl } } }', {
    input: { patientKey: 'PSEUDO-PHI-1', externalId: 'phi-case', images: [dicomSlice(39, -1, SYNTAX.j2k), dicomSlice(40, 0), dicomSlice(41, 1, SYNTAX.rle)] },
  });
  assert.equal(ingest.errors, undefined, JSON.stringify(ingest.errors));
  caseId = ingest.data.ingestCase.id;
  // The study UID is kept (PRODUCT.md allows UIDs): proof that the header was read at all.
  assert.match(ingest.data.ingestCase.study.studyInstanceUid, /^2\.25\.\d+$/);
  for (const s of ingest.data.ingestCase.slices) assert.equal((await fetch(s.imageUrl)).status, 200);

  // A second case to search against, then a search by the DICOM slices (writes the search log).
  await svc.gql('mutation ($input: IngestCaseInput!) { ingestCase(input: $input) { id } }', {
    input: { patientKey: 'PSEUDO-PHI-2', images: [dicomSlice(77, 0)] },
  });
  const search = await svc.gql('query ($input: SimilarCasesInput!) { similarCases(input: $input) { hits { rank } } }', {
    input: { images: [dicomSlice(49, -1, SYNTAX.jpegLs), dicomSlice(50, 0, SYNTAX.deflated), dicomSlice(51, 1, SYNTAX.jpegLossless)], k: 5 },
  }, 'reader');
  assert.equal(search.errors, undefined, JSON.stringify(search.errors));
  assert.ok(search.data.similarCases.hits.length >= 1);
  // A refused upload must not echo header values into the error or the log either.
  const refused = await svc.gql('mutation ($input: IngestCaseInput!) { ingestCase(input: $input) { id } }', {
    input: { patientKey: 'PSEUDO-PHI-3', images: [{ ...dicomSlice(60, 0), centerX: 5000 }] },
  });
  assert.equal(refused.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
  assert.ok(!MARKERS.some((m) => JSON.stringify(refused).includes(m)));

  // From the PACS: an import whose patient key is derived from PatientID, a search, a refusal.
  const nodule = { studyInstanceUid: series.studyInstanceUid, seriesInstanceUid: series.seriesInstanceUid, sopInstanceUid: series.slices[1]!.sopInstanceUid, centerX: 48, centerY: 48 };
  const imported = await svc.gql('mutation ($input: ImportFromPacsInput!) { importFromPacs(input: $input) { id patientKey slices { imageUrl } } }', { input: { nodule, externalId: 'phi-pacs' } }, 'writer');
  assert.equal(imported.errors, undefined, JSON.stringify(imported.errors));
  assert.match(imported.data.importFromPacs.patientKey, /^pk-[0-9a-f]{32}$/);
  assert.equal(imported.data.importFromPacs.slices.length, 3);
  const byPacs = await svc.gql('query ($input: SimilarCasesInput!) { similarCases(input: $input) { hits { rank } } }', { input: { pacs: nodule, k: 5 } }, 'reader');
  assert.equal(byPacs.errors, undefined, JSON.stringify(byPacs.errors));
  const pacsRefused = await svc.gql('mutation ($input: ImportFromPacsInput!) { importFromPacs(input: $input) { id } }', { input: { nodule: { ...nodule, centerX: 5000 }, externalId: 'phi-pacs-refused' } }, 'writer');
  assert.equal(pacsRefused.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
  assert.ok(!MARKERS.some((m) => JSON.stringify(pacsRefused).includes(m)));
});

let stopped = false;
after(async () => {
  if (!stopped) await svc?.stop();
  else fs.rmSync(svc.dataDir, { recursive: true, force: true });
  await pacs?.stop();
  if (pgliteDir) fs.rmSync(pgliteDir, { recursive: true, force: true });
});

function leaks(haystack: Buffer): string[] {
  return MARKERS.filter((m) => haystack.includes(Buffer.from(m, 'latin1')));
}

function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath, e.name));
}

test(`the markers are really in the uploaded files (the search below could find them) (${databaseLabel})`, () => {
  const file = Buffer.from(dicomSlice(40, 0).data, 'base64');
  assert.deepEqual(MARKERS.filter((m) => !file.includes(Buffer.from(m, 'latin1'))), []);
  assert.ok(MARKERS.length >= 50, `${MARKERS.length} markers`);
});

test(`no identifying value in any row of any table (${databaseLabel})`, async () => {
  const tables = await db.raw.query<{ schema: string; name: string }>(
    `SELECT table_schema AS schema, table_name AS name FROM information_schema.tables
      WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type IN ('BASE TABLE', 'VIEW')`,
  );
  assert.ok(tables.some((t) => t.name === 'slices') && tables.some((t) => t.name === 'search_log'), tables.map((t) => t.name).join(','));
  let dump = '';
  let rows = 0;
  for (const t of tables) {
    const got = await db.raw.query<{ row: string }>(`SELECT t::text AS row FROM "${t.schema}"."${t.name}" t`);
    rows += got.length;
    dump += got.map((r) => r.row).join('\n');
  }
  assert.ok(rows > 10 && dump.includes(caseId), `${rows} rows dumped`);
  assert.deepEqual(leaks(Buffer.from(dump, 'utf8')), []);
});

const storeKind = process.env.S3_ENDPOINT ? 's3' : 'filesystem';

test(`no identifying value in any stored object (${storeKind} store), and stored PNGs carry no text chunks (${databaseLabel})`, async () => {
  const store = svc.service.store;
  assert.equal(store.kind, storeKind);
  const keys = await store.list('');
  assert.ok(keys.filter((k) => k.endsWith('.png')).length >= 4, keys.join(','));
  for (const key of keys) {
    const body = await store.get(key);
    assert.deepEqual(leaks(body), [], key);
    if (key.endsWith('.png')) assert.deepEqual(pngChunkTypes(body), ['IHDR', 'IDAT', 'IEND'], key);
  }
  // And every file of the data folder (objects, keys, anything else the service wrote there).
  for (const f of filesUnder(svc.dataDir)) assert.deepEqual(leaks(fs.readFileSync(f)), [], f);
});

test(`no identifying value in the logs, at trace level (${databaseLabel})`, () => {
  assert.ok(logText.includes('graphql operation') && logText.includes('"reqId"'), 'the log captured requests');
  assert.deepEqual(leaks(Buffer.from(logText, 'utf8')), []);
});

test(`no identifying value in the database's own bytes: ${usingPostgres ? 'pg_dump' : "PGlite's data directory"} (${databaseLabel})`, async () => {
  if (usingPostgres) {
    const dump = execFileSync('pg_dump', ['--no-owner', db.url!], { maxBuffer: 512 * 1024 * 1024 });
    assert.ok(dump.includes(Buffer.from('search_log')) && dump.length > 10_000);
    assert.deepEqual(leaks(dump), []);
  } else {
    // Close first so that everything is written out to the files (WAL included); runs last.
    await svc.stop({ dropDatabase: false });
    await db.close();
    stopped = true;
    const files = filesUnder(pgliteDir!);
    let bytes = 0;
    const found = new Set<string>();
    for (const f of files) {
      const content = fs.readFileSync(f);
      bytes += content.length;
      for (const m of leaks(content)) found.add(`${m} in ${path.relative(pgliteDir!, f)}`);
    }
    assert.ok(files.length > 100 && bytes > 1_000_000, `${files.length} files, ${bytes} bytes`);
    assert.deepEqual([...found], []);
  }
});

function pngChunkTypes(png: Buffer): string[] {
  const types: string[] = [];
  for (let pos = 8; pos + 8 <= png.length; pos += 12 + png.readUInt32BE(pos)) types.push(png.toString('latin1', pos + 4, pos + 8));
  return types;
}
