/**
 * A radiologist's story, over HTTP: cases are ingested with three slices, a report and a study;
 * searching by a stored case and by new images returns ranked hits whose distances are exactly
 * the Joint-distance formula applied to the returned codes, with reports and studies joined.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { compareHits, jointDistance, type SliceCodeSet } from '../../src/domain/joint-distance.ts';
import { databaseLabel } from '../../fixtures/test-database.ts';
import { phantomSlices } from '../../fixtures/phantom-cases.ts';
import { startTestService, type TestService } from '../../fixtures/test-service.ts';

let svc: TestService;

const CASE_FIELDS = `id externalId patientKey malignancyClass diameterMm
  study { studyInstanceUid patientKey }
  reports { text impression }
  slices { id offset imageUrl codes { shallow middle deep } }`;

const INGEST = `mutation ($input: IngestCaseInput!) { ingestCase(input: $input) { ${CASE_FIELDS} } }`;

const SEARCH = `query ($input: SimilarCasesInput!) {
  similarCases(input: $input) {
    model { id name active }
    tookMs
    hits { rank jointDistance shallowDistance middleDistance deepDistance case { ${CASE_FIELDS} } }
  }
}`;

// Eight nodules of four patients: small solid, large lobulated, ground-glass...
const SPECS = [
  { patient: 'PSEUDO-A', diameterPx: 8, texture: 'solid', malignancy: 2, mm: 6 },
  { patient: 'PSEUDO-A', diameterPx: 26, lobulation: 0.3, texture: 'solid', malignancy: 5, mm: 21 },
  { patient: 'PSEUDO-B', diameterPx: 9, texture: 'solid', malignancy: 1, mm: 7 },
  { patient: 'PSEUDO-B', diameterPx: 24, lobulation: 0.25, texture: 'part-solid', malignancy: 4, mm: 19 },
  { patient: 'PSEUDO-C', diameterPx: 14, texture: 'ground-glass', malignancy: 3, mm: 11 },
  { patient: 'PSEUDO-C', diameterPx: 10, texture: 'solid', malignancy: 2, mm: 8 },
  { patient: 'PSEUDO-D', diameterPx: 28, lobulation: 0.35, texture: 'solid', malignancy: 5, mm: 23 },
  { patient: 'PSEUDO-D', diameterPx: 12, texture: 'part-solid', malignancy: 3, mm: 9 },
] as const;

const ids: string[] = [];

function codesOf(c: { slices: { offset: number; codes: { shallow: string; middle: string; deep: string } }[] }): SliceCodeSet[] {
  return c.slices.map((s) => ({ offset: s.offset, ...s.codes }));
}

before(async () => {
  svc = await startTestService();
  for (const [i, spec] of SPECS.entries()) {
    const res = await svc.gql(
      INGEST,
      {
        input: {
          externalId: `story-${i}`,
          patientKey: spec.patient,
          studyInstanceUid: `1.2.826.0.1.3680043.10.${spec.patient.charCodeAt(7)}`,
          images: phantomSlices({ seed: i + 1, diameterPx: spec.diameterPx, texture: spec.texture, lobulation: 'lobulation' in spec ? spec.lobulation : 0 }),
          malignancy: spec.malignancy,
          diameterMm: spec.mm,
          findings: { lobe: 'RUL', phantom: true },
          report: { text: `Nodule ${i}: ${spec.mm} mm, ${spec.texture}.`, impression: spec.malignancy >= 4 ? 'suspicious' : 'likely benign' },
        },
      },
      'writer',
    );
    assert.equal(res.errors, undefined, JSON.stringify(res.errors));
    ids.push(res.data.ingestCase.id);
  }
});

after(async () => svc?.stop());

test(`ingested cases come back with three slices, codes, a study and a report (${databaseLabel})`, async () => {
  const res = await svc.gql(`query ($id: ID!) { case(id: $id) { ${CASE_FIELDS} } }`, { id: ids[1] }, 'reader');
  const c = res.data.case;
  assert.equal(c.externalId, 'story-1');
  assert.equal(c.malignancyClass, 'MALIGNANT', 'malignancy 5 gives the MALIGNANT class');
  assert.deepEqual(c.slices.map((s: { offset: number }) => s.offset), [-1, 0, 1]);
  for (const s of c.slices) for (const code of Object.values(s.codes) as string[]) assert.match(code, /^[01]{64}$/);
  assert.equal(c.study.patientKey, 'PSEUDO-A');
  assert.match(c.reports[0].text, /21 mm/);
  const image = await fetch(c.slices[1].imageUrl);
  assert.equal(image.status, 200);
  assert.equal(image.headers.get('content-type'), 'image/png');
  assert.deepEqual([...new Uint8Array(await image.arrayBuffer()).slice(1, 4)], [0x50, 0x4e, 0x47]);
  // Another first character (a signature may already start with 'x': then 'sig=x' changed nothing).
  const tampered = await fetch(c.slices[1].imageUrl.replace(/sig=(.)/, (_: string, first: string) => `sig=${first === 'x' ? 'y' : 'x'}`));
  assert.equal(tampered.status, 403);
});

test('search by a stored case ranks other patients by the Joint distance of the returned codes', async () => {
  const query = (await svc.gql(`query ($id: ID!) { case(id: $id) { ${CASE_FIELDS} } }`, { id: ids[0] }, 'reader')).data.case;
  const res = await svc.gql(SEARCH, { input: { caseId: ids[0], k: 10 } }, 'reader');
  assert.equal(res.errors, undefined, JSON.stringify(res.errors));
  const { hits, model, tookMs } = res.data.similarCases;
  assert.equal(model.active, true);
  assert.ok(tookMs > 0);
  assert.equal(hits.length, 6, 'the query case and the other case of the same patient are left out');
  assert.ok(hits.every((h: any) => h.case.patientKey !== 'PSEUDO-A'));
  const recomputed = hits.map((h: any) => ({ caseId: Number(h.case.id), ...jointDistance(codesOf(query), codesOf(h.case)) }));
  hits.forEach((h: any, i: number) => {
    assert.equal(h.rank, i + 1);
    assert.deepEqual(
      { shallow: h.shallowDistance, middle: h.middleDistance, deep: h.deepDistance, joint: h.jointDistance },
      { shallow: recomputed[i].shallowDistance, middle: recomputed[i].middleDistance, deep: recomputed[i].deepDistance, joint: recomputed[i].jointDistance },
    );
    assert.ok(h.case.reports.length === 1 && h.case.study.studyInstanceUid, 'reports and study are joined');
  });
  assert.deepEqual(recomputed.map((r: any) => r.caseId), [...recomputed].sort(compareHits).map((r) => r.caseId), 'ranked by Joint, then DM, then id');
});

test('search by new images finds the identical stored case first, at distance 0, with weights applied', async () => {
  const images = phantomSlices({ seed: 4, diameterPx: SPECS[3].diameterPx, texture: SPECS[3].texture, lobulation: SPECS[3].lobulation });
  const res = await svc.gql(SEARCH, { input: { images, k: 3, weights: { shallow: 0.5, middle: 2, deep: 1 } } }, 'reader');
  assert.equal(res.errors, undefined, JSON.stringify(res.errors));
  const [first, ...rest] = res.data.similarCases.hits;
  assert.equal(first.case.externalId, 'story-3');
  assert.equal(first.jointDistance, 0);
  assert.equal(rest.length, 2);
  const stored = (await svc.gql(`query ($id: ID!) { case(id: $id) { ${CASE_FIELDS} } }`, { id: ids[3] }, 'reader')).data.case;
  for (const h of rest) {
    const d = jointDistance(codesOf(stored), codesOf(h.case), { shallow: 0.5, middle: 2, deep: 1 });
    assert.equal(h.jointDistance, d.jointDistance);
  }
});

test('filters, patient exclusion and excludeSamePatient: false', async () => {
  const malignant = await svc.gql(SEARCH, { input: { caseId: ids[0], k: 20, filter: { malignancyClass: ['MALIGNANT'] } } }, 'reader');
  assert.deepEqual(malignant.data.similarCases.hits.map((h: any) => h.case.malignancyClass).sort(), ['MALIGNANT', 'MALIGNANT'], 'story-3 and story-6; story-1 is the query patient\'s');
  const sized = await svc.gql(SEARCH, { input: { caseId: ids[0], k: 20, filter: { minDiameterMm: 8, maxDiameterMm: 19 } } }, 'reader');
  assert.ok(sized.data.similarCases.hits.every((h: any) => h.case.diameterMm >= 8 && h.case.diameterMm <= 19));
  const withOwn = await svc.gql(SEARCH, { input: { caseId: ids[0], k: 20, excludeSamePatient: false, excludePatientKey: 'PSEUDO-B' } }, 'reader');
  const keys = withOwn.data.similarCases.hits.map((h: any) => h.case.externalId);
  assert.ok(keys.includes('story-1'), 'the same patient\'s other case is allowed');
  assert.ok(!keys.includes('story-0'), 'the query case itself never comes back');
  assert.ok(!keys.includes('story-2') && !keys.includes('story-3'), 'PSEUDO-B is left out');
});

test('the same query twice gives the same ranking (reproducible)', async () => {
  const a = await svc.gql(SEARCH, { input: { caseId: ids[5], k: 10 } }, 'reader');
  const b = await svc.gql(SEARCH, { input: { caseId: ids[5], k: 10 } }, 'reader');
  const strip = (r: any) => r.data.similarCases.hits.map((h: any) => [h.case.id, h.jointDistance]);
  assert.deepEqual(strip(a), strip(b));
});

test('re-ingesting an externalId replaces the case in place, and old images are removed', async () => {
  const before = await svc.service.store.list('cases/');
  const res = await svc.gql(INGEST, { input: { externalId: 'story-7', patientKey: 'PSEUDO-D', images: phantomSlices({ seed: 99, diameterPx: 18, slices: 5 }), malignancy: 4 } }, 'writer');
  assert.equal(res.errors, undefined, JSON.stringify(res.errors));
  assert.equal(res.data.ingestCase.id, ids[7]);
  assert.equal(res.data.ingestCase.slices.length, 5);
  assert.equal(res.data.ingestCase.reports.length, 0);
  const count = await svc.gql('{ cases { totalCount } }', {}, 'reader');
  assert.equal(count.data.cases.totalCount, SPECS.length);
  const after = await svc.service.store.list('cases/');
  assert.equal(after.length, before.length - 3 + 5);
});

test('cases: Relay pagination newest first, with filters', async () => {
  const seen: string[] = [];
  let cursor: string | null = null;
  for (;;) {
    const page: any = await svc.gql(`query ($after: String) { cases(first: 3, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id createdAt } } } }`, { after: cursor }, 'reader');
    seen.push(...page.data.cases.edges.map((e: any) => e.node.id));
    if (!page.data.cases.pageInfo.hasNextPage) break;
    cursor = page.data.cases.pageInfo.endCursor;
  }
  assert.equal(seen.length, SPECS.length);
  assert.equal(new Set(seen).size, SPECS.length);
  const filtered = await svc.gql(`{ cases(first: 50, filter: { patientKey: "PSEUDO-C" }) { totalCount edges { node { patientKey } } } }`, {}, 'reader');
  assert.equal(filtered.data.cases.totalCount, 2);
});

test('studies and reports: attachReport to a study, then read the study', async () => {
  const uid = `1.2.826.0.1.3680043.10.${'PSEUDO-B'.charCodeAt(7)}`;
  const attached = await svc.gql(`mutation ($input: AttachReportInput!) { attachReport(input: $input) { id text study { studyInstanceUid } case { id } } }`, { input: { studyInstanceUid: uid, report: { text: 'Follow-up CT in 3 months.', author: 'Dr. Pseudonym', issuedAt: '2026-01-02T03:04:05Z' } } }, 'writer');
  assert.equal(attached.errors, undefined, JSON.stringify(attached.errors));
  assert.equal(attached.data.attachReport.case, null);
  const study = await svc.gql(`query ($uid: String!) { study(studyInstanceUid: $uid) { patientKey cases { externalId } reports { text issuedAt } } }`, { uid }, 'reader');
  assert.equal(study.data.study.patientKey, 'PSEUDO-B');
  assert.equal(study.data.study.cases.length, 2);
  assert.ok(study.data.study.reports.some((r: any) => r.text === 'Follow-up CT in 3 months.' && r.issuedAt === '2026-01-02T03:04:05.000Z'));
});

test('deleteCase removes the case, its slices, codes and images', async () => {
  const victim = ids[6];
  const keys = (await svc.service.db.raw.query<{ image_key: string }>('SELECT image_key FROM slices WHERE case_id = $1', [Number(victim)])).map((r) => r.image_key);
  assert.equal(keys.length, 3);
  const res = await svc.gql('mutation ($id: ID!) { deleteCase(id: $id) }', { id: victim }, 'admin');
  assert.equal(res.data.deleteCase, true);
  for (const k of keys) assert.equal(await svc.service.store.exists(k), false);
  const [{ n }] = await svc.service.db.raw.query<{ n: number }>('SELECT count(*)::int AS n FROM slice_codes WHERE case_id = $1', [Number(victim)]);
  assert.equal(n, 0);
  const again = await svc.gql('mutation ($id: ID!) { deleteCase(id: $id) }', { id: victim }, 'admin');
  assert.equal(again.errors?.[0]?.extensions?.code, 'NOT_FOUND');
});
