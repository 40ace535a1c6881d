/**
 * Bad input gets a clear GraphQL error with a code, and writes nothing: every table's row count
 * and every stored object are compared before and after each attempt.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { encodeGrayPng } from '../../src/imaging/index.ts';
import { makePhantomDicom, makePhantomPng } from '../../fixtures/phantoms.ts';
import { phantomHu } from '../../fixtures/phantoms.ts';
import { rawPng } from '../inference/support.ts';
import { databaseLabel } from '../../fixtures/test-database.ts';
import { phantomSlices } from '../../fixtures/phantom-cases.ts';
import { startTestService, type TestService } from '../../fixtures/test-service.ts';

let svc: TestService;
let storedCaseId: string;
const MAX_BYTES = 2 * 1024 * 1024;

const INGEST = 'mutation ($input: IngestCaseInput!) { ingestCase(input: $input) { id } }';
const SEARCH = 'query ($input: SimilarCasesInput!) { similarCases(input: $input) { hits { rank } } }';
const TABLES = ['patients', 'studies', 'nodule_cases', 'slices', 'slice_codes', 'diagnostic_reports', 'model_versions', 'reindex_jobs'];

const b64 = (buf: Buffer) => buf.toString('base64');
const png = makePhantomPng({ seed: 7, size: 64, diameterPx: 12 });
const good = (offset = 0) => ({ data: b64(png), offset });
const slices3 = phantomSlices({ seed: 5, diameterPx: 12 });

async function snapshot() {
  const counts: Record<string, number> = {};
  for (const t of TABLES) counts[t] = (await svc.db.raw.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${t}`))[0]!.n;
  return { counts, objects: await svc.service.store.list('') };
}

before(async () => {
  svc = await startTestService({ env: { FCDN_MAX_REQUEST_BYTES: String(MAX_BYTES), FCDN_DECODE_TIMEOUT_MS: '1000' } });
  const res = await svc.gql(INGEST, { input: { patientKey: 'PSEUDO-X', images: slices3, externalId: 'kept' } }, 'writer');
  storedCaseId = res.data.ingestCase.id;
});

after(async () => svc?.stop());

const truncated = png.subarray(0, 60);
const badCrc = Buffer.from(png);
badCrc[png.length - 20] ^= 0xff;
const oneBit = rawPng({ width: 64, height: 64, bitDepth: 1, colorType: 0 });
const palette = rawPng({ width: 64, height: 64, bitDepth: 8, colorType: 3, extra: [{ type: 'PLTE', data: Buffer.alloc(768) }] });
const bomb = rawPng({ width: 100_000, height: 100_000, bitDepth: 8, colorType: 0, idat: Buffer.alloc(16) });
const tiny = makePhantomPng({ seed: 1, size: 16, diameterPx: 4 });
const jpegDicom = makePhantomDicom({ seed: 3, transferSyntaxUid: '1.2.840.10008.1.2.4.50' });
/** A window-scaled 16-bit PNG (lung window x 65535, as the LIDC folder's files are), not HU + 32768 (issue 12). */
const windowScaled16 = (() => {
  const { width, height, hu } = phantomHu({ seed: 9, width: 64, height: 64, diameterPx: 14 });
  return encodeGrayPng(hu.map((v) => Math.min(1, Math.max(0, (v + 1350) / 1500)) * 65535), width, height, 16);
})();

interface Case {
  input: string;
  op: 'ingest' | 'search' | 'raw';
  variables?: Record<string, unknown>;
  query?: string;
  code: string;
  message: RegExp;
}

const ingest = (images: unknown[], extra: Record<string, unknown> = {}) => ({ input: { patientKey: 'PSEUDO-NEW', externalId: 'never', images, ...extra } });

