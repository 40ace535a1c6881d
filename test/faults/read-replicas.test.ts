/**
 * Read replicas for real (issue 13; docs/scaling.md): a private PostgreSQL primary and a standby
 * made with `pg_basebackup -R` from it (fixtures/replicated-postgres.ts), the service with
 * FCDN_READ_DATABASE_URL pointing at the standby. Searches, listings and image reads go there;
 * writes, reindex and block rebuilds to the primary. Shown here:
 *   - after replay (the standby's pg_last_wal_replay_lsn at the primary's pg_current_wal_lsn), the
 *     standby's answers equal the primary's, with the packed blocks and dirty marks it replayed;
 *   - with replay paused while a reindex switches the primary to another model, the standby
 *     answers entirely with the model it has (model row, codes and ranking in one snapshot), and
 *     with the new one once it has replayed the switch;
 *   - the standby stopped: reads fall back to the primary, with a metric and a log line; started
 *     again: reads return to it.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { loadConfig, ConfigError } from '../../src/config.ts';
import { openDatabase, type Database } from '../../src/db/database.ts';
import { readNodeName } from '../../src/db/read-nodes.ts';
import { createRepositories } from '../../src/repositories/index.ts';
import { createTestDatabase, type TestDatabase } from '../../fixtures/test-database.ts';
import { setReplayPaused, startReplicatedPostgres, waitForReplay, type ReplicatedPostgres } from '../../fixtures/replicated-postgres.ts';
import { startTestService, type TestService } from '../../fixtures/test-service.ts';
import { caseInput, INGEST, until } from './harness.ts';

const MODEL_B = path.resolve('test/fixtures/fcdn-untrained-b.onnx');
const HITS = 'query ($id: ID!, $k: Int) { similarCases(input: { caseId: $id, k: $k }) { model { id } hits { rank case { id slices { offset } } jointDistance shallowDistance middleDistance deepDistance } } }';

let cluster: ReplicatedPostgres;
let db: TestDatabase;
let replica: Database;
let replicaUrl: string;
let node: string;
let svc: TestService;
const logLines: string[] = [];
const caseIds: number[] = [];

before(async () => {
  cluster = await startReplicatedPostgres({ standbys: 1 });
  db = await createTestDatabase({ serverUrl: cluster.primary.url() });
  replicaUrl = cluster.standbys[0]!.url(new URL(db.url!).pathname.slice(1));
  node = readNodeName(replicaUrl);
  await waitForReplay(db.url!, replicaUrl);
  replica = await openDatabase({ databaseUrl: replicaUrl });
  const log = pino({ level: 'info' }, new Writable({ write: (chunk, _enc, done) => void (logLines.push(String(chunk)), done()) }));
  svc = await startTestService({
    db,
    // DATABASE_URL: the primary (the core uses the database given); the standby for reads.
    env: { DATABASE_URL: db.url!, FCDN_READ_DATABASE_URL: replicaUrl, FCDN_REINDEX_BATCH_SIZE: '8' },
    overrides: { log },
  });
  // Writes go to the primary, as every mutation does.
  for (let n = 0; n < 14; n++) {
    const res = await svc.gql(INGEST, { input: caseInput(n, 'R') }, 'writer');
    assert.equal(res.errors, undefined, JSON.stringify(res.errors));
    caseIds.push(Number(res.data.ingestCase.id));
  }
});

after(async () => {
  await svc?.stop({ dropDatabase: false }).catch(() => {});
  await replica?.close().catch(() => {});
  await db?.close().catch(() => {});
  cluster?.destroy();
});

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${svc.url}/metrics`)).text();
  const m = new RegExp(`^${name}\\{node="${node.replace(/[.]/g, '\\.')}"\\} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

/** The same search, on the primary, through the same service code. */
async function onPrimary(caseId: number, k: number) {
  const a = await svc.service.services.search.similarCases({ caseId, k }, svc.service.repos.reads({ primary: true }));
  return { model: a.model.id, hits: a.hits.map((h) => [h.caseId, h.jointDistance, h.shallowDistance, h.middleDistance, h.deepDistance]) };
}

