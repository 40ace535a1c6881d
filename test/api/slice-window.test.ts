/**
 * The slice window through the product (issue 11; PRODUCT.md "Joint distance"): a case ingested
 * with 30 slices is, to the search, the same case as its 3 central slices (FCDN_SLICE_WINDOW = 1,
 * the default); query slices outside the window (search by images, search by a stored case) do
 * not enter DL/DD either; FCDN_SLICE_WINDOW = 0 uses the centre slices only. The window of the
 * stored side in every SQL method: test/db/slice-window.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { jointDistance, type SliceCodeSet } from '../../src/domain/joint-distance.ts';
import { databaseLabel } from '../../fixtures/test-database.ts';
import { phantomSlices } from '../../fixtures/phantom-cases.ts';
import { startTestService, type TestService } from '../../fixtures/test-service.ts';

let svc: TestService;
const ids = new Map<string, string>();

const CASE_FIELDS = `id externalId slices { offset codes { shallow middle deep } }`;
const SEARCH = `query ($input: SimilarCasesInput!) {
  similarCases(input: $input) { hits { rank jointDistance shallowDistance middleDistance deepDistance case { ${CASE_FIELDS} } } }
}`;

type Hit = { rank: number; jointDistance: number; shallowDistance: number; middleDistance: number; deepDistance: number; case: { id: string; externalId: string; slices: { offset: number; codes: Record<'shallow' | 'middle' | 'deep', string> }[] } };

const LONG = phantomSlices({ seed: 11, diameterPx: 20, texture: 'solid', lobulation: 0.2, slices: 30 });
const centralOf = <T extends { offset: number }>(slices: T[], n: number) => slices.filter((s) => Math.abs(s.offset) <= n);
const codesOf = (c: Hit['case']): SliceCodeSet[] => c.slices.map((s) => ({ offset: s.offset, ...s.codes }));

async function ingest(name: string, patientKey: string, images: { data: string; offset: number }[]) {
  const res = await svc.gql(`mutation ($input: IngestCaseInput!) { ingestCase(input: $input) { id } }`, { input: { externalId: name, patientKey, images, malignancy: 3, diameterMm: 10 } }, 'writer');
  assert.equal(res.errors, undefined, JSON.stringify(res.errors));
  ids.set(name, res.data.ingestCase.id);
}

async function search(input: Record<string, unknown>, on = svc): Promise<Hit[]> {
  const res = await on.gql(SEARCH, { input: { k: 50, ...input } }, 'reader');
  assert.equal(res.errors, undefined, JSON.stringify(res.errors));
  return res.data.similarCases.hits;
}

const distancesOf = (hits: Hit[], name: string) => {
  const h = hits.find((x) => x.case.externalId === name);
  assert.ok(h, `${name} is among the hits`);
  return { dl: h.shallowDistance, dm: h.middleDistance, dd: h.deepDistance, joint: h.jointDistance };
};
const ranking = (hits: Hit[]) => hits.map((h) => ({ id: h.case.id, dl: h.shallowDistance, dm: h.middleDistance, dd: h.deepDistance, joint: h.jointDistance }));

before(async () => {
  svc = await startTestService();
  await ingest('long', 'PW-A', LONG); // all 30 slices stored (for display), as the importer does
  await ingest('central', 'PW-B', centralOf(LONG, 1));
  for (const [i, spec] of [
    { diameterPx: 8, texture: 'solid' },
    { diameterPx: 26, texture: 'part-solid' },
    { diameterPx: 14, texture: 'ground-glass' },
    { diameterPx: 18, texture: 'solid' },
  ].entries()) {
    await ingest(`other-${i}`, `PW-${'CDEF'[i]}`, phantomSlices({ seed: 20 + i, diameterPx: spec.diameterPx, texture: spec.texture as 'solid', slices: i === 3 ? 9 : 3 }));
  }
});

after(async () => svc?.stop());

test('FCDN_SLICE_WINDOW: default 1, integers 0 to 1000', () => {
  assert.equal(loadConfig({}).sliceWindow, 1);
  assert.equal(loadConfig({ FCDN_SLICE_WINDOW: '0' }).sliceWindow, 0);
  assert.equal(loadConfig({ FCDN_SLICE_WINDOW: '2' }).sliceWindow, 2);
  for (const bad of ['-1', '1.5', 'three', '1001']) assert.throws(() => loadConfig({ FCDN_SLICE_WINDOW: bad }), ConfigError, bad);
});

test(`a 30-slice case gives the distances of its 3 central slices; query slices outside the window change nothing (${databaseLabel})`, async () => {
  const query = phantomSlices({ seed: 31, diameterPx: 16, texture: 'part-solid', slices: 20 });
  const byImages = await search({ images: query });
  assert.deepEqual(distancesOf(byImages, 'long'), distancesOf(byImages, 'central'), 'by images: long = central');
  assert.deepEqual(ranking(byImages), ranking(await search({ images: centralOf(query, 1) })), 'the 20-slice query = its 3 central slices');

  // By a stored case: the 30-slice case and its central copy give the same ranking of the others.
  const byLong = await search({ caseId: ids.get('long') });
  const byCentral = await search({ caseId: ids.get('central') });
  const others = (hits: Hit[]) => ranking(hits.filter((h) => h.case.externalId.startsWith('other-')));
  assert.equal(others(byLong).length, 4);
  assert.deepEqual(others(byLong), others(byCentral), 'by case: long = central as the query');
  assert.deepEqual(distancesOf(byLong, 'central'), { dl: 0, dm: 0, dd: 0, joint: 0 });
  assert.deepEqual(distancesOf(byCentral, 'long'), { dl: 0, dm: 0, dd: 0, joint: 0 });

  // The returned codes (all stored slices) give the returned distances with the window applied.
  const long = byCentral.find((h) => h.case.externalId === 'long')!.case;
  assert.equal(long.slices.length, 30, 'every slice is kept for display');
  for (const h of byLong) {
    const d = jointDistance(codesOf(long), codesOf(h.case));
    assert.deepEqual(ranking([h])[0], { id: h.case.id, dl: d.shallowDistance, dm: d.middleDistance, dd: d.deepDistance, joint: d.jointDistance });
  }
  // Without the window the long case would not be its central copy (the test has teeth).
  const wide = (h: Hit) => jointDistance(codesOf(long), codesOf(h.case), undefined, 15);
  assert.ok(byLong.some((h) => wide(h).jointDistance !== h.jointDistance), 'the slices outside the window would have changed a distance');
});

test(`FCDN_SLICE_WINDOW=0: centre slices only (${databaseLabel})`, async () => {
  const zero = await startTestService({ db: svc.db, env: { FCDN_SLICE_WINDOW: '0' } });
  try {
    const byLong = await search({ caseId: ids.get('long') }, zero);
    const long = (await search({ caseId: ids.get('central') }, zero)).find((h) => h.case.externalId === 'long')!.case;
    assert.ok(byLong.length >= 5);
    for (const h of byLong) {
      const d = jointDistance(codesOf(long), codesOf(h.case), undefined, 0);
      assert.deepEqual(ranking([h])[0], { id: h.case.id, dl: d.shallowDistance, dm: d.middleDistance, dd: d.deepDistance, joint: d.jointDistance });
    }
    const query = phantomSlices({ seed: 31, diameterPx: 16, texture: 'part-solid', slices: 20 });
    assert.deepEqual(ranking(await search({ images: query }, zero)), ranking(await search({ images: centralOf(query, 0) }, zero)));
  } finally {
    await zero.stop({ dropDatabase: false });
  }
});
