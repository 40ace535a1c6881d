/**
 * The object store (s3rver, over the S3 protocol) unreachable under a running service, during
 * ingest and during deleteCase. An ingest is refused with SERVICE_UNAVAILABLE and stores nothing;
 * a delete removes the case's rows and queues its images, which are removed once the store is
 * back (the deletion outbox, src/services/object-janitor.ts, retries until they are).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { startS3rver, type RunningS3rver } from '../../scripts/start-s3rver.ts';
import { assertInvariants } from '../support/invariants.ts';
import { caseInput, INGEST, outcome, sleep, startRig, tally, until, type FaultRig } from './harness.ts';

const s3Dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcdn-s3-fault-'));
let s3: RunningS3rver;
let rig: FaultRig;
/** S3_TIMEOUT_MS of the service: how long it waits on a silent store. */
const STORE_TIMEOUT_MS = 1000;

before(async () => {
  s3 = await startS3rver({ directory: s3Dir });
  rig = await startRig({ bucket: 'faults-s3', s3, env: { FCDN_JANITOR_POLL_MS: '300', S3_TIMEOUT_MS: String(STORE_TIMEOUT_MS) } });
});
after(async () => {
  await rig?.close();
  await s3?.close();
  fs.rmSync(s3Dir, { recursive: true, force: true });
});

/** Brings the store back on the same port and folder. */
async function restartStore(): Promise<void> {
  s3 = await startS3rver({ port: s3.port, directory: s3Dir });
}

/**
 * In the store's place, on its port: a server that accepts connections and never answers (a hung
 * MinIO, a black-holing proxy). Returns how many connections it took, and a way to stop it.
 */
