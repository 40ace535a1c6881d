/**
 * Issue 13, item 3: a reindex survives what the object store does meanwhile.
 *  - one GET fails once with a transient error (as an S3 503 or a timeout would): retried with
 *    backoff, the job SUCCEEDS and the model is activated;
 *  - a case is deleted while the job runs, so its images are gone when their GET comes: those
 *    slices are skipped (they no longer exist), not failed, and the job SUCCEEDS.
 * Before the fix both jobs ended FAILED ("1 slice image(s) could not be re-encoded").
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { UnavailableError } from '../../src/errors.ts';
import type { ObjectStore } from '../../src/storage/object-store.ts';
import { phantomSlices } from '../../fixtures/phantom-cases.ts';
import { databaseLabel } from '../../fixtures/test-database.ts';
import { startTestService, type TestService } from '../../fixtures/test-service.ts';

const MODEL_B = path.resolve('test/fixtures/fcdn-untrained-b.onnx');
const JOB = 'query ($id: ID!) { reindexJob(id: $id) { id status total done failed error model { id active } } }';

let svc: TestService;
/** Called before each GET of a slice image; may throw or act on the service. */
let beforeGet: (key: string) => Promise<void> = async () => {};

function withFaults(store: ObjectStore): ObjectStore {
  return {
    kind: store.kind,
    put: (k, b, t) => store.put(k, b, t),
    delete: (k) => store.delete(k),
    exists: (k) => store.exists(k),
    list: (p) => store.list(p),
    async get(key) {
      if (key.startsWith('cases/')) await beforeGet(key);
      return store.get(key);
    },
  };
}

// Batches of one slice: the deleted case's slice is alone in its batch, so the batch's codes are
// written without it (in a larger batch, the codes of the case's other slices fail the batch on
// their foreign key, and the retried batch no longer sees the case).
before(async () => {
  svc = await startTestService({
    env: { FCDN_REINDEX_BATCH_SIZE: '1', FCDN_JANITOR_POLL_MS: '100' },
    overrides: { wrapStore: withFaults, worker: { pollMs: 100, storeRetryDelaysMs: [20, 50, 100] } },
  });
  for (let i = 0; i < 4; i++) {
    const res = await svc.gql('mutation ($i: IngestCaseInput!) { ingestCase(input: $i) { id } }', {
      i: { externalId: `R-${i}`, patientKey: `PR${i}`, images: phantomSlices({ seed: 40 + i, diameterPx: 7 + i }) },
    }, 'writer');
    assert.equal(res.errors, undefined, JSON.stringify(res.errors));
  }
  const registered = await svc.gql('mutation ($p: String!) { registerModel(path: $p) { id } }', { p: MODEL_B });
  assert.equal(registered.errors, undefined, JSON.stringify(registered.errors));
});

async function inactiveModel(): Promise<string> {
  const models = (await svc.gql('{ models { id active } }')).data.models as { id: string; active: boolean }[];
  return models.find((m) => !m.active)!.id;
}
after(async () => svc?.stop());

async function reindexTo(modelId: string) {
  const started = await svc.gql('mutation ($m: ID!) { reindex(modelId: $m) { id } }', { m: modelId });
  assert.equal(started.errors, undefined, JSON.stringify(started.errors));
  const deadline = Date.now() + 60_000;
  for (;;) {
    const job = (await svc.gql(JOB, { id: started.data.reindex.id })).data.reindexJob;
    if (!['QUEUED', 'RUNNING'].includes(job.status)) return job;
    if (Date.now() > deadline) throw new Error(`the job did not finish: ${JSON.stringify(job)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test(`reindex: one transient GET failure is retried; the job succeeds (${databaseLabel})`, async () => {
  let failures = 0;
  beforeGet = async () => {
    if (failures++ === 0) throw new UnavailableError('the object store did not answer in time (ETIMEDOUT); retry shortly');
  };
  const job = await reindexTo(await inactiveModel());
  beforeGet = async () => {};
  assert.ok(failures > 1, 'the fault fired');
  assert.equal(job.status, 'SUCCEEDED', job.error ?? '');
  assert.equal(job.failed, 0);
  assert.equal(job.model.active, true);
});

test(`reindex: a store failing longer than the retries fails the batch, not the job; it resumes (${databaseLabel})`, async () => {
  let failures = 0;
  // 4 tries per GET (3 retries): the first batch gives up, the worker resumes at its next poll.
  beforeGet = async () => {
    if (failures++ < 7) throw new UnavailableError('the object store is unreachable right now (ECONNREFUSED); retry shortly');
  };
  const job = await reindexTo(await inactiveModel());
  beforeGet = async () => {};
  assert.ok(failures > 7, 'the fault fired');
  assert.equal(job.status, 'SUCCEEDED', job.error ?? '');
  assert.equal(job.failed, 0);
  assert.equal(job.model.active, true);
});

test(`reindex: a case deleted while the job runs is skipped, not failed (${databaseLabel})`, async () => {
  const victim = (await svc.gql('{ caseByExternalId(externalId: "R-2") { id slices { offset } } }')).data.caseByExternalId;
  const victimKeys = new Set(
    (await svc.db.raw.query<{ key: string }>('SELECT image_key AS key FROM slices WHERE case_id = $1', [Number(victim.id)])).map((r) => r.key),
  );
  let deleted = false;
  beforeGet = async (key) => {
    if (!deleted && victimKeys.has(key)) {
      deleted = true;
      assert.equal(await svc.service.services.cases.delete(Number(victim.id)), true);
      await svc.service.services.janitor.drain();
    }
  };
  const job = await reindexTo(await inactiveModel());
  beforeGet = async () => {};
  assert.ok(deleted, 'the case was deleted during the job');
  assert.equal(job.status, 'SUCCEEDED', job.error ?? '');
  assert.equal(job.failed, 0);
  assert.equal(job.model.active, true);
});
