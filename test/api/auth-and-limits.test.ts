/**
 * Who may do what (reader < writer < admin, never open), and the GraphQL hygiene around it:
 * depth and cost limits, DataLoader batching, /healthz and /metrics.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { buildASTSchema, parse } from 'graphql';
import pino from 'pino';
import { startService } from '../../src/app.ts';
import type { Role } from '../../src/auth/api-keys.ts';
import { loadConfig } from '../../src/config.ts';
import { typeDefs } from '../../src/schema/index.ts';
import { createTestDatabase, usingPostgres } from '../../fixtures/test-database.ts';
import { phantomSlices } from '../../fixtures/phantom-cases.ts';
import { FIXTURE_MODEL, KEYS, startTestService, type TestService } from '../../fixtures/test-service.ts';

let svc: TestService;

before(async () => {
  svc = await startTestService();
  // 50 cases of 3 slices, each with a report, for the query-count test.
  for (let i = 0; i < 50; i++) {
    const res = await svc.gql(
      'mutation ($input: IngestCaseInput!) { ingestCase(input: $input) { id } }',
      { input: { patientKey: `P${i % 7}`, studyInstanceUid: `1.2.3.${i % 7}`, images: phantomSlices({ seed: i + 1, diameterPx: 6 + (i % 20) }), report: { text: `report ${i}` } } },
      'writer',
    );
    assert.equal(res.errors, undefined, JSON.stringify(res.errors));
  }
});

after(async () => svc?.stop());

const OPERATIONS: { name: string; query: string; role: Role }[] = [
  { name: 'similarCases', query: '{ similarCases(input: { caseId: "1" }) { tookMs } }', role: 'reader' },
  { name: 'case', query: '{ case(id: "1") { id } }', role: 'reader' },
  { name: 'caseByExternalId', query: '{ caseByExternalId(externalId: "x") { id } }', role: 'reader' },
  { name: 'cases', query: '{ cases { totalCount } }', role: 'reader' },
  { name: 'study', query: '{ study(studyInstanceUid: "1.2.3.1") { patientKey } }', role: 'reader' },
  { name: 'models', query: '{ models { id } }', role: 'reader' },
  { name: 'activeModel', query: '{ activeModel { id } }', role: 'reader' },
  { name: 'reindexJob', query: '{ reindexJob(id: "1") { id } }', role: 'admin' },
  { name: 'reindexJobs', query: '{ reindexJobs { id } }', role: 'admin' },
  { name: 'ingestCase', query: 'mutation { ingestCase(input: { patientKey: "p", images: [] }) { id } }', role: 'writer' },
  { name: 'attachReport', query: 'mutation { attachReport(input: { caseId: "1", report: { text: "t" } }) { id } }', role: 'writer' },
  { name: 'deleteCase', query: 'mutation { deleteCase(id: "999") }', role: 'admin' },
  { name: 'activateModel', query: 'mutation { activateModel(id: "999") { id } }', role: 'admin' },
  { name: 'registerModel', query: 'mutation { registerModel(path: "/nonexistent.onnx") { id } }', role: 'admin' },
  { name: 'reindex', query: 'mutation { reindex(modelId: "999") { id } }', role: 'admin' },
  { name: 'cancelReindex', query: 'mutation { cancelReindex(id: "999") { id } }', role: 'admin' },
  { name: 'createSliceUpload', query: 'mutation { createSliceUpload(contentType: "image/png", byteLength: 1000) { key } }', role: 'writer' },
  { name: 'importFromPacs', query: 'mutation { importFromPacs(input: { nodule: { studyInstanceUid: "1.2", seriesInstanceUid: "1.2.3", sopInstanceUid: "1.2.3.4", centerX: 1, centerY: 1 } }) { id } }', role: 'writer' },
];

/** Right shape, never issued; a role's key with a character added or missing; a key split by whitespace. */
const NOT_ISSUED = [
  'Bearer not-a-key-at-all',
  'Basic YWRtaW46YWRtaW4=',
  'Bearer ',
  `Bearer fcdn_admin_${'A'.repeat(32)}`,
  `Bearer ${KEYS.admin}0`,
  `Bearer ${KEYS.admin.slice(0, -1)}`,
  `Bearer ${KEYS.reader} ${KEYS.admin}`,
  `Bearer ${KEYS.writer.toUpperCase()}`,
  `Token ${KEYS.admin}`,
  `${KEYS.admin}`,
];

test('the role table covers every query and mutation in the schema', () => {
  const schema = buildASTSchema(parse(typeDefs.join('\n')));
  const fields = [...Object.keys(schema.getQueryType()!.getFields()), ...Object.keys(schema.getMutationType()!.getFields())];
  assert.deepEqual(fields.filter((f) => !OPERATIONS.some((o) => o.name === f)), [], 'operations missing from OPERATIONS');
});

