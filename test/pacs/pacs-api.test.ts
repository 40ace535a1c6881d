/**
 * Search and import by PACS nodule through the API, against a real PACS (Orthanc on loopback):
 *  - the equality test: a search by UIDs and a point gives exactly the answer of an inline upload
 *    of the same DICOM files (PGlite and Postgres: whichever database the run uses);
 *  - importFromPacs: writer role, idempotent on externalId, patient key given or an HMAC of the
 *    PatientID (which is stored nowhere), viewerUrl from FCDN_VIEWER_URL_TEMPLATE;
 *  - the fault and bad-input table of the PACS path, each leaving nothing written.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { ctSeries, type CtSeries } from '../../fixtures/ct-series.ts';
import { assertInvariants } from '../support/invariants.ts';
import { startOrthanc, type Orthanc } from '../../fixtures/orthanc.ts';
import { phantomSlices } from '../../fixtures/phantom-cases.ts';
import { databaseLabel } from '../../fixtures/test-database.ts';
import { startTestService, type TestService } from '../../fixtures/test-service.ts';

const PATIENT_KEY_SECRET = 'test-patient-key-secret-0123456789abcdef';
const VIEWER = 'https://viewer.example/viewer?StudyInstanceUIDs={studyInstanceUid}&SeriesInstanceUIDs={seriesInstanceUid}';
const SYNTAXES = ['1.2.840.10008.1.2.1', '1.2.840.10008.1.2.4.70', '1.2.840.10008.1.2.4.90', '1.2.840.10008.1.2.5', '1.2.840.10008.1.2.4.80'];

let pacs: Orthanc;
let svc: TestService;
let series: CtSeries[];
let mr: CtSeries;

const SEARCH = `query ($input: SimilarCasesInput!) { similarCases(input: $input) {
  tookMs hits { rank jointDistance shallowDistance middleDistance deepDistance case { id } }
  queryPreviews { offset inSliceWindow imageUrl } } }`;
const IMPORT = `mutation ($input: ImportFromPacsInput!) { importFromPacs(input: $input) {
  id externalId patientKey viewerUrl malignancyClass study { studyInstanceUid } slices { offset sopInstanceUid } } }`;

const nodule = (s: CtSeries, index: number, extra: Record<string, unknown> = {}) => ({
  studyInstanceUid: s.studyInstanceUid, seriesInstanceUid: s.seriesInstanceUid, sopInstanceUid: s.slices[index]!.sopInstanceUid, centerX: 44, centerY: 52, ...extra,
});

async function totals() {
  return assertInvariants(svc.db.raw, svc.service.store);
}

before(async () => {
  pacs = await startOrthanc();
  series = [21, 22, 23].map((seed, i) => ctSeries({ seed, slices: 5, transferSyntaxes: SYNTAXES.slice(i), diameterPx: 10 + 4 * i, identifying: { PatientID: `ZQMRN-${seed}`, PatientName: 'ZQDOE^ZQJANE' } }));
  mr = ctSeries({ seed: 29, slices: 3, modality: 'MR' });
  for (const s of [...series, mr]) for (const slice of [...s.slices].reverse()) await pacs.upload(slice.file);
  svc = await startTestService({
    env: {
      FCDN_DICOMWEB_URL: pacs.dicomwebUrl, FCDN_DICOMWEB_TIMEOUT_MS: '5000', FCDN_PATIENT_KEY_SECRET: PATIENT_KEY_SECRET, FCDN_VIEWER_URL_TEMPLATE: VIEWER,
      // The invariant checks count every object of the store: on CI's shared S3 server, a bucket of this file's own.
      ...(process.env.S3_ENDPOINT ? { S3_BUCKET: `fcdn-pacs-${crypto.randomBytes(4).toString('hex')}` } : {}),
    },
  });
  // A gallery of other patients' cases to rank.
  for (let i = 0; i < 6; i++) {
    const r = await svc.gql('mutation ($input: IngestCaseInput!) { ingestCase(input: $input) { id } }', {
      input: { patientKey: `gallery-${i}`, externalId: `gallery-${i}`, malignancy: 1 + (i % 5), images: phantomSlices({ seed: 300 + i, diameterPx: 8 + 2 * i }) },
    }, 'writer');
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
  }
});

after(async () => {
  await svc?.stop();
  await pacs?.stop();
});

test(`search by PACS nodule = search by the same DICOM files uploaded inline (${databaseLabel}, Orthanc)`, async () => {
  for (const [s, index, neighbours] of [[series[0]!, 2, 1], [series[1]!, 2, 2], [series[2]!, 0, 1], [series[0]!, 4, 0]] as const) {
    const byPacs = await svc.gql(SEARCH, { input: { pacs: nodule(s, index, { neighbours }), k: 5 } }, 'reader');
    assert.equal(byPacs.errors, undefined, JSON.stringify(byPacs.errors));
    const from = Math.max(0, index - neighbours);
    const to = Math.min(s.slices.length - 1, index + neighbours);
    const images = s.slices.slice(from, to + 1).map((slice) => ({ data: slice.file.toString('base64'), offset: slice.index - index, centerX: 44, centerY: 52 }));
    const inline = await svc.gql(SEARCH, { input: { images, k: 5 } }, 'reader');
    assert.equal(inline.errors, undefined, JSON.stringify(inline.errors));
    const strip = (r: any) => ({ hits: r.similarCases.hits, queryPreviews: r.similarCases.queryPreviews });
    assert.ok(byPacs.data.similarCases.hits.length > 0);
    assert.deepEqual(strip(byPacs.data), strip(inline.data), `series ${s.seriesInstanceUid} slice ${index} neighbours ${neighbours}`);
    // At the series edge the query has only the slices that exist, and says so in its previews.
    assert.deepEqual(byPacs.data.similarCases.queryPreviews.map((p: { offset: number }) => p.offset), images.map((i) => i.offset));
    assert.ok(byPacs.data.similarCases.tookMs > 0);
  }
  // tookMs includes the fetch; the metrics split it by stage.
  const metrics = await (await fetch(`${svc.url}/metrics`)).text();
  assert.match(metrics, /fcdn_search_duration_seconds_count\{query_kind="PACS"\} 4\b/);
  for (const stage of ['fetch', 'decode', 'encode', 'search']) assert.match(metrics, new RegExp(`fcdn_search_stage_seconds_count\\{stage="${stage}"\\} [1-9]`), stage);
  // The search log tells an analyst which searches came from the PACS (written after the answer).
  const logged = async () => (await svc.db.raw.query<{ n: number }>('SELECT count(*)::integer AS n FROM analytics.searches'))[0]!.n;
  for (let i = 0; i < 100 && (await logged()) < 8; i++) await new Promise((r) => setTimeout(r, 50));
  const [today] = await svc.db.raw.query<{ pacs_searches: number; image_searches: number }>('SELECT sum(pacs_searches)::integer AS pacs_searches, sum(image_searches)::integer AS image_searches FROM analytics.daily_search_stats');
  assert.deepEqual(today, { pacs_searches: 4, image_searches: 4 });
});

test('importFromPacs: a case with the UIDs, a keyed-hash patient key, viewerUrl; idempotent on externalId', async () => {
  const s = series[0]!;
  const before = await totals();
  const input = { nodule: nodule(s, 2), externalId: 'pacs-import-1', malignancy: 4, diameterMm: 9.5 };
  const first = await svc.gql(IMPORT, { input }, 'writer');
  assert.equal(first.errors, undefined, JSON.stringify(first.errors));
  const c = first.data.importFromPacs;
  const expectedKey = `pk-${crypto.createHmac('sha256', PATIENT_KEY_SECRET).update('ZQMRN-21').digest('hex').slice(0, 32)}`;
  assert.equal(c.patientKey, expectedKey);
  assert.ok(!c.patientKey.includes('ZQMRN'));
  assert.equal(c.study.studyInstanceUid, s.studyInstanceUid);
  assert.equal(c.malignancyClass, 'MALIGNANT');
  assert.deepEqual(c.slices.map((x: { offset: number; sopInstanceUid: string }) => [x.offset, x.sopInstanceUid]), [-1, 0, 1].map((o) => [o, s.slices[2 + o]!.sopInstanceUid]));
  assert.equal(c.viewerUrl, `https://viewer.example/viewer?StudyInstanceUIDs=${s.studyInstanceUid}&SeriesInstanceUIDs=${s.seriesInstanceUid}`);

  const again = await svc.gql(IMPORT, { input: { ...input, malignancy: 2 } }, 'writer');
  assert.equal(again.errors, undefined, JSON.stringify(again.errors));
  assert.equal(again.data.importFromPacs.id, c.id);
  assert.equal(again.data.importFromPacs.malignancyClass, 'BENIGN');
  const after1 = await totals();
  assert.equal(after1.cases, before.cases + 1);
  assert.equal(after1.slices, before.slices + 3);

  // A given patientKey is used as given; the same patient's other nodule gets the same derived key.
  const given = await svc.gql(IMPORT, { input: { nodule: nodule(series[1]!, 1, { neighbours: 0 }), externalId: 'pacs-import-2', patientKey: 'PSEUDO-77' } }, 'writer');
  assert.equal(given.errors, undefined, JSON.stringify(given.errors));
  assert.equal(given.data.importFromPacs.patientKey, 'PSEUDO-77');
  const second = await svc.gql(IMPORT, { input: { nodule: nodule(s, 4, { neighbours: 0 }), externalId: 'pacs-import-3' } }, 'writer');
  assert.equal(second.data.importFromPacs.patientKey, expectedKey);

  // Raced on purpose: the same externalId imported three times at once is still one case.
  const raced = await Promise.all([0, 1, 2].map(() => svc.gql(IMPORT, { input: { nodule: nodule(series[1]!, 3), externalId: 'pacs-race', patientKey: 'PSEUDO-77' } }, 'writer')));
  for (const r of raced) assert.equal(r.errors, undefined, JSON.stringify(r.errors));
  assert.equal(new Set(raced.map((r) => r.data.importFromPacs.id)).size, 1);
  const [{ n }] = await svc.db.raw.query<{ n: number }>(`SELECT count(*)::int AS n FROM nodule_cases WHERE external_id = 'pacs-race'`);
  assert.equal(n, 1);
  await totals();

  // Only writers import.
  const reader = await svc.gql(IMPORT, { input: { nodule: nodule(s, 1) } }, 'reader');
  assert.equal(reader.errors?.[0]?.extensions?.code, 'FORBIDDEN');
});

test("a PACS search leaves out the nodule's own patient (imported under the derived key) unless excludeSamePatient is false", async () => {
  const s = series[0]!;
  const [own] = await svc.db.raw.query<{ id: number }>(`SELECT id FROM nodule_cases WHERE external_id = 'pacs-import-1'`);
  assert.ok(own, 'the importFromPacs test stored this nodule');
  const ids = (r: any) => r.data.similarCases.hits.map((h: { case: { id: string } }) => Number(h.case.id));
  const excluded = await svc.gql(SEARCH, { input: { pacs: nodule(s, 2), k: 50 } }, 'reader');
  assert.equal(excluded.errors, undefined, JSON.stringify(excluded.errors));
  assert.ok(ids(excluded).length > 0);
  assert.ok(!ids(excluded).includes(own.id), `the query's own patient is not among ${ids(excluded)}`);
  const included = await svc.gql(SEARCH, { input: { pacs: nodule(s, 2), k: 50, excludeSamePatient: false } }, 'reader');
  assert.equal(included.errors, undefined, JSON.stringify(included.errors));
  assert.equal(ids(included)[0], own.id, 'the same nodule is the top hit when its patient is not excluded');
  assert.equal(included.data.similarCases.hits[0].jointDistance, 0);
});

test('PACS faults and bad input: the code, a message naming what, and nothing written', async () => {
  const s = series[2]!;
  const cases: [string, Record<string, unknown>, string, RegExp][] = [
    ['unknown study', nodule(s, 1, { studyInstanceUid: '1.2.826.0.1.404' }), 'NOT_FOUND', /study 1\.2\.826\.0\.1\.404 is not in the PACS/],
    ['unknown series', nodule(s, 1, { seriesInstanceUid: '1.2.826.0.1.405' }), 'NOT_FOUND', /series 1\.2\.826\.0\.1\.405 is not in study/],
    ['unknown instance', nodule(s, 1, { sopInstanceUid: '1.2.826.0.1.406' }), 'NOT_FOUND', /instance 1\.2\.826\.0\.1\.406 is not in series/],
    ['an MR series', nodule(mr, 1), 'BAD_USER_INPUT', /is MR, not CT/],
    ['a malformed UID', nodule(s, 1, { studyInstanceUid: '1.2/../x' }), 'BAD_USER_INPUT', /is not a DICOM UID/],
    ['neighbours 3', nodule(s, 1, { neighbours: 3 }), 'BAD_USER_INPUT', /neighbours must be an integer from 0 to 2/],
    ['a point outside the image', nodule(s, 1, { centerX: 5000 }), 'BAD_USER_INPUT', /centre|center|outside/i],
  ];
  const before = await totals();
  for (const [what, n, code, message] of cases) {
    const search = await svc.gql(SEARCH, { input: { pacs: n } }, 'reader');
    assert.equal(search.errors?.[0]?.extensions?.code, code, `search, ${what}: ${JSON.stringify(search.errors)}`);
    assert.match(search.errors![0]!.message, message, `search, ${what}`);
    const imported = await svc.gql(IMPORT, { input: { nodule: n, externalId: `fail-${what}` } }, 'writer');
    assert.equal(imported.errors?.[0]?.extensions?.code, code, `import, ${what}: ${JSON.stringify(imported.errors)}`);
    assert.match(imported.errors![0]!.message, message, `import, ${what}`);
  }
  const both = await svc.gql(SEARCH, { input: { pacs: nodule(s, 1), images: [{ data: s.slices[1]!.file.toString('base64') }] } }, 'reader');
  assert.equal(both.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
  assert.match(both.errors![0]!.message, /exactly one of caseId, images and pacs/);
  assert.deepEqual(await totals(), before);
});

test('a PACS that accepts connections and never answers: SERVICE_UNAVAILABLE within the bound, nothing written; no PACS configured: BAD_USER_INPUT', async () => {
  const sockets: net.Socket[] = [];
  const hung = net.createServer((socket) => sockets.push(socket));
  await new Promise<void>((r) => hung.listen(0, '127.0.0.1', r));
  const other = await startTestService({
    db: svc.db,
    env: { FCDN_DICOMWEB_URL: `http://127.0.0.1:${(hung.address() as net.AddressInfo).port}/dicom-web`, FCDN_DICOMWEB_TIMEOUT_MS: '800', FCDN_PATIENT_KEY_SECRET: PATIENT_KEY_SECRET },
  });
  const none = await startTestService({ db: svc.db });
  try {
    const before = await totals();
    const n = nodule(series[0]!, 2);
    for (const [op, query, input, role] of [['search', SEARCH, { pacs: n }, 'reader'], ['import', IMPORT, { nodule: n, externalId: 'hung-1' }, 'writer']] as const) {
      const started = Date.now();
      const r = await other.gql(query, { input }, role);
      const took = Date.now() - started;
      assert.equal(r.errors?.[0]?.extensions?.code, 'SERVICE_UNAVAILABLE', `${op}: ${JSON.stringify(r.errors)}`);
      assert.match(r.errors![0]!.message, /did not answer within 800 ms/);
      assert.ok(took < 3000, `${op} failed after ${took} ms`);
    }
    assert.ok(sockets.length > 0);
    const off = await none.gql(SEARCH, { input: { pacs: n } }, 'reader');
    assert.equal(off.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
    assert.match(off.errors![0]!.message, /no PACS configured \(FCDN_DICOMWEB_URL/);
    const viewer = await none.gql('query ($id: ID!) { case(id: $id) { viewerUrl } }', { id: (await svc.gql('{ cases(first: 1) { edges { node { id } } } }')).data.cases.edges[0].node.id });
    assert.equal(viewer.data?.case?.viewerUrl, null, 'no template: no viewerUrl');
    assert.deepEqual(await totals(), before);
  } finally {
    for (const socket of sockets) socket.destroy();
    hung.close();
    await other.stop({ dropDatabase: false });
    await none.stop({ dropDatabase: false });
  }
});