const CASES: Case[] = [
  { input: 'non-image bytes', op: 'ingest', variables: ingest([{ data: b64(Buffer.from('this is a text file, not an image at all')) }]), code: 'BAD_USER_INPUT', message: /not an image we recognise/i },
  { input: 'bad base64', op: 'ingest', variables: ingest([{ data: '%%% not base64 %%%' }]), code: 'BAD_USER_INPUT', message: /not valid base64/ },
  { input: 'truncated PNG (3rd slice)', op: 'ingest', variables: ingest([...slices3.slice(0, 2), { data: b64(truncated), offset: 1 }].map((s, i) => ({ ...s, offset: i - 1 }))), code: 'BAD_USER_INPUT', message: /images\[2\].*(truncated|incomplete|corrupt)/i },
  { input: 'PNG with a corrupt CRC', op: 'ingest', variables: ingest([{ data: b64(badCrc) }]), code: 'BAD_USER_INPUT', message: /crc|corrupt/i },
  { input: '1-bit PNG', op: 'ingest', variables: ingest([{ data: b64(oneBit) }]), code: 'BAD_USER_INPUT', message: /1-bit grayscale image/ },
  { input: 'palette PNG', op: 'ingest', variables: ingest([{ data: b64(palette) }]), code: 'BAD_USER_INPUT', message: /palette|colou?r type/i },
  { input: 'PNG claiming 100000x100000', op: 'ingest', variables: ingest([{ data: b64(bomb) }]), code: 'BAD_USER_INPUT', message: /100000/ },
  { input: '16x16 PNG (too small)', op: 'ingest', variables: ingest([{ data: b64(tiny) }]), code: 'BAD_USER_INPUT', message: /16/ },
  { input: 'window-scaled 16-bit PNG (ingest)', op: 'ingest', variables: ingest([{ data: b64(windowScaled16) }]), code: 'BAD_USER_INPUT', message: /16-bit PNG refused: .*outside HU \+ 32768.*8-bit PNG.*HU \+ 32768/ },
  { input: 'window-scaled 16-bit PNG (search)', op: 'search', variables: { input: { images: [{ data: b64(windowScaled16), offset: 0 }], k: 3 } }, code: 'BAD_USER_INPUT', message: /images\[0\].*16-bit PNG refused.*8-bit PNG/ },
  { input: 'DICOM, JPEG baseline transfer syntax', op: 'ingest', variables: ingest([{ data: b64(jpegDicom) }]), code: 'BAD_USER_INPUT', message: /transfer syntax|1\.2\.840\.10008\.1\.2\.4\.50|JPEG/i },
  { input: '65 slices', op: 'ingest', variables: ingest(Array.from({ length: 65 }, (_, i) => good(i - 32))), code: 'BAD_USER_INPUT', message: /at most 64/ },
  { input: 'zero slices', op: 'ingest', variables: ingest([]), code: 'BAD_USER_INPUT', message: /at least one slice/ },
  { input: 'no centre slice', op: 'ingest', variables: ingest([good(1), good(2)]), code: 'BAD_USER_INPUT', message: /no centre slice/ },
  { input: 'duplicate offsets', op: 'ingest', variables: ingest([good(0), good(1), good(1)]), code: 'BAD_USER_INPUT', message: /same offset/ },
  { input: 'empty patientKey', op: 'ingest', variables: { input: { patientKey: ' ', images: [good()] } }, code: 'BAD_USER_INPUT', message: /patientKey/ },
  { input: 'malignancy 7', op: 'ingest', variables: ingest([good()], { malignancy: 7 }), code: 'BAD_USER_INPUT', message: /1 to 5/ },
  { input: 'studyInstanceUid not a UID', op: 'ingest', variables: ingest([good()], { studyInstanceUid: "1.2'; DROP TABLE studies;--" }), code: 'BAD_USER_INPUT', message: /not a DICOM UID/ },
  { input: 'k = 0', op: 'search', variables: { input: { images: [good()], k: 0 } }, code: 'BAD_USER_INPUT', message: /k must be/ },
  { input: 'k = 1001', op: 'search', variables: { input: { images: [good()], k: 1001 } }, code: 'BAD_USER_INPUT', message: /1 to 1000/ },
  { input: 'both caseId and images', op: 'search', variables: { input: { caseId: '1', images: [good()] } }, code: 'BAD_USER_INPUT', message: /exactly one of caseId/ },
  { input: 'neither caseId nor images', op: 'search', variables: { input: {} }, code: 'BAD_USER_INPUT', message: /exactly one of caseId/ },
  { input: 'negative weight', op: 'search', variables: { input: { images: [good()], weights: { middle: -1 } } }, code: 'BAD_USER_INPUT', message: /weights\.middle/ },
  { input: 'unknown caseId', op: 'search', variables: { input: { caseId: '999999' } }, code: 'NOT_FOUND', message: /no case with id 999999/ },
  { input: 'malformed caseId', op: 'search', variables: { input: { caseId: "1 OR 1=1" } }, code: 'BAD_USER_INPUT', message: /not an id/ },
  { input: 'deleteCase of an unknown id', op: 'raw', query: 'mutation { deleteCase(id: "424242") }', code: 'NOT_FOUND', message: /no case with id 424242/ },
  { input: 'attachReport to an unknown case', op: 'raw', query: 'mutation { attachReport(input: { caseId: "424242", report: { text: "x" } }) { id } }', code: 'NOT_FOUND', message: /no case/ },
  { input: 'activateModel of an unknown id', op: 'raw', query: 'mutation { activateModel(id: "77") { id } }', code: 'NOT_FOUND', message: /no model version/ },
  { input: 'cancelReindex of an unknown job', op: 'raw', query: 'mutation { cancelReindex(id: "77") { id } }', code: 'NOT_FOUND', message: /no reindex job/ },
  { input: 'a cursor we did not issue', op: 'raw', query: '{ cases(after: "garbage") { totalCount } }', code: 'BAD_USER_INPUT', message: /cursor/ },
  { input: 'oversized request (3 MB > 2 MB limit)', op: 'ingest', variables: ingest([{ data: 'A'.repeat(3 * 1024 * 1024) }]), code: 'BAD_USER_INPUT', message: /larger than 2097152 bytes/ },
];

