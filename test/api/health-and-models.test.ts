/**
 * Issue 13, item 11:
 *  - GET /healthz (no key needed) answers a failure with a code, never the database's own error
 *    text (which can name hosts, users, paths); the detail goes to the log.
 *  - `models { executionProvider }` never loads a model for a reader, and a model whose load
 *    failed is not loaded again on every query: the outcome is kept.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { ModelVersion } from '../../src/resolvers/type.resolvers.ts';
import { ModelService } from '../../src/services/model.service.ts';
import type { SliceEncoder } from '../../src/services/ports.ts';
import { databaseLabel } from '../../fixtures/test-database.ts';
import { startTestService, type TestService } from '../../fixtures/test-service.ts';

let svc: TestService;
let rawLog = '';

before(async () => {
  svc = await startTestService({ overrides: { log: pino({ level: 'info' }, { write: (chunk: string) => void (rawLog += chunk) }) } });
});
after(async () => svc?.stop());

test(`/healthz reports a failed database with a code, not its error text; the detail is logged (${databaseLabel})`, async () => {
  const detail = 'password authentication failed for user "fcdn_prod" on db-7.internal.example:5432';
  const query = svc.db.raw.query;
  svc.db.raw.query = async () => {
    throw Object.assign(new Error(detail), { code: '28P01' });
  };
  try {
    const res = await fetch(`${svc.url}/healthz`);
    const text = await res.text();
    assert.equal(res.status, 503);
    assert.ok(!text.includes('fcdn_prod') && !text.includes('internal.example'), `the answer carries the database's error text: ${text}`);
    assert.deepEqual(JSON.parse(text), { status: 'unavailable', error: 'DATABASE_UNAVAILABLE' });
    assert.ok(rawLog.includes('db-7.internal.example'), 'the detail is in the log');
  } finally {
    svc.db.raw.query = query;
  }
  const ok = await fetch(`${svc.url}/healthz`);
  assert.equal(ok.status, 200);
});

test('models { executionProvider }: no model but the active one is loaded for a listing; a failed load is not retried per query', async () => {
  let loads = 0;
  const cpu = { executionProvider: 'cpu' } as SliceEncoder;
  const models = new ModelService({} as never, async (filePath: string) => {
    loads++;
    if (filePath === 'broken.onnx') throw new Error('protobuf parsing failed');
    return cpu;
  });
  const ctx = { services: { models } } as never;
  const version = (id: number, filePath: string, active = false) => ({ id, filePath, active }) as never;
  const provider = (v: never) => ModelVersion.executionProvider(v, {}, ctx);

  // A registered model nothing has needed yet: a reader's listing does not load it.
  assert.equal(await provider(version(1, 'idle.onnx')), 'not loaded');
  assert.equal(loads, 0, 'a reader listing models loaded one');
  // The active model, not loaded yet: loaded once (search and ingest need it anyway).
  assert.equal(await provider(version(4, 'active.onnx', true)), 'cpu');
  assert.equal(await provider(version(4, 'active.onnx', true)), 'cpu');
  assert.equal(loads, 1);
  // A model the service loaded (search, ingest, reindex): its provider.
  await models.encoder(version(2, 'used.onnx'));
  assert.equal(await provider(version(2, 'used.onnx')), 'cpu');
  // A model whose load failed: 'unavailable', from the kept outcome, on every later query.
  await assert.rejects(models.encoder(version(3, 'broken.onnx')), /protobuf/);
  const before = loads;
  for (let i = 0; i < 5; i++) assert.equal(await provider(version(3, 'broken.onnx')), 'unavailable');
  assert.equal(loads, before, 'each query retried the failed load');
  // Nor for an active model whose load failed.
  await assert.rejects(models.encoder(version(5, 'broken.onnx', true)), /protobuf/);
  const after5 = loads;
  for (let i = 0; i < 3; i++) assert.equal(await provider(version(5, 'broken.onnx', true)), 'unavailable');
  assert.equal(loads, after5);
});
