/**
 * Hostile GraphQL over HTTP: deep nesting, alias and directive floods, huge lists, batched
 * arrays, introspection where it is off, very long documents, fragment cycles and fan-outs.
 * Each is refused with a code, quickly, and a normal query right after still answers quickly.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { MAX_ALIASES, MAX_TOKENS } from '../../src/schema/limits.ts';
import { phantomSlices } from '../../fixtures/phantom-cases.ts';
import { KEYS, startTestService, type TestService } from '../../fixtures/test-service.ts';

let svc: TestService;
const MAX_BYTES = 4 * 1024 * 1024;
/** What "stays responsive" means here: a one-field query answered this fast right after an attack. */
const NORMAL_MS = 1500;

before(async () => {
  svc = await startTestService({ env: { FCDN_INTROSPECTION: 'false', FCDN_MAX_REQUEST_BYTES: String(MAX_BYTES) } });
  const res = await svc.gql('mutation ($i: IngestCaseInput!) { ingestCase(input: $i) { id } }', { i: { patientKey: 'PSEUDO-A', images: phantomSlices({ seed: 1, diameterPx: 8 }) } }, 'writer');
  assert.equal(res.errors, undefined, JSON.stringify(res.errors));
});

after(async () => svc?.stop());

async function post(body: string): Promise<{ status: number; code?: string; message?: string; ms: number; data?: unknown }> {
  const t0 = performance.now();
  const res = await fetch(`${svc.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${KEYS.reader}` }, body });
  const json = (await res.json()) as { data?: unknown; errors?: { message: string; extensions?: { code?: string } }[] };
  return { status: res.status, code: json.errors?.[0]?.extensions?.code, message: json.errors?.[0]?.message, data: json.data, ms: performance.now() - t0 };
}

const op = (query: string, variables?: unknown) => JSON.stringify({ query, variables });
const repeat = (n: number, f: (i: number) => string) => Array.from({ length: n }, (_, i) => f(i)).join(' ');
const fanOut = (n: number) => `{ ...F0 }\n${repeat(n, (i) => `fragment F${i} on Query { ...F${i + 1} ...F${i + 1} activeModel { id } }`)}\nfragment F${n} on Query { activeModel { id } }`;

interface Abuse {
  name: string;
  body: () => string;
  status: number;
  code: string;
  message: RegExp;
}

const ABUSES: Abuse[] = [
  { name: 'nesting 12 levels (valid fields)', body: () => op(`{ cases { edges { node { study { cases { study { cases { study { cases { study { cases { id } } } } } } } } } } } }`), status: 400, code: 'BAD_USER_INPUT', message: /levels deep/ },
  // The parser is recursive: a document nested deeper than its stack is refused by the RangeError
  // graphql-js catches (measured: before the token limit is reached); either way a parse failure.
  { name: 'nesting 3,000 levels', body: () => op(`{ ${'cases { edges { node { study { '.repeat(750)}id${' } } } }'.repeat(750)} }`), status: 400, code: 'GRAPHQL_PARSE_FAILED', message: new RegExp(`${MAX_TOKENS} tokens|Maximum call stack size exceeded`) },
  { name: '10,000 aliases of a field', body: () => op(`{ ${repeat(10_000, (i) => `a${i}: activeModel { id }`)} }`), status: 400, code: 'GRAPHQL_PARSE_FAILED', message: new RegExp(`${MAX_TOKENS} tokens`) },
  { name: `${MAX_ALIASES + 50} aliases of __typename`, body: () => op(`{ ${repeat(MAX_ALIASES + 50, (i) => `a${i}: __typename`)} }`), status: 400, code: 'BAD_USER_INPUT', message: /aliases; at most 100/ },
  { name: '11 aliased searches in one operation', body: () => op(`{ ${repeat(11, (i) => `s${i}: similarCases(input: { caseId: "1" }) { tookMs }`)} }`), status: 400, code: 'BAD_USER_INPUT', message: /would cost/ },
  { name: 'cases(first: 100000) with edges', body: () => op('{ cases(first: 100000) { edges { node { id } } } }'), status: 400, code: 'BAD_USER_INPUT', message: /would cost/ },
  { name: 'cases(first: 100000) { totalCount }', body: () => op('{ cases(first: 100000) { totalCount } }'), status: 200, code: 'BAD_USER_INPUT', message: /first must be an integer from 0 to 100/ },
  { name: 'similarCases k = 1,000,000', body: () => op('{ similarCases(input: { caseId: "1", k: 1000000 }) { hits { rank } } }'), status: 400, code: 'BAD_USER_INPUT', message: /would cost/ },
  { name: 'reindexJobs(first: 1000000) as reader', body: () => op('{ reindexJobs(first: 1000000) { id } }'), status: 400, code: 'BAD_USER_INPUT', message: /would cost/ },
  { name: 'a JSON array of 1,000 operations (batching)', body: () => JSON.stringify(Array.from({ length: 1000 }, () => ({ query: '{ activeModel { id } }' }))), status: 400, code: 'BAD_REQUEST', message: /batching disabled/ },
  { name: 'introspection __schema (FCDN_INTROSPECTION=false)', body: () => op('{ __schema { types { name fields { name } } } }'), status: 400, code: 'GRAPHQL_VALIDATION_FAILED', message: /introspection is not allowed/i },
  { name: 'introspection __type (FCDN_INTROSPECTION=false)', body: () => op('{ __type(name: "Query") { fields { name } } }'), status: 400, code: 'GRAPHQL_VALIDATION_FAILED', message: /introspection is not allowed/i },
  { name: '5 MB document (limit 4 MB)', body: () => op(`{ __typename }${' '.repeat(5 * 1024 * 1024)}`), status: 413, code: 'BAD_USER_INPUT', message: /larger than 4194304 bytes/ },
  { name: '2,000 directives on one field', body: () => op(`{ __typename ${'@skip(if: false) '.repeat(2000)}}`), status: 400, code: 'GRAPHQL_PARSE_FAILED', message: new RegExp(`${MAX_TOKENS} tokens`) },
  { name: '20 repeated directives', body: () => op(`{ __typename ${'@include(if: true) '.repeat(20)}}`), status: 400, code: 'GRAPHQL_VALIDATION_FAILED', message: /can only be used once/ },
  { name: 'fragment cycle', body: () => op('query { ...A } fragment A on Query { ...B activeModel { id } } fragment B on Query { ...A }'), status: 400, code: 'GRAPHQL_VALIDATION_FAILED', message: /Cannot spread fragment "A" within itself/ },
  { name: 'fragment fan-out (2^40 paths)', body: () => op(fanOut(40)), status: 400, code: 'BAD_USER_INPUT', message: /would cost/ },
  { name: '500 unused fragments', body: () => op(`{ __typename } ${repeat(500, (i) => `fragment U${i} on Query { __typename }`)}`), status: 400, code: 'GRAPHQL_VALIDATION_FAILED', message: /Fragment "U0" is never used/ },
  { name: 'variables nested 100,000 deep', body: () => `{"query":"query ($f: CaseFilter) { cases(filter: $f) { totalCount } }","variables":{"f":${'['.repeat(100_000)}${']'.repeat(100_000)}}}`, status: 400, code: 'BAD_USER_INPUT', message: /.+/ },
];