test(`bad input: a clear error with a code, and nothing written (${CASES.length} inputs, ${databaseLabel})`, async () => {
  const table: string[] = ['| input | code | message |', '|---|---|---|'];
  const failures: string[] = [];
  for (const c of CASES) {
    const before = await snapshot();
    const query = c.op === 'ingest' ? INGEST : c.op === 'search' ? SEARCH : c.query!;
    const res = await svc.gql(query, c.variables, 'admin');
    const error = res.errors?.[0];
    assert.ok(error, `${c.input}: expected an error, got ${JSON.stringify(res.data)}`);
    if (error.extensions?.code !== c.code || !c.message.test(error.message)) failures.push(`${c.input}: ${error.extensions?.code} ${error.message}`);
    assert.deepEqual(await snapshot(), before, `${c.input}: something was written`);
    table.push(`| ${c.input} | ${error.extensions?.code} | ${error.message.replace(/\|/g, '\\|')} |`);
  }
  console.log(table.map((l) => `# ${l}`).join('\n'));
  assert.deepEqual(failures, [], 'codes and messages as expected');
});

test('a failed re-ingest of an existing case leaves the stored version untouched', async () => {
  const before = await snapshot();
  const res = await svc.gql(INGEST, { input: { patientKey: 'PSEUDO-X', externalId: 'kept', images: [good(0), { data: b64(truncated), offset: 1 }] } }, 'writer');
  assert.equal(res.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
  assert.deepEqual(await snapshot(), before);
  const kept = await svc.gql(`query { case(id: "${storedCaseId}") { slices { offset } } }`, {}, 'reader');
  assert.equal(kept.data.case.slices.length, 3);
});

test('a study belongs to one patient: ingesting it under another key is refused, nothing written', async () => {
  await svc.gql(INGEST, { input: { patientKey: 'PSEUDO-Y', studyInstanceUid: '1.2.3.4.5', images: [good()] } }, 'writer');
  const before = await snapshot();
  const res = await svc.gql(INGEST, { input: { patientKey: 'PSEUDO-Z', studyInstanceUid: '1.2.3.4.5', images: [good()] } }, 'writer');
  assert.equal(res.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
  assert.match(res.errors![0]!.message, /another patient/);
  assert.deepEqual(await snapshot(), before);
});

test('a slice the decoder spins on is stopped at the deadline and refused; other requests are answered meanwhile', async () => {
  // Two bytes inserted into a JPEG-LS frame keep CharLS busy for 7.5-15 s (found by the fuzz suite).
  const jpegLs = makePhantomDicom({ seed: 14, rows: 48, columns: 48, transferSyntaxUid: '1.2.840.10008.1.2.4.80' });
  const at = jpegLs.indexOf(Buffer.from([0xff, 0xf7])) + 60;
  const spinning = Buffer.concat([jpegLs.subarray(0, at), Buffer.alloc(2), jpegLs.subarray(at)]);
  const before = await snapshot();
  const t0 = performance.now();
  const ingestDone = svc.gql(INGEST, ingest([good(0), { data: b64(spinning), offset: 1 }]), 'writer');
  // Meanwhile a reader lists cases, one request after the other.
  const listingMs: number[] = [];
  let settled = false;
  void ingestDone.finally(() => (settled = true));
  while (!settled) {
    const q0 = performance.now();
    const listing = await svc.gql('{ cases(first: 5) { totalCount } }', {}, 'reader');
    assert.ok(listing.data?.cases.totalCount >= 1);
    listingMs.push(performance.now() - q0);
  }
  const res = await ingestDone;
  const elapsed = performance.now() - t0;
  assert.equal(res.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
  assert.match(res.errors![0]!.message, /images\[1\] \(offset 1\): decoding the image took longer than 1000 ms/);
  assert.ok(elapsed < 3000, `refused after ${elapsed.toFixed(0)} ms`);
  assert.ok(listingMs.length >= 5 && Math.max(...listingMs) < 500, `listings during the decode: ${listingMs.length}, slowest ${Math.max(...listingMs).toFixed(0)} ms`);
  assert.deepEqual(await snapshot(), before);
  console.log(`# a slice CharLS spins on: BAD_USER_INPUT after ${elapsed.toFixed(0)} ms (FCDN_DECODE_TIMEOUT_MS 1000); ${listingMs.length} listings answered meanwhile, slowest ${Math.max(...listingMs).toFixed(0)} ms`);
  const metrics = await (await fetch(`${svc.url}/metrics`)).text();
  assert.match(metrics, /fcdn_slice_decode_abandoned_total\{reason="timeout"\} [1-9]/);
});

test('malformed GraphQL and JSON bodies get codes too', async () => {
  const res = await fetch(`${svc.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer admin-key-00001' }, body: '{"query": ' });
  const body = (await res.json()) as any;
  assert.equal(body.errors[0].extensions.code, 'BAD_USER_INPUT');
  const syntax = await svc.gql('{ cases { ', {}, 'reader');
  assert.equal(syntax.errors?.[0]?.extensions?.code, 'GRAPHQL_PARSE_FAILED');
  const unknownField = await svc.gql('{ cases { nope } }', {}, 'reader');
  assert.equal(unknownField.errors?.[0]?.extensions?.code, 'GRAPHQL_VALIDATION_FAILED');
});