async function onReplica(caseId: number, k: number) {
  const res = await svc.gql(HITS, { id: String(caseId), k }, 'reader');
  assert.equal(res.errors, undefined, JSON.stringify(res.errors));
  const a = res.data.similarCases;
  for (const h of a.hits) assert.ok(h.case.slices.length > 0, 'the hit\'s case and slices were read on the same node');
  return { model: Number(a.model.id), hits: a.hits.map((h: any) => [Number(h.case.id), h.jointDistance, h.shallowDistance, h.middleDistance, h.deepDistance]) };
}

test('FCDN_READ_DATABASE_URL: one URL or a list; it needs a Postgres DATABASE_URL', () => {
  const one = 'postgres://postgres@127.0.0.1:5433/x';
  assert.deepEqual(loadConfig({ DATABASE_URL: one }).readNodes.urls, []);
  assert.deepEqual(loadConfig({ DATABASE_URL: one, FCDN_READ_DATABASE_URL: `${one}, ${one}2` }).readNodes.urls, [one, `${one}2`]);
  assert.throws(() => loadConfig({ FCDN_READ_DATABASE_URL: one }), ConfigError);
  assert.throws(() => loadConfig({ DATABASE_URL: one, FCDN_READ_DATABASE_URL: 'http://x' }), /not a postgres:\/\/ URL/);
});

test('after replay, the replica answers every search exactly as the primary, from the replicated blocks and dirty marks', async () => {
  const modelId = svc.service.model!.id;
  const primaryRepos = svc.service.repos;
  // Blocks are built on the primary only; then more ingests leave dirty marks behind them.
  const built = await primaryRepos.search.blocks.rebuild(modelId);
  assert.ok(built && built.cases === caseIds.length, `blocks built on the primary: ${JSON.stringify(built)}`);
  for (const n of [3, 4]) assert.equal((await svc.gql(INGEST, { input: { ...caseInput(n, 'R'), malignancy: 5 } }, 'writer')).errors, undefined);
  const lagMs = await waitForReplay(db.url!, replicaUrl);

  // The standby has the primary's blocks and dirty marks (ordinary tables, replicated).
  const onStandby = createRepositories(replica, { searchMethod: 'blocks' });
  const [p, r] = [await primaryRepos.search.blocks.status(modelId), await onStandby.search.blocks.status(modelId)];
  assert.ok(p?.built && p.dirty > 0, `the primary has blocks and dirty cases: ${JSON.stringify(p)}`);
  assert.deepEqual(r, p, 'the standby sees the same block set and dirty marks');
  assert.equal(await onStandby.search.method(), 'blocks');

  const readsBefore = await metric('fcdn_db_reads_total');
  for (const id of caseIds) {
    for (const k of [3, 10]) assert.deepEqual(await onReplica(id, k), await onPrimary(id, k), `case ${id}, k ${k}`);
  }
  // And the compiled search over the standby's blocks equals the plain SQL on the primary.
  const codes = await primaryRepos.codes.findForCase(modelId, caseIds[0]!);
  const centre = codes.find((c) => c.offset === 0)!;
  const s = { modelId, query: { shallow: codes.map((c) => c.shallow), middle: centre.middle, deep: codes.map((c) => c.deep) }, weights: { shallow: 1, middle: 1, deep: 1 }, k: 20 };
  assert.deepEqual(await onStandby.search.searchWith('blocks', s), await primaryRepos.search.searchWith('naive', s));
  assert.ok((await metric('fcdn_db_reads_total')) - readsBefore >= caseIds.length * 2, 'the searches ran on the standby');
  console.log(`# standby caught up ${lagMs} ms after the last write; ${caseIds.length * 2} searches equal`);
});

