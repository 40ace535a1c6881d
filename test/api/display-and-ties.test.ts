/**
 * Issue 12 through the API: display renditions (Slice.displayUrl: 16-bit HU slices windowed to 8
 * bits, 8-bit slices passed through, the original still at imageUrl; queryPreviews of an image
 * search, DICOM included) and honest ties (SimilarCasesResult.tiedAtCutoff and
 * SimilarCaseHit.tieGroupSize equal counts made independently from the whole ranking). On
 * Postgres with fcdn_search the blocks are built first, so the blocks method's count is the one
 * checked there; on PGlite the naive one.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { DISPLAY_WINDOWS, windowToByte } from '../../src/imaging/display.ts';
import { decodePng, PNG16_HU_OFFSET } from '../../src/imaging/index.ts';
import { makePhantomDicom, makePhantomPng } from '../../fixtures/phantoms.ts';
import { databaseLabel, usingPostgres } from '../../fixtures/test-database.ts';
import { phantomSlices } from '../../fixtures/phantom-cases.ts';
import { startTestService, type TestService } from '../../fixtures/test-service.ts';

let svc: TestService;
let blocksMethod = 'naive';
const ids = new Map<string, string>();

// One image stored as 70 cases of 70 patients: all at Joint 0 to a query made of it. 70 is past
// the first step (64) of the blocks method's doubling fetch.
const TWIN_COUNT = 70;
const TWIN = makePhantomPng({ seed: 901, size: 64, diameterPx: 16, texture: 'solid' }).toString('base64');
const HU16 = [-1, 0, 1].map((offset) => ({ offset, data: makePhantomPng({ seed: 902 + offset, size: 64, diameterPx: 18, texture: 'part-solid', bitDepth: 16 }).toString('base64') }));

const SEARCH = `query ($input: SimilarCasesInput!) {
  similarCases(input: $input) { tiedAtCutoff hits { rank jointDistance tieGroupSize case { id externalId } } }
}`;
type Hit = { rank: number; jointDistance: number; tieGroupSize: number; case: { id: string; externalId: string } };

async function ingest(externalId: string, patientKey: string, images: { data: string; offset: number }[]): Promise<string> {
  const res = await svc.gql(`mutation ($input: IngestCaseInput!) { ingestCase(input: $input) { id } }`, { input: { externalId, patientKey, images, malignancy: 3, diameterMm: 10 } }, 'writer');
  assert.equal(res.errors, undefined, JSON.stringify(res.errors));
  ids.set(externalId, res.data.ingestCase.id);
  return res.data.ingestCase.id;
}

async function search(input: Record<string, unknown>): Promise<{ tiedAtCutoff: number; hits: Hit[] }> {
  const res = await svc.gql(SEARCH, { input }, 'reader');
  assert.equal(res.errors, undefined, JSON.stringify(res.errors));
  return res.data.similarCases;
}

async function fetchPng(url: string): Promise<Buffer> {
  const res = await fetch(url);
  assert.equal(res.status, 200, `${url}: ${await res.clone().text()}`);
  assert.equal(res.headers.get('content-type'), 'image/png');
  return Buffer.from(await res.arrayBuffer());
}

before(async () => {
  svc = await startTestService();
  for (let i = 0; i < TWIN_COUNT; i++) await ingest(`twin-${i}`, `PT-TWIN-${i}`, [{ data: TWIN, offset: 0 }]);
  for (let i = 0; i < 6; i++) await ingest(`other-${i}`, `PT-OTHER-${i}`, phantomSlices({ seed: 930 + i, diameterPx: 6 + 4 * i, texture: i % 2 ? 'ground-glass' : 'solid' }));
  await ingest('hu16', 'PT-HU16', HU16);
  const search = svc.service.repos.search;
  if ((await search.method()) === 'blocks') {
    await search.blocks.rebuild((await svc.service.services.models.active()).version.id);
    blocksMethod = 'blocks';
  }
});

after(async () => {
  await svc?.stop();
});

test(`tiedAtCutoff and tieGroupSize equal the counts of the whole ranking (${databaseLabel})`, async () => {
  if (process.env.FCDN_SEARCH_REQUIRED === '1' && usingPostgres) assert.equal(blocksMethod, 'blocks', 'the compiled search is what is checked on Postgres');
  const { hits: all } = await search({ images: [{ data: TWIN, offset: 0 }], k: 1000 });
  assert.equal(all.length, TWIN_COUNT + 7, 'every stored case is ranked');
  const countAt = (joint: number) => all.filter((h) => h.jointDistance === joint).length;
  assert.equal(countAt(0), TWIN_COUNT, 'the twins are tied at 0');

  for (const k of [1, 2, 5, 64, 69, 70, 71, 75]) {
    const { tiedAtCutoff, hits } = await search({ images: [{ data: TWIN, offset: 0 }], k });
    assert.equal(hits.length, k);
    const cutoff = hits.at(-1)!.jointDistance;
    assert.equal(tiedAtCutoff, countAt(cutoff), `k=${k} (${blocksMethod}): tied at the cutoff ${cutoff}`);
    for (const h of hits) assert.equal(h.tieGroupSize, countAt(h.jointDistance), `k=${k}: rank ${h.rank}`);
  }
  // A search by a stored case (which leaves itself out), and with a class filter that leaves none.
  const byCase = await search({ caseId: ids.get('twin-0'), k: 3 });
  assert.equal(byCase.tiedAtCutoff, TWIN_COUNT - 1);
  assert.deepEqual(byCase.hits.map((h) => h.tieGroupSize), [TWIN_COUNT - 1, TWIN_COUNT - 1, TWIN_COUNT - 1]);
  const none = await search({ images: [{ data: TWIN, offset: 0 }], k: 3, filter: { malignancyClass: ['MALIGNANT'] } });
  assert.deepEqual(none, { tiedAtCutoff: 0, hits: [] });

  // Groups wholly inside the top k are counted there: the ranks past the twins.
  const { hits: wide, tiedAtCutoff } = await search({ images: [{ data: TWIN, offset: 0 }], k: TWIN_COUNT + 7 });
  assert.equal(tiedAtCutoff, countAt(wide.at(-1)!.jointDistance));
  for (const h of wide) assert.equal(h.tieGroupSize, countAt(h.jointDistance));
});

test('Slice.displayUrl windows a 16-bit HU slice to 8 bits; imageUrl stays the 16-bit original; 8-bit slices pass through', async () => {
  const res = await svc.gql(
    `query ($id: ID!, $twin: ID!) {
      hu: case(id: $id) { slices { offset imageUrl lung: displayUrl mediastinal: displayUrl(window: MEDIASTINAL) } }
      twin: case(id: $twin) { slices { imageUrl displayUrl } }
    }`,
    { id: ids.get('hu16'), twin: ids.get('twin-0') },
    'reader',
  );
  assert.equal(res.errors, undefined, JSON.stringify(res.errors));
  for (const s of res.data.hu.slices as { offset: number; imageUrl: string; lung: string; mediastinal: string }[]) {
    const original = decodePng(await fetchPng(s.imageUrl));
    assert.equal(original.bitDepth, 16, 'the original is downloadable as stored');
    const sent = decodePng(Buffer.from(HU16.find((h) => h.offset === s.offset)!.data, 'base64'));
    assert.deepEqual(Array.from(original.raster.data), Array.from(sent.raster.data));
    for (const [name, url] of [['lung', s.lung], ['mediastinal', s.mediastinal]] as const) {
      assert.match(url, new RegExp(`&window=${name}$`));
      const shown = decodePng(await fetchPng(url));
      assert.equal(shown.bitDepth, 8);
      assert.deepEqual([shown.raster.width, shown.raster.height], [64, 64]);
      assert.deepEqual(Array.from(shown.raster.data), Array.from(original.raster.data, (v) => windowToByte(v - PNG16_HU_OFFSET, name)), `${name} window`);
    }
    const lung = decodePng(await fetchPng(s.lung)).raster.data;
    assert.ok(Math.max(...lung) - Math.min(...lung) > 100, 'the lung rendition has contrast (not flat grey)');
  }
  const [twin] = res.data.twin.slices as { imageUrl: string; displayUrl: string }[];
  assert.deepEqual(await fetchPng(twin!.displayUrl), await fetchPng(twin!.imageUrl), '8-bit slices are already windowed: the same bytes');
  assert.equal(DISPLAY_WINDOWS.lung.minHu, -1350);
});

test('the image route refuses an unknown window (400) and a URL whose signature does not match (403)', async () => {
  const res = await svc.gql(`query ($id: ID!) { case(id: $id) { slices { displayUrl } } }`, { id: ids.get('hu16') }, 'reader');
  const url: string = res.data.case.slices[0].displayUrl;
  const bad = await fetch(url.replace('window=lung', 'window=bone'));
  assert.equal(bad.status, 400);
  assert.match((await bad.json()).error, /unknown display window "bone"; use one of lung, mediastinal/);
  const forged = await fetch(url.replace(/sig=[^&]+/, 'sig=AAAA'));
  assert.equal(forged.status, 403);
  const enumError = await svc.gql(`query ($id: ID!) { case(id: $id) { slices { displayUrl(window: BONE) } } }`, { id: ids.get('hu16') }, 'reader');
  assert.equal(enumError.errors?.[0]?.extensions?.code, 'GRAPHQL_VALIDATION_FAILED');
});

test('queryPreviews: the prepared patches of an image search (a DICOM slice too) as 8-bit PNGs; null for a search by case', async () => {
  const dicom = makePhantomDicom({ seed: 940, diameterPx: 20 }).toString('base64');
  const q = `query ($input: SimilarCasesInput!) { similarCases(input: $input) {
    lung: queryPreviews { offset inSliceWindow imageUrl } mediastinal: queryPreviews(window: MEDIASTINAL) { imageUrl } } }`;
  const res = await svc.gql(q, { input: { images: [{ data: dicom, offset: 0 }, { data: HU16[0]!.data, offset: -2 }, { data: TWIN, offset: 1 }], k: 2 } }, 'reader');
  assert.equal(res.errors, undefined, JSON.stringify(res.errors));
  const { lung, mediastinal } = res.data.similarCases;
  assert.deepEqual(lung.map((p: { offset: number; inSliceWindow: boolean }) => [p.offset, p.inSliceWindow]), [[-2, false], [0, true], [1, true]]);
  const png = (url: string) => {
    assert.match(url, /^data:image\/png;base64,/);
    return decodePng(Buffer.from(url.slice('data:image/png;base64,'.length), 'base64'));
  };
  const dicomLung = png(lung[1].imageUrl);
  assert.equal(dicomLung.bitDepth, 8);
  assert.deepEqual([dicomLung.raster.width, dicomLung.raster.height], [64, 64]);
  const values = Array.from(dicomLung.raster.data);
  assert.ok(Math.max(...values) - Math.min(...values) > 100, 'the DICOM preview shows the nodule against the lung');
  assert.notDeepEqual(values, Array.from(png(mediastinal[1].imageUrl).raster.data), 'the window changes the rendition');
  assert.deepEqual(Buffer.from(lung[2].imageUrl.split(',')[1], 'base64'), Buffer.from(TWIN, 'base64'), 'an 8-bit PNG query slice is shown as sent');

  const byCase = await svc.gql(`query ($input: SimilarCasesInput!) { similarCases(input: $input) { queryPreviews { offset } } }`, { input: { caseId: ids.get('hu16'), k: 1 } }, 'reader');
  assert.equal(byCase.errors, undefined);
  assert.equal(byCase.data.similarCases.queryPreviews, null);
});
