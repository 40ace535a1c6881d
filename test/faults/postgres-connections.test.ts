/**
 * Postgres sessions killed under a running service (pg_terminate_backend from an admin
 * connection, aimed at the service's own backends) during ingest, search and reindex. The client
 * sees a clean SERVICE_UNAVAILABLE or a success, the service recovers by itself (no restart), and
 * no case is ever half-stored.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { assertInvariants } from '../support/invariants.ts';
import { phantomSlices } from '../../fixtures/phantom-cases.ts';
import { caseInput, INGEST, outcome, SEARCH_BY_CASE, SEARCH_BY_IMAGES, sleep, startRig, tally, until, type FaultRig } from './harness.ts';

const NEW_MODEL = path.resolve('test/fixtures/fcdn-untrained-b.onnx');
const BATCH = 16;
let rig: FaultRig;

before(async () => {
  rig = await startRig({ bucket: 'faults-pg-kill', env: { FCDN_REINDEX_BATCH_SIZE: '2', FCDN_REINDEX_BATCH_DELAY_MS: '60' } });
});
after(async () => rig?.close());

/** Kills the service's sessions every `everyMs` until `done` settles; counts the sessions killed mid-query or mid-transaction. */
async function killWhile(done: Promise<unknown>, everyMs: number): Promise<{ rounds: number; killed: number; busy: number }> {
  let finished = false;
  void done.finally(() => (finished = true));
  const k = { rounds: 0, killed: 0, busy: 0 };
  while (!finished) {
    const { killed, busy } = await rig.terminate();
    k.rounds++;
    k.killed += killed;
    k.busy += busy;
    await sleep(everyMs);
  }
  return k;
}

const describe = (k: { rounds: number; killed: number; busy: number }) => `${k.rounds} kill rounds, ${k.killed} sessions killed (${k.busy} in a query or transaction)`;

test('sessions killed during a batch of ingests: clean errors, then the same ingests succeed without a restart', async () => {
  const batch = Promise.all(Array.from({ length: BATCH }, (_, i) => rig.svc.gql(INGEST, { input: caseInput(i) }, 'writer')));
  const kills = await killWhile(batch, 150);
  const outcomes = (await batch).map(outcome);
  const seen = tally(outcomes);
  console.log(`# ingest under pg_terminate_backend: ${describe(kills)}; client saw ${JSON.stringify(seen)}`);
  assert.deepEqual(Object.keys(seen).filter((c) => c !== 'ok' && c !== 'SERVICE_UNAVAILABLE'), [], 'only successes and SERVICE_UNAVAILABLE');
  assert.ok((seen.SERVICE_UNAVAILABLE ?? 0) > 0, 'the kills broke some ingests');
  // Some cases were refused; the same service takes them now, and nothing is half-stored.
  await assertInvariants(rig.db.raw, rig.store, { slicesPerCase: 3 });
  for (let i = 0; i < BATCH; i++) {
    if (outcomes[i] === 'ok') continue;
    const again = await rig.svc.gql(INGEST, { input: caseInput(i) }, 'writer');
    assert.equal(outcome(again), 'ok', JSON.stringify(again.errors));
  }
  const totals = await assertInvariants(rig.db.raw, rig.store, { slicesPerCase: 3 });
  assert.equal(totals.cases, BATCH);
  assert.equal(totals.slices, BATCH * 3);
});