async function post(query: string, authorization?: string) {
  const res = await fetch(`${svc.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) }, body: JSON.stringify({ query }) });
  return (await res.json()) as { errors?: { extensions?: { code?: string } }[]; data?: unknown };
}

test('every operation: no key, a wrong key or a malformed header is UNAUTHENTICATED; a lower role is FORBIDDEN', async () => {
  const rank: Record<Role, number> = { reader: 1, writer: 2, admin: 3 };
  for (const op of OPERATIONS) {
    for (const header of [undefined, ...NOT_ISSUED]) {
      const res = await post(op.query, header);
      assert.equal(res.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED', `${op.name} with ${header}`);
    }
    for (const role of ['reader', 'writer', 'admin'] as Role[]) {
      const res = await svc.gql(op.query, {}, role);
      const code = res.errors?.[0]?.extensions?.code;
      if (rank[role] < rank[op.role]) assert.equal(code, 'FORBIDDEN', `${op.name} as ${role}`);
      else assert.ok(code !== 'FORBIDDEN' && code !== 'UNAUTHENTICATED', `${op.name} as ${role} got ${code}`);
    }
  }
});

test('without configured keys the service makes an admin key in the data folder; it never runs open', async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcdn-keys-'));
  const db = await createTestDatabase();
  const config = loadConfig({ FCDN_DATA_DIR: dataDir, FCDN_MODEL: FIXTURE_MODEL, FCDN_EXECUTION_PROVIDER: 'cpu' });
  const service = await startService(config, { log: pino({ level: 'silent' }), database: db });
  try {
    assert.match(service.adminKey!, /^fcdn_admin_/);
    assert.equal(fs.readFileSync(path.join(dataDir, 'admin-api-key'), 'utf8').trim(), service.adminKey);
    assert.equal((fs.statSync(path.join(dataDir, 'admin-api-key')).mode & 0o077), 0, 'the key file is private');
  } finally {
    await service.close();
    await db.close();
  }
});

test('depth and cost limits refuse expensive operations with a code; the server keeps answering', async () => {
  const deep = '{ cases { edges { node { study { cases { study { cases { study { cases { study { cases { id } } } } } } } } } } } }';
  const d = await svc.gql(deep, {}, 'reader');
  assert.equal(d.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
  assert.match(d.errors![0]!.message, /levels deep/);
  const aliases = `{ ${Array.from({ length: 200 }, (_, i) => `a${i}: cases(first: 100) { edges { node { slices { codes { shallow } } } } }`).join(' ')} }`;
  const c = await svc.gql(aliases, {}, 'reader');
  assert.equal(c.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
  assert.match(c.errors![0]!.message, /would cost/);
  const bigK = await svc.gql('query ($k: Int) { similarCases(input: { caseId: "1", k: $k }) { hits { case { slices { codes { shallow middle deep } } reports { text } } } } }', { k: 1000 }, 'reader');
  assert.equal(bigK.errors?.[0]?.extensions?.code, undefined, 'k = 1000 with a normal selection is allowed');
  const ok = await svc.gql('{ activeModel { id } }', {}, 'reader');
  assert.equal(ok.errors, undefined);
});

test('DataLoader: listing 50 cases with slices, codes, reports and studies is a bounded number of SQL statements', async () => {
  let statements = 0;
  const stop = svc.db.onQuery(() => statements++);
  const res = await svc.gql('{ cases(first: 50) { totalCount edges { node { id study { studyInstanceUid reports { id } } slices { id imageUrl codes { shallow middle deep } } reports { text } } } } }', {}, 'reader');
  stop();
  assert.equal(res.errors, undefined, JSON.stringify(res.errors));
  assert.equal(res.data.cases.edges.length, 50);
  assert.ok(statements <= 12, `${statements} SQL statements for 50 cases`);
  console.log(`# 50 cases with studies, slices, codes and reports: ${statements} SQL statements`);
});

test('GET /healthz and GET /metrics', async () => {
  const health = await fetch(`${svc.url}/healthz`);
  assert.equal(health.status, 200);
  assert.equal(((await health.json()) as { status: string }).status, 'ok');
  await svc.gql('{ similarCases(input: { caseId: "2" }) { tookMs } }', {}, 'reader');
  const metrics = await (await fetch(`${svc.url}/metrics`)).text();
  assert.match(metrics, /fcdn_search_duration_seconds_count\{query_kind="CASE"\} [1-9]/);
  assert.match(metrics, /fcdn_graphql_errors_total\{code="/);
  // Nothing is decoding after the requests answered: no slice waits for a thread.
  assert.match(metrics, /fcdn_slice_decode_waiting\{kind="request"\} 0\b/);
  assert.match(metrics, /fcdn_slice_decode_waiting\{kind="background"\} 0\b/);
  if (usingPostgres) assert.match(metrics, /fcdn_db_pool_connections\{state="total"\} [1-9]/);
  else assert.doesNotMatch(metrics, /fcdn_db_pool_connections/);
});
