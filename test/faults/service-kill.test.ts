/**
 * The service process killed with SIGKILL in the middle of a batch of concurrent ingests and in
 * the middle of a reindex, then started again on the same database and store. Every ingest the
 * client saw succeed is there whole; the others are whole or absent, and the images they had
 * uploaded are removed after the grace period (the deletion outbox); the reindex resumes.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { startS3rver, type RunningS3rver } from '../../scripts/start-s3rver.ts';
import type { S3ObjectStore } from '../../src/storage/s3-store.ts';
import { assertInvariants } from '../support/invariants.ts';
import { startServiceProcess, type ServiceProcess } from '../../fixtures/service-process.ts';
import { createTestDatabase, type TestDatabase } from '../../fixtures/test-database.ts';
import { FIXTURE_MODEL } from '../../fixtures/test-service.ts';
import { caseInput, INGEST, openStore, outcome, postgresUrl, s3Env, tally, until } from './harness.ts';

const NEW_MODEL = path.resolve('test/fixtures/fcdn-untrained-b.onnx');
const BATCH = 16;
const BUCKET = 'faults-kill';
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcdn-kill-'));
let db: TestDatabase;
let s3: RunningS3rver;
let store: S3ObjectStore;
let proc: ServiceProcess | undefined;
let env: Record<string, string>;

before(async () => {
  postgresUrl();
  db = await createTestDatabase();
  s3 = await startS3rver();
  store = await openStore(s3, BUCKET);
  env = {
    ...s3Env(s3, BUCKET),
    DATABASE_URL: db.url!,
    FCDN_DATA_DIR: dataDir,
    FCDN_MODEL: FIXTURE_MODEL,
    // Images of an ingest that has not committed 4 s after its upload began count as orphans.
    FCDN_ORPHAN_GRACE_MS: '4000',
    FCDN_JANITOR_POLL_MS: '300',
    FCDN_REINDEX_BATCH_SIZE: '4',
    FCDN_REINDEX_BATCH_DELAY_MS: '100',
    FCDN_REINDEX_STALE_MS: '1500',
  };
  proc = await startServiceProcess(env);
});
after(async () => {
  await proc?.kill();
  await db?.close();
  await s3?.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

test('SIGKILL in the middle of a batch of ingests: each ingest fully happened or not at all', async () => {
  const p = proc!;
  let firstDone!: () => void;
  const someDone = new Promise<void>((r) => (firstDone = r));
  const calls = Array.from({ length: BATCH }, (_, i) =>
    p.gql(INGEST, { input: caseInput(i, 'K') }, 'writer').then(
      (res) => {
        firstDone();
        return outcome(res);
      },
      () => 'connection lost',
    ),
  );
  await someDone;
  await p.kill('SIGKILL');
  const outcomes = await Promise.all(calls);
  const seen = tally(outcomes);
  const [left] = await db.raw.query<{ pending: number; cases: number }>(
    'SELECT (SELECT count(*)::int FROM pending_object_deletions) AS pending, (SELECT count(*)::int FROM nodule_cases) AS cases',
  );
  assert.ok((seen['connection lost'] ?? 0) > 0, 'the kill cut ingests off');

  proc = await startServiceProcess(env);
  // What the client was told was stored is there, whole.
  const stored = new Set((await db.raw.query<{ e: string }>('SELECT external_id AS e FROM nodule_cases')).map((r) => r.e));
  outcomes.forEach((o, i) => o === 'ok' && assert.ok(stored.has(`K-${i}`), `K-${i} was acknowledged and must be stored`));
  const totals = await assertInvariants(db.raw, store, { slicesPerCase: 3, settleMs: 30_000 });
  console.log(
    `# SIGKILL mid-batch: client saw ${JSON.stringify(seen)}; after the kill ${left!.cases} cases and ${left!.pending} pending image removals; ` +
      `after restart and grace: ${totals.cases} whole cases, ${totals.objects} objects, no orphans`,
  );
  // The cut-off ones go through on the restarted service.
  for (let i = 0; i < BATCH; i++) {
    if (!stored.has(`K-${i}`)) assert.equal(outcome(await proc.gql(INGEST, { input: caseInput(i, 'K') }, 'writer')), 'ok');
  }
  assert.equal((await assertInvariants(db.raw, store, { slicesPerCase: 3 })).cases, BATCH);
});

test('SIGKILL in the middle of a reindex: it resumes after the restart and the new model covers every slice', async () => {
  const registered = await proc!.gql('mutation ($p: String!) { registerModel(path: $p) { id } }', { p: NEW_MODEL });
  assert.equal(outcome(registered), 'ok', JSON.stringify(registered.errors));
  const started = await proc!.gql('mutation ($m: ID!) { reindex(modelId: $m) { id total } }', { m: registered.data.registerModel.id });
  const jobId = started.data.reindex.id;
  const JOB = 'query ($id: ID!) { reindexJob(id: $id) { status done total failed error model { active } } }';
  const midway = await until('the job to be partly done', async () => {
    const j = (await proc!.gql(JOB, { id: jobId })).data.reindexJob;
    return j.done >= 12 && j.status === 'RUNNING' ? j : undefined;
  });
  await proc!.kill('SIGKILL');
  proc = await startServiceProcess(env);
  const job = await until('the job to finish', async () => {
    const j = (await proc!.gql(JOB, { id: jobId })).data.reindexJob;
    return ['QUEUED', 'RUNNING'].includes(j.status) ? undefined : j;
  }, 120_000, 200);
  console.log(`# SIGKILL mid-reindex: killed at ${midway.done}/${midway.total}; finished ${job.status} with ${job.done} encoded`);
  assert.equal(job.status, 'SUCCEEDED', job.error ?? '');
  assert.equal(job.model.active, true);
  assert.ok(proc.logs.join('').includes('resuming reindex job'));
  await assertInvariants(db.raw, store, { slicesPerCase: 3 });
});
