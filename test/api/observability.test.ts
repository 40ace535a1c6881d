/**
 * An operator follows one PACS request through the logs by its x-request-id, and watches
 * inference time and ingest counts on /metrics. The logs never carry keys, images or variables.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { makePhantomPng } from '../../fixtures/phantoms.ts';
import { databaseLabel } from '../../fixtures/test-database.ts';
import { KEYS, startTestService, type TestService } from '../../fixtures/test-service.ts';

let svc: TestService;
const lines: Record<string, unknown>[] = [];
let rawLog = '';

before(async () => {
  const sink = {
    write(chunk: string) {
      rawLog += chunk;
      lines.push(JSON.parse(chunk));
    },
  };
  svc = await startTestService({ overrides: { log: pino({ level: 'debug' }, sink) } });
});

after(async () => svc?.stop());

const INGEST = 'mutation IngestForLogTest($input: IngestCaseInput!) { ingestCase(input: $input) { id } }';

async function post(body: unknown, headers: Record<string, string> = {}) {
  return fetch(`${svc.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${KEYS.writer}`, ...headers },
    body: JSON.stringify(body),
  });
}

const linesFor = (reqId: string) => lines.filter((l) => l.reqId === reqId);

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${svc.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : 0;
}

test(`a caller's x-request-id comes back and tags every log line of its request (${databaseLabel})`, async () => {
  const png = makePhantomPng({ seed: 3 }).toString('base64');
  const res = await post(
    { query: INGEST, variables: { input: { patientKey: 'PSEUDO-LOG', images: [{ data: png, offset: 0 }] } } },
    { 'x-request-id': 'pacs-7f3a.42:1' },
  );
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('x-request-id'), 'pacs-7f3a.42:1');
  assert.ok(((await res.json()) as { data?: { ingestCase?: { id: string } } }).data?.ingestCase?.id);

  const mine = linesFor('pacs-7f3a.42:1');
  const op = mine.find((l) => l.msg === 'graphql operation');
  assert.ok(op, 'one line for the GraphQL operation');
  assert.equal(op.operation, 'IngestForLogTest');
  assert.equal(op.type, 'mutation');
  assert.deepEqual(op.errors, []);
  const done = mine.find((l) => l.msg === 'request finished');
  assert.ok(done, 'one line when the response is sent');
  assert.deepEqual([done.method, done.path, done.status], ['POST', '/graphql', 200]);
  assert.equal(typeof done.ms, 'number');

  // Keys, image data and variables never reach the log.
  assert.ok(!rawLog.includes(KEYS.writer), 'API key logged');
  assert.ok(!rawLog.includes(png.slice(0, 40)), 'image data logged');
  assert.ok(!rawLog.includes('PSEUDO-LOG'), 'variables logged');
});

test('without an id, or with an unsafe one, the service makes one up and still returns it', async () => {
  const plain = await post({ query: '{ __typename }' });
  const made = plain.headers.get('x-request-id');
  assert.match(made ?? '', /^[0-9a-f-]{36}$/);
  assert.ok(linesFor(made!).some((l) => l.msg === 'request finished'));

  for (const unsafe of ['two words', 'x'.repeat(129), 'id\u00e9', '{"forged":1}']) {
    const res = await post({ query: '{ __typename }' }, { 'x-request-id': unsafe });
    const id = res.headers.get('x-request-id');
    assert.notEqual(id, unsafe);
    assert.match(id ?? '', /^[0-9a-f-]{36}$/);
  }
  assert.ok(!rawLog.includes('forged'), 'an unsafe id is not logged either');
});

test('errors are logged with their code and the request id; the signed image URL query is not logged', async () => {
  const res = await post(
    { query: INGEST, variables: { input: { patientKey: 'PSEUDO-BAD', images: [{ data: 'bm90IGFuIGltYWdl', offset: 0 }] } } },
    { 'x-request-id': 'bad-ingest-1' },
  );
  const body = (await res.json()) as { errors?: { extensions?: { code?: string } }[] };
  assert.equal(body.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
  const op = linesFor('bad-ingest-1').find((l) => l.msg === 'graphql operation');
  assert.deepEqual(op?.errors, ['BAD_USER_INPUT']);

  const img = await fetch(`${svc.url}/images/slices/1.png?expires=1&sig=secret-signature-value`, { headers: { 'x-request-id': 'img-1' } });
  assert.equal(img.status, 403);
  const done = linesFor('img-1').find((l) => l.msg === 'request finished');
  assert.equal(done?.path, '/images/slices/1.png');
  assert.ok(!rawLog.includes('secret-signature-value'));
});

test('an unexpected error is logged with the stack and the request id; the caller sees only the code', async () => {
  const cases = svc.service.services.cases;
  const original = cases.byExternalId;
  cases.byExternalId = async () => {
    throw new Error('simulated fault deep in the service');
  };
  try {
    const res = await post({ query: '{ caseByExternalId(externalId: "x") { id } }' }, { 'x-request-id': 'fault-1' });
    const body = (await res.json()) as { errors?: { message: string; extensions?: { code?: string } }[] };
    assert.equal(body.errors?.[0]?.extensions?.code, 'INTERNAL_SERVER_ERROR');
    assert.ok(!body.errors?.[0]?.message.includes('simulated'));
  } finally {
    cases.byExternalId = original;
  }
  const fault = linesFor('fault-1').find((l) => l.msg === 'unexpected error in a resolver');
  assert.ok(fault, 'the error line carries the request id');
  assert.match(JSON.stringify(fault.err), /simulated fault deep in the service/);
});

test('/metrics counts ingests by outcome and times inference', async () => {
  const stored = await metric('fcdn_ingest_cases_total{outcome="stored"}');
  const rejected = await metric('fcdn_ingest_cases_total{outcome="rejected"}');
  const runs = await metric('fcdn_inference_duration_seconds_count');
  const slices = await metric('fcdn_ingest_slices_total');
  assert.ok(stored >= 1 && rejected >= 1, `stored ${stored}, rejected ${rejected}`);
  assert.ok(runs >= 1, 'inference runs observed');

  const png = (seed: number) => makePhantomPng({ seed }).toString('base64');
  const res = await post({
    query: INGEST,
    variables: { input: { patientKey: 'PSEUDO-M', images: [-1, 0, 1].map((offset) => ({ data: png(10 + offset), offset })) } },
  });
  assert.equal(res.status, 200);
  assert.equal(await metric('fcdn_ingest_cases_total{outcome="stored"}'), stored + 1);
  assert.equal(await metric('fcdn_ingest_slices_total'), slices + 3);
  assert.ok((await metric('fcdn_inference_duration_seconds_count')) > runs);
  assert.ok((await metric('fcdn_inference_patches_total')) >= 3);
});