test('sessions killed during searches: answers or SERVICE_UNAVAILABLE, and the same answers afterwards', async () => {
  const images = phantomSlices({ seed: 99, diameterPx: 9 });
  const [first] = await rig.db.raw.query<{ id: number }>('SELECT min(id) AS id FROM nodule_cases');
  const baseline = await rig.svc.gql(SEARCH_BY_CASE, { id: String(first!.id) }, 'reader');
  assert.equal(outcome(baseline), 'ok');
  const searches = Promise.all(
    Array.from({ length: 40 }, (_, i) =>
      i % 2 ? rig.svc.gql(SEARCH_BY_CASE, { id: String(first!.id) }, 'reader') : rig.svc.gql(SEARCH_BY_IMAGES, { images }, 'reader'),
    ),
  );
  const kills = await killWhile(searches, 30);
  const results = await searches;
  const seen = tally(results.map(outcome));
  console.log(`# search under pg_terminate_backend: ${describe(kills)}; client saw ${JSON.stringify(seen)}`);
  assert.ok(kills.busy > 0, 'sessions were killed while searches used them');
  assert.deepEqual(Object.keys(seen).filter((c) => c !== 'ok' && c !== 'SERVICE_UNAVAILABLE'), [], 'only answers and SERVICE_UNAVAILABLE');
  for (const r of results.filter((r, i) => i % 2 && !r.errors)) assert.deepEqual(r.data, baseline.data, 'a search that answered gave the right answer');
  const afterwards = await rig.svc.gql(SEARCH_BY_CASE, { id: String(first!.id) }, 'reader');
  assert.deepEqual(afterwards.data, baseline.data);
  await assertInvariants(rig.db.raw, rig.store, { slicesPerCase: 3 });
});

test('one kill during searches is invisible: a search only reads, so it is retried on a new connection', async () => {
  const [first] = await rig.db.raw.query<{ id: number }>('SELECT min(id) AS id FROM nodule_cases');
  const baseline = await rig.svc.gql(SEARCH_BY_CASE, { id: String(first!.id) }, 'reader');
  let hit = 0;
  let rounds = 0;
  // Rounds of 20 searches; each round one kill, at a different moment, until one lands on a session in use.
  while (hit === 0 && rounds < 40) {
    rounds++;
    const searches = Promise.all(Array.from({ length: 20 }, () => rig.svc.gql(SEARCH_BY_CASE, { id: String(first!.id) }, 'reader')));
    await sleep(5 + ((rounds * 13) % 60));
    hit = (await rig.terminate()).busy;
    const results = await searches;
    assert.deepEqual(tally(results.map(outcome)), { ok: 20 }, 'every search answered');
    for (const r of results) assert.deepEqual(r.data, baseline.data);
  }
  console.log(`# one kill during 20 searches: ${hit} session(s) in use killed (round ${rounds}); the client saw 20 answers`);
  assert.ok(hit > 0, 'a kill landed on a session in use');
});

test('sessions killed during a reindex: the job picks itself up and finishes without a restart', async () => {
  const registered = await rig.svc.gql('mutation ($p: String!) { registerModel(path: $p) { id } }', { p: NEW_MODEL });
  assert.equal(outcome(registered), 'ok', JSON.stringify(registered.errors));
  const modelId = registered.data.registerModel.id;
  const started = await rig.svc.gql('mutation ($m: ID!) { reindex(modelId: $m) { id total } }', { m: modelId });
  const jobId = started.data.reindex.id;
  const JOB = 'query ($id: ID!) { reindexJob(id: $id) { status done total failed error model { active } } }';
  const finished = until('the reindex to finish', async () => {
    const res = await rig.svc.gql(JOB, { id: jobId });
    const job = res.data?.reindexJob;
    return job && !['QUEUED', 'RUNNING'].includes(job.status) ? job : undefined;
  }, 120_000, 200);
  // Kill every 100 ms: several batches die mid-transaction, the worker claims its job again. (The
  // job spends most of its time decoding and encoding off the database, on its threads, so a
  // slower cadence can miss every transaction.)
  const kills = await killWhile(finished, 100);
  const job = await finished;
  console.log(`# reindex under pg_terminate_backend: ${describe(kills)}; job ${job.status}, done ${job.done}/${job.total}`);
  assert.equal(job.status, 'SUCCEEDED', job.error ?? '');
  assert.equal(job.failed, 0);
  assert.equal(job.model.active, true);
  assert.ok(kills.busy >= 2, 'the job ran through several kills of sessions in use');
  await assertInvariants(rig.db.raw, rig.store, { slicesPerCase: 3 });
});