test(`GraphQL abuse: ${ABUSES.length} hostile requests refused with codes; a normal query answers right after each`, { timeout: 300_000 }, async () => {
  const table = ['| abuse | HTTP | code | refused in ms | next normal query ms |', '|---|---|---|---|---|'];
  const failures: string[] = [];
  for (const a of ABUSES) {
    const r = await post(a.body());
    const normal = await post(op('{ activeModel { id } }'));
    assert.equal(normal.code, undefined, `${a.name}: the normal query failed: ${normal.message}`);
    assert.ok(normal.ms < NORMAL_MS, `${a.name}: the normal query took ${normal.ms.toFixed(0)} ms`);
    if (r.status !== a.status || r.code !== a.code || !a.message.test(r.message ?? '')) failures.push(`${a.name}: HTTP ${r.status} ${r.code} ${r.message?.slice(0, 120)}`);
    table.push(`| ${a.name} | ${r.status} | ${r.code} | ${r.ms.toFixed(0)} | ${normal.ms.toFixed(0)} |`);
  }
  console.log(table.map((l) => `# ${l}`).join('\n'));
  assert.deepEqual(failures, []);
});

test('within the limits, the same shapes work: 100 aliases, k = 1000, __typename with introspection off, a 3 MB document', async () => {
  const aliases = await post(op(`{ ${repeat(MAX_ALIASES, (i) => `a${i}: __typename`)} }`));
  assert.equal(aliases.code, undefined, aliases.message);
  const k = await post(op('{ similarCases(input: { caseId: "1", k: 1000, excludeSamePatient: false }) { hits { rank } } }'));
  assert.equal(k.code, undefined, k.message);
  const typename = await post(op('{ __typename }'));
  assert.deepEqual(typename.data, { __typename: 'Query' });
  // A 3 MB document (under the 4 MB limit) of whitespace and a comment: linear lexing, answered.
  const long = await post(op(`# ${'x'.repeat(1024 * 1024)}\n{ __typename }${' '.repeat(2 * 1024 * 1024)}`));
  assert.deepEqual(long.data, { __typename: 'Query' });
  assert.ok(long.ms < 5000, `${long.ms.toFixed(0)} ms`);
});

test('introspection is on by default outside production (FCDN_INTROSPECTION)', async () => {
  const open = await startTestService({ env: { FCDN_INTROSPECTION: '' } });
  try {
    const res = await open.gql('{ __schema { queryType { name } } }', {}, 'reader');
    assert.deepEqual(res.data, { __schema: { queryType: { name: 'Query' } } });
  } finally {
    await open.stop();
  }
});