test('a lagging replica never mixes models: replay paused while a reindex switches the primary to model B', async () => {
  const modelA = svc.service.model!.id;
  const before = await Promise.all(caseIds.slice(0, 5).map((id) => onReplica(id, 5)));
  assert.ok(before.every((a) => a.model === modelA));
  await waitForReplay(db.url!, replicaUrl);
  await setReplayPaused(replicaUrl, true);
  try {
    const registered = await svc.gql('mutation ($p: String!) { registerModel(path: $p) { id } }', { p: MODEL_B });
    assert.equal(registered.errors, undefined, JSON.stringify(registered.errors));
    const modelB = Number(registered.data.registerModel.id);
    const job = await svc.gql('mutation ($m: ID!) { reindex(modelId: $m) { id } }', { m: String(modelB) });
    assert.equal(job.errors, undefined, JSON.stringify(job.errors));
    // Meanwhile (codes of B being written, then B activated, on the primary) and after, the
    // standby answers with A only, exactly as before.
    let during = 0;
    await until('B active on the primary', async () => {
      const a = await onReplica(caseIds[during % 5]!, 5);
      assert.deepEqual(a, before[during % 5], 'the standby answers with model A, as before the reindex');
      during++;
      return (await onPrimary(caseIds[0]!, 5)).model === modelB ? true : undefined;
    }, 120_000, 50);
    for (let i = 0; i < 5; i++) assert.deepEqual(await onReplica(caseIds[i]!, 5), before[i]);
    // A search by images on the standby: encoded with A, ranked over A's codes there.
    const byImages = await svc.gql('query ($images: [SliceImageInput!]!) { similarCases(input: { images: $images, k: 3 }) { model { id } hits { case { id } } } }', { images: caseInput(0, 'R').images }, 'reader');
    assert.equal(byImages.errors, undefined, JSON.stringify(byImages.errors));
    assert.equal(Number(byImages.data.similarCases.model.id), modelA);
    assert.equal(byImages.data.similarCases.hits.length, 3);
    console.log(`# ${during} searches on the paused standby while the primary switched to model B: all model A, unchanged`);

    await setReplayPaused(replicaUrl, false);
    await waitForReplay(db.url!, replicaUrl);
    for (const id of caseIds.slice(0, 5)) {
      const [r, p] = [await onReplica(id, 5), await onPrimary(id, 5)];
      assert.equal(r.model, modelB);
      assert.deepEqual(r, p, `case ${id} under model B`);
    }
  } finally {
    await setReplayPaused(replicaUrl, false).catch(() => {});
  }
});

test('the replica goes away: reads fall back to the primary with a metric and a log line, and return when it is back', async () => {
  const standby = cluster.standbys[0]!;
  assert.equal(await metric('fcdn_read_node_up'), 1);
  const fallbacks = await metric('fcdn_read_node_fallbacks_total');
  await standby.stop();
  try {
    for (const id of caseIds.slice(0, 4)) assert.deepEqual(await onReplica(id, 5), await onPrimary(id, 5), 'answered by the primary');
    const listing = await svc.gql('{ cases(first: 5) { edges { node { id slices { offset } } } } }', {}, 'reader');
    assert.equal(listing.errors, undefined, JSON.stringify(listing.errors));
    assert.equal(await metric('fcdn_read_node_up'), 0);
    assert.equal(await metric('fcdn_read_node_fallbacks_total'), fallbacks + 1, 'one fallback counted, not one per request');
    assert.ok(logLines.some((l) => l.includes('read replica unreachable') && l.includes(node)), 'a log line names the replica');
  } finally {
    await standby.start();
  }
  await until('the replica to be probed back', async () => ((await metric('fcdn_read_node_up')) === 1 ? true : undefined), 60_000, 200);
  assert.ok(logLines.some((l) => l.includes('read replica answers again')));
  await waitForReplay(db.url!, replicaUrl);
  const reads = await metric('fcdn_db_reads_total');
  for (const id of caseIds.slice(0, 3)) assert.deepEqual(await onReplica(id, 5), await onPrimary(id, 5));
  assert.ok((await metric('fcdn_db_reads_total')) > reads, 'reads go to the replica again');
});
