/**
 * The Postgres server restarted (pg_ctl stop -m fast, then start) under a running service, during
 * ingest and during search. A private cluster is used (test/support/private-postgres.ts): the
 * machine's shared server is never restarted. While it is down the client gets
 * SERVICE_UNAVAILABLE; once it is back, the same service answers again, and nothing is half-stored.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { assertInvariants } from '../support/invariants.ts';
import { phantomSlices } from '../../fixtures/phantom-cases.ts';
import { startPrivatePostgres, type PrivatePostgres } from '../support/private-postgres.ts';
import { caseInput, INGEST, outcome, SEARCH_BY_CASE, SEARCH_BY_IMAGES, sleep, startRig, tally, until, type FaultRig } from './harness.ts';

let pg: PrivatePostgres;
let rig: FaultRig;

before(async () => {
  pg = await startPrivatePostgres();
  rig = await startRig({ serverUrl: pg.url, bucket: 'faults-pg-restart' });
});
after(async () => {
  await rig?.close();
  pg?.destroy();
});

const onlyCleanErrors = (seen: Record<string, number>) =>
  assert.deepEqual(Object.keys(seen).filter((c) => c !== 'ok' && c !== 'SERVICE_UNAVAILABLE'), [], 'only successes and SERVICE_UNAVAILABLE');

test('Postgres restarted during a batch of ingests: clean errors while down, the same service ingests again after', async () => {
  for (let i = 0; i < 4; i++) assert.equal(outcome(await rig.svc.gql(INGEST, { input: caseInput(i, 'R') }, 'writer')), 'ok');

  const batch = Promise.all(Array.from({ length: 12 }, (_, i) => rig.svc.gql(INGEST, { input: caseInput(100 + i, 'R') }, 'writer')));
  await sleep(300);
  await pg.stop();
  // While it is down: ingests and searches are refused cleanly, and quickly.
  const t0 = Date.now();
  const down = await Promise.all([
    rig.svc.gql(INGEST, { input: caseInput(200, 'R') }, 'writer'),
    rig.svc.gql(SEARCH_BY_CASE, { id: '1' }, 'reader'),
    rig.svc.gql('{ cases(first: 5) { totalCount } }', {}, 'reader'),
  ]);
  const downMs = Date.now() - t0;
  assert.deepEqual(down.map(outcome), ['SERVICE_UNAVAILABLE', 'SERVICE_UNAVAILABLE', 'SERVICE_UNAVAILABLE'], JSON.stringify(down.map((r) => r.errors)));
  assert.match(down[0]!.errors![0]!.message, /database is unreachable/);
  await pg.start();

  const outcomes = (await batch).map(outcome);
  const seen = tally(outcomes);
  console.log(`# ingest across a Postgres restart: batch of 12 saw ${JSON.stringify(seen)}; while down, refusals took ${downMs} ms`);
  onlyCleanErrors(seen);
  // Recovery without restarting the service: the refused ingests go through now.
  for (const [i, o] of outcomes.entries()) {
    if (o !== 'ok') assert.equal(outcome(await rig.svc.gql(INGEST, { input: caseInput(100 + i, 'R') }, 'writer')), 'ok');
  }
  assert.equal(outcome(await rig.svc.gql(INGEST, { input: caseInput(200, 'R') }, 'writer')), 'ok');
  const totals = await assertInvariants(rig.db.raw, rig.store, { slicesPerCase: 3 });
  assert.equal(totals.cases, 4 + 12 + 1);
});

test('Postgres restarted during searches: clean errors while down, the same answers after', async () => {
  const [first] = await rig.db.raw.query<{ id: number }>('SELECT min(id) AS id FROM nodule_cases');
  const id = String(first!.id);
  const baseline = await rig.svc.gql(SEARCH_BY_CASE, { id }, 'reader');
  assert.equal(outcome(baseline), 'ok');
  const images = phantomSlices({ seed: 7, diameterPx: 8 });
  const searches = Promise.all(Array.from({ length: 24 }, (_, i) => (i % 2 ? rig.svc.gql(SEARCH_BY_CASE, { id }, 'reader') : rig.svc.gql(SEARCH_BY_IMAGES, { images }, 'reader'))));
  await sleep(200);
  await pg.stop();
  const down = await rig.svc.gql(SEARCH_BY_CASE, { id }, 'reader');
  assert.equal(outcome(down), 'SERVICE_UNAVAILABLE');
  await sleep(500);
  await pg.start();
  const results = await searches;
  const seen = tally(results.map(outcome));
  console.log(`# search across a Postgres restart: 24 searches saw ${JSON.stringify(seen)}`);
  onlyCleanErrors(seen);
  for (const r of results.filter((r, i) => i % 2 && !r.errors)) assert.deepEqual(r.data, baseline.data);
  assert.deepEqual((await rig.svc.gql(SEARCH_BY_CASE, { id }, 'reader')).data, baseline.data, 'the same answer after the restart');
  await assertInvariants(rig.db.raw, rig.store, { slicesPerCase: 3 });
});

test('Postgres down: a signed /images URL answers 503 SERVICE_UNAVAILABLE, not an internal error; the same URL serves the image after', async () => {
  const stored = await rig.svc.gql<{ ingestCase: { id: string } }>(INGEST, { input: caseInput(300, 'I') }, 'writer');
  assert.equal(outcome(stored), 'ok');
  const res = await rig.svc.gql<{ case: { slices: { imageUrl: string }[] } }>('query ($id: ID!) { case(id: $id) { slices { imageUrl } } }', { id: stored.data!.ingestCase.id }, 'reader');
  const url = res.data!.case.slices[0]!.imageUrl;
  assert.equal((await fetch(url)).status, 200);
  await pg.stop();
  try {
    const down = await fetch(url);
    const body = (await down.json()) as { error: string; code: string };
    console.log(`# /images with Postgres down: ${down.status} ${JSON.stringify(body)}`);
    assert.equal(down.status, 503);
    assert.equal(body.code, 'SERVICE_UNAVAILABLE');
    assert.match(body.error, /database is unreachable/);
  } finally {
    await pg.start();
  }
  const again = await until('the image again', async () => {
    const r = await fetch(url);
    return r.status === 200 ? r : undefined;
  });
  assert.equal(again.headers.get('content-type'), 'image/png');
});
