/**
 * Injection: SQL in every text argument (ids, externalIds, patient keys, filters, report text),
 * NUL characters and megabyte strings reach the database only as parameters. Accepted text is
 * stored byte for byte; refused text gets BAD_USER_INPUT (never a 500) and writes nothing; and
 * afterwards every table is still there with the row counts the accepted requests explain.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { databaseLabel } from '../../fixtures/test-database.ts';
import { phantomSlices } from '../../fixtures/phantom-cases.ts';
import { startTestService, type TestService } from '../../fixtures/test-service.ts';

let svc: TestService;
const TABLES = ['patients', 'studies', 'nodule_cases', 'slices', 'slice_codes', 'diagnostic_reports', 'model_versions', 'reindex_jobs'];
const INGEST = 'mutation ($i: IngestCaseInput!) { ingestCase(input: $i) { id externalId reports { text impression author } } }';

const SQL = [
  "'); DROP TABLE nodule_cases; --",
  '" OR 1=1 --',
  "1; SELECT pg_sleep(30); --",
  "$$; DELETE FROM slices; $$",
  "\\'; TRUNCATE patients CASCADE; --",
  "' UNION SELECT api_key, NULL FROM pg_user --",
];
const MB = 'x'.repeat(1024 * 1024);

async function counts(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const t of TABLES) out[t] = (await svc.db.raw.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${t}`))[0]!.n;
  return out;
}

before(async () => {
  svc = await startTestService();
});
after(async () => svc?.stop());

test(`SQL in externalId, patientKey and report text is stored literally (${databaseLabel})`, async () => {
  const before = await counts();
  for (const [i, s] of SQL.entries()) {
    const res = await svc.gql(INGEST, { i: { externalId: `ext ${s}`, patientKey: `key ${s}`, images: phantomSlices({ seed: 50 + i, diameterPx: 8 }), report: { text: `text ${s}`, impression: `imp ${s}`, author: `by ${s}` } } }, 'writer');
    assert.equal(res.errors, undefined, `${s}: ${JSON.stringify(res.errors)}`);
    assert.deepEqual(res.data.ingestCase.reports, [{ text: `text ${s}`, impression: `imp ${s}`, author: `by ${s}` }]);
    const byExt = await svc.gql('query ($e: String!) { caseByExternalId(externalId: $e) { externalId } }', { e: `ext ${s}` }, 'reader');
    assert.equal(byExt.data.caseByExternalId.externalId, `ext ${s}`);
    const filtered = await svc.gql('query ($k: String) { cases(filter: { patientKey: $k }) { totalCount } }', { k: `key ${s}` }, 'reader');
    assert.equal(filtered.data.cases.totalCount, 1, `filter by the injected patient key finds exactly its case`);
    const stored = await svc.db.raw.query<{ n: number }>('SELECT count(*)::int AS n FROM diagnostic_reports WHERE text = $1 AND author = $2', [`text ${s}`, `by ${s}`]);
    assert.equal(stored[0]!.n, 1, 'the report text is in the table byte for byte');
  }
  const after = await counts();
  assert.equal(after.nodule_cases - before.nodule_cases, SQL.length);
  assert.equal(after.slices - before.slices, SQL.length * 3);
  assert.equal(after.diagnostic_reports - before.diagnostic_reports, SQL.length);
  assert.equal(after.patients - before.patients, SQL.length);
});

test('SQL in lookups, filters and ids finds nothing or is refused as not an id; nothing is written', async () => {
  const before = await counts();
  for (const s of SQL) {
    const lookups = await svc.gql(
      'query ($s: String!) { caseByExternalId(externalId: $s) { id } study(studyInstanceUid: $s) { patientKey } cases(filter: { patientKey: $s }) { totalCount } }',
      { s },
      'reader',
    );
    assert.equal(lookups.errors, undefined, JSON.stringify(lookups.errors));
    assert.deepEqual(lookups.data, { caseByExternalId: null, study: null, cases: { totalCount: 0 } });
    for (const query of [
      'query ($s: ID!) { case(id: $s) { id } }',
      'mutation ($s: ID!) { deleteCase(id: $s) }',
      'query ($s: ID!) { similarCases(input: { caseId: $s }) { tookMs } }',
      'mutation ($s: ID!) { attachReport(input: { caseId: $s, report: { text: "t" } }) { id } }',
      'query ($s: String) { cases(after: $s) { totalCount } }',
    ]) {
      const res = await svc.gql(query, { s }, 'admin');
      assert.equal(res.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT', `${query} with ${s}: ${JSON.stringify(res.errors)}`);
    }
    const search = await svc.gql('query ($s: String) { similarCases(input: { caseId: "1", excludePatientKey: $s, filter: { patientKey: $s } }) { hits { rank } } }', { s }, 'reader');
    assert.equal(search.errors, undefined, JSON.stringify(search.errors));
    assert.deepEqual(search.data.similarCases.hits, []);
  }
  const after = await counts();
  assert.deepEqual(after, before);
});

test('NUL characters (Postgres text cannot hold them) are BAD_USER_INPUT in every text argument, inline or as variables', async () => {
  const before = await counts();
  const nul = 'a\u0000b';
  const attempts: [string, Record<string, unknown>][] = [
    [INGEST, { i: { externalId: nul, patientKey: 'P-NUL', images: phantomSlices({ seed: 90, diameterPx: 8 }) } }],
    [INGEST, { i: { patientKey: nul, images: phantomSlices({ seed: 91, diameterPx: 8 }) } }],
    [INGEST, { i: { patientKey: 'P-NUL', images: phantomSlices({ seed: 92, diameterPx: 8 }), report: { text: nul } } }],
    ['mutation ($t: String!) { attachReport(input: { caseId: "1", report: { text: $t } }) { id } }', { t: nul }],
    ['query ($s: String!) { caseByExternalId(externalId: $s) { id } }', { s: nul }],
    ['query ($s: String) { cases(filter: { patientKey: $s }) { totalCount } }', { s: nul }],
    ['query ($s: String!) { study(studyInstanceUid: $s) { patientKey } }', { s: nul }],
    ['{ caseByExternalId(externalId: "a\\u0000b") { id } }', {}],
    ['mutation { attachReport(input: { caseId: "1", report: { text: "x\\u0000" } }) { id } }', {}],
  ];
  for (const [query, variables] of attempts) {
    const res = await svc.gql(query, variables, 'admin');
    assert.equal(res.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT', `${query}: ${JSON.stringify(res.errors)}`);
    assert.match(res.errors![0]!.message, /NUL/);
  }
  assert.deepEqual(await counts(), before);
});

test('megabyte strings: refused by length where a limit applies, otherwise only parameters', async () => {
  const before = await counts();
  const refused: [string, Record<string, unknown>, RegExp][] = [
    [INGEST, { i: { externalId: MB, patientKey: 'P-LONG', images: phantomSlices({ seed: 93, diameterPx: 8 }) } }, /externalId must be 1 to 256/],
    [INGEST, { i: { patientKey: MB, images: phantomSlices({ seed: 94, diameterPx: 8 }) } }, /patientKey is longer than 128/],
    [INGEST, { i: { patientKey: 'P-LONG', images: phantomSlices({ seed: 95, diameterPx: 8 }), report: { text: MB } } }, /longer than 100000/],
    ['query ($s: ID!) { case(id: $s) { id } }', { s: MB }, /not an id/],
    ['query ($s: String!) { study(studyInstanceUid: $s) { patientKey } }', { s: `1.2.${'3'.repeat(1024 * 1024)}` }, /.*/],
  ];
  for (const [query, variables, message] of refused) {
    const res = await svc.gql(query, variables, 'admin');
    const code = res.errors?.[0]?.extensions?.code;
    if (code === undefined) {
      assert.deepEqual(res.data, { study: null }, `${query}: only a lookup may answer without an error`);
      continue;
    }
    assert.equal(code, 'BAD_USER_INPUT', `${query}: ${JSON.stringify(res.errors)?.slice(0, 300)}`);
    assert.match(res.errors![0]!.message, message);
  }
  const lookups = await svc.gql('query ($s: String!) { caseByExternalId(externalId: $s) { id } cases(filter: { patientKey: $s }) { totalCount } }', { s: MB }, 'reader');
  assert.equal(lookups.errors, undefined, JSON.stringify(lookups.errors)?.slice(0, 300));
  assert.deepEqual(lookups.data, { caseByExternalId: null, cases: { totalCount: 0 } });
  assert.deepEqual(await counts(), before);
  // The longest accepted report (100,000 characters of SQL-looking text) is stored as sent.
  const longest = "'; DROP TABLE slices; --".repeat(5000).slice(0, 100_000);
  const res = await svc.gql('mutation ($t: String!) { attachReport(input: { caseId: "1", report: { text: $t } }) { text } }', { t: longest }, 'writer');
  assert.equal(res.errors, undefined, JSON.stringify(res.errors)?.slice(0, 300));
  const stored = await svc.db.raw.query<{ n: number }>('SELECT count(*)::int AS n FROM diagnostic_reports WHERE text = $1', [longest]);
  assert.equal(stored[0]!.n, 1);
});

test('afterwards every table exists and the search still answers', async () => {
  for (const t of TABLES) {
    const [row] = await svc.db.raw.query<{ r: string | null }>('SELECT to_regclass($1)::text AS r', [t]);
    assert.equal(row!.r, t);
  }
  const res = await svc.gql('{ similarCases(input: { caseId: "1", excludeSamePatient: false }) { hits { rank } } }', {}, 'reader');
  assert.equal(res.errors, undefined);
  assert.ok(res.data.similarCases.hits.length > 0);
});