async function hangStore(): Promise<{ connections(): number; close(): Promise<void> }> {
  await s3.close();
  const sockets = new Set<net.Socket>();
  let taken = 0;
  const server = net.createServer((socket) => {
    taken++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(s3.port, '127.0.0.1', resolve));
  return {
    connections: () => taken,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Image files s3rver holds for the bucket (its folder layout: one file per object plus metadata). */
function storedFiles(): number {
  const dir = path.join(s3Dir, 'faults-s3');
  return fs.existsSync(dir) ? fs.readdirSync(dir, { recursive: true }).filter((f) => String(f).endsWith('.png._S3rver_object')).length : 0;
}

/** The fewest removal attempts the outbox records for these keys (0 when none). */
async function removalAttempts(keys: string[]): Promise<number> {
  const [row] = await rig.db.raw.query<{ attempts: number | null }>('SELECT min(attempts)::int AS attempts FROM pending_object_deletions WHERE object_key = ANY($1::text[])', [keys]);
  return row?.attempts ?? 0;
}

/** Waits until the janitor has removed these keys' objects and their outbox rows. */
async function untilRemoved(keys: string[]): Promise<void> {
  await until('the outbox to drain', async () => {
    const [row] = await rig.db.raw.query<{ n: number }>('SELECT count(*)::int AS n FROM pending_object_deletions WHERE object_key = ANY($1::text[])', [keys]);
    return row!.n === 0 ? true : undefined;
  }, 30_000);
  for (const key of keys) assert.equal(await rig.store.exists(key), false, `${key} removed`);
}

async function count(sql: string): Promise<number> {
  const [row] = await rig.db.raw.query<{ n: number }>(`SELECT (${sql})::int AS n`);
  return row!.n;
}

test('store down during ingest: SERVICE_UNAVAILABLE, nothing stored; the same ingest succeeds once it is back', async () => {
  for (let i = 0; i < 3; i++) assert.equal(outcome(await rig.svc.gql(INGEST, { input: caseInput(i, 'S') }, 'writer')), 'ok');
  await s3.close();
  const refused = await rig.svc.gql(INGEST, { input: caseInput(10, 'S') }, 'writer');
  assert.equal(outcome(refused), 'SERVICE_UNAVAILABLE');
  assert.match(refused.errors![0]!.message, /object store is unreachable/);
  assert.equal(await count("SELECT count(*) FROM nodule_cases WHERE external_id = 'S-10'"), 0, 'no case row');
  assert.equal(await count('SELECT count(*) FROM nodule_cases'), 3);

  await restartStore();
  assert.equal(outcome(await rig.svc.gql(INGEST, { input: caseInput(10, 'S') }, 'writer')), 'ok');
  const totals = await assertInvariants(rig.db.raw, rig.store, { slicesPerCase: 3 });
  assert.equal(totals.cases, 4);
});

test('store stopped in the middle of a batch of ingests: each one whole or refused, no image left behind', async () => {
  const before = storedFiles();
  const batch = Promise.all(Array.from({ length: 12 }, (_, i) => rig.svc.gql(INGEST, { input: caseInput(20 + i, 'S') }, 'writer')));
  // Stopped once the first images have arrived: some ingests have uploaded part of their images.
  await until('the first uploads', async () => (storedFiles() >= before + 4 ? true : undefined), 60_000, 5);
  await s3.close();
  const outcomes = (await batch).map(outcome);
  const seen = tally(outcomes);
  console.log(`# ingest with the store stopped mid-batch (after ${storedFiles() - before} new image files): ${JSON.stringify(seen)}`);
  assert.deepEqual(Object.keys(seen).filter((c) => c !== 'ok' && c !== 'SERVICE_UNAVAILABLE'), [], 'only successes and SERVICE_UNAVAILABLE');
  await restartStore();
  // Images uploaded by ingests that then failed are removed once the store answers again.
  await assertInvariants(rig.db.raw, rig.store, { slicesPerCase: 3 });
  for (const [i, o] of outcomes.entries()) {
    if (o !== 'ok') assert.equal(outcome(await rig.svc.gql(INGEST, { input: caseInput(20 + i, 'S') }, 'writer')), 'ok');
  }
  const totals = await assertInvariants(rig.db.raw, rig.store, { slicesPerCase: 3 });
  assert.equal(totals.cases, 4 + 12);
});

test('store down during deleteCase: the case is gone at once, its images are removed when the store is back', async () => {
  const [victim] = await rig.db.raw.query<{ id: number; keys: string[] }>(
    "SELECT c.id, array_agg(s.image_key) AS keys FROM nodule_cases c JOIN slices s ON s.case_id = c.id WHERE c.external_id = 'S-0' GROUP BY c.id",
  );
  assert.equal(victim!.keys.length, 3);
  await s3.close();
  const deleted = await rig.svc.gql('mutation ($id: ID!) { deleteCase(id: $id) }', { id: String(victim!.id) }, 'admin');
  assert.equal(outcome(deleted), 'ok', JSON.stringify(deleted.errors));
  assert.equal(deleted.data.deleteCase, true);
  assert.equal((await rig.svc.gql('query ($id: ID!) { case(id: $id) { id } }', { id: String(victim!.id) }, 'reader')).data.case, null);
  // The janitor keeps trying while the store is down.
  const tries = await until('two failed removal attempts', async () => {
    const attempts = await removalAttempts(victim!.keys);
    return attempts >= 2 ? attempts : undefined;
  }, 30_000);
  const stillThere = fs.readdirSync(path.join(s3Dir, 'faults-s3'), { recursive: true }).filter((f) => victim!.keys.some((k) => String(f) === `${k}._S3rver_object`)).length;

  await restartStore();
  await untilRemoved(victim!.keys);
  console.log(`# deleteCase with the store down: rows removed at once, ${stillThere} image files still on disk after ${tries} failed removal attempts; all removed once the store was back`);
  assert.ok(stillThere > 0, 'the images outlived the store outage');
  const totals = await assertInvariants(rig.db.raw, rig.store, { slicesPerCase: 3 });
  assert.equal(totals.cases, 4 + 12 - 1);
});

test('store hangs (accepts connections, never answers): ingest fails in bounded time with SERVICE_UNAVAILABLE, searches go on, deletes are retried', async () => {
  const casesBefore = await count('SELECT count(*) FROM nodule_cases');
  const [victim] = await rig.db.raw.query<{ id: number; keys: string[] }>(
    "SELECT c.id, array_agg(s.image_key) AS keys FROM nodule_cases c JOIN slices s ON s.case_id = c.id WHERE c.external_id = 'S-1' GROUP BY c.id",
  );
  const hung = await hangStore();
  try {
    const t0 = performance.now();
    const ingest = rig.svc.gql(INGEST, { input: caseInput(40, 'S') }, 'writer');
    // While the ingest waits on the silent store, searches (which need no images) are answered.
    const search = await rig.svc.gql('query ($id: ID!) { similarCases(input: { caseId: $id, k: 5 }) { hits { rank } } }', { id: String(victim!.id) }, 'reader');
    const searchMs = performance.now() - t0;
    const refused = await ingest;
    const ingestMs = performance.now() - t0;
    assert.equal(outcome(search), 'ok', JSON.stringify(search.errors));
    assert.ok(searchMs < STORE_TIMEOUT_MS, `a search took ${searchMs.toFixed(0)} ms while the store hung`);
    assert.equal(outcome(refused), 'SERVICE_UNAVAILABLE');
    assert.match(refused.errors![0]!.message, /object store did not answer in time/);
    assert.ok(ingestMs >= STORE_TIMEOUT_MS && ingestMs < STORE_TIMEOUT_MS * 4, `refused after ${ingestMs.toFixed(0)} ms`);
    assert.ok(hung.connections() > 0, 'the service did talk to the hung store');
    assert.equal(await count("SELECT count(*) FROM nodule_cases WHERE external_id = 'S-40'"), 0, 'no case row');

    const deleted = await rig.svc.gql('mutation ($id: ID!) { deleteCase(id: $id) }', { id: String(victim!.id) }, 'admin');
    assert.equal(outcome(deleted), 'ok', JSON.stringify(deleted.errors));
    await until('a removal attempt that timed out', async () => ((await removalAttempts(victim!.keys)) >= 1 ? true : undefined), 30_000);
    console.log(`# store hung: ingest SERVICE_UNAVAILABLE after ${ingestMs.toFixed(0)} ms (S3_TIMEOUT_MS ${STORE_TIMEOUT_MS}), a search meanwhile in ${searchMs.toFixed(0)} ms, ${hung.connections()} connections held by the hung store`);
  } finally {
    await hung.close();
  }
  await restartStore();
  await untilRemoved(victim!.keys);
  assert.equal(outcome(await rig.svc.gql(INGEST, { input: caseInput(40, 'S') }, 'writer')), 'ok');
  const totals = await assertInvariants(rig.db.raw, rig.store, { slicesPerCase: 3 });
  assert.equal(totals.cases, casesBefore - 1 + 1);
});
