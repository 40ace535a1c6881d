/**
 * Issue 13, item 11 (third part): a double activation after a stale-heartbeat takeover. Worker A
 * encodes the last batch of a job and then pauses (a long batch delay, or a stalled process); its
 * heartbeat goes stale, worker B claims the job, finds nothing left to encode, activates the model
 * and ends the job SUCCEEDED. An admin then switches back to the old model. When A wakes it goes
 * on with the job it no longer owns: before the fix its `finish` filtered on the job id only, and
 * it activated the model a second time, undoing the admin's switch.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { phantomSlices } from '../../fixtures/phantom-cases.ts';
import { databaseLabel } from '../../fixtures/test-database.ts';
import { ReindexWorker } from '../../src/services/reindex-worker.ts';
import { startTestService, type TestService } from '../../fixtures/test-service.ts';

const MODEL_B = path.resolve('test/fixtures/fcdn-untrained-b.onnx');
const STALE_MS = 300;
const A_PAUSE_MS = 4_000;
let svc: TestService;
let log = '';
let aAdvanced: () => void;
const aHasAdvanced = new Promise<void>((resolve) => (aAdvanced = resolve));

before(async () => {
  svc = await startTestService({
    overrides: {
      log: pino({ level: 'info' }, { write: (line: string) => void (log += line) }),
      // Worker A: the in-process worker, pausing after each batch far longer than the stale bound.
      worker: { pollMs: 50, staleAfterMs: STALE_MS, batchDelayMs: A_PAUSE_MS, onProgress: () => aAdvanced() },
    },
  });
  for (let i = 0; i < 3; i++) {
    const res = await svc.gql('mutation ($i: IngestCaseInput!) { ingestCase(input: $i) { id } }', {
      i: { externalId: `T-${i}`, patientKey: `PT${i}`, images: phantomSlices({ seed: 90 + i, diameterPx: 7 + i }) },
    }, 'writer');
    assert.equal(res.errors, undefined, JSON.stringify(res.errors));
  }
});
after(async () => svc?.stop());

const ended = () => (log.match(/reindex job finished; model active|reindex job taken over by another worker/g) ?? []).length;

async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 20_000) {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

test(`a worker whose job was taken over after a stale heartbeat neither finishes it nor activates its model (${databaseLabel})`, async () => {
  const core = svc.service;
  const registered = await svc.gql('mutation ($p: String!) { registerModel(path: $p) { id } }', { p: MODEL_B });
  assert.equal(registered.errors, undefined, JSON.stringify(registered.errors));
  const oldModel = core.model!.id;
  const newModel = Number(registered.data.registerModel.id);
  const started = await svc.gql('mutation ($m: ID!) { reindex(modelId: $m) { id } }', { m: String(newModel) });
  assert.equal(started.errors, undefined, JSON.stringify(started.errors));
  const jobId = Number(started.data.reindex.id);

  // A has encoded every slice and sleeps; once its heartbeat is stale, B claims the job.
  await aHasAdvanced;
  const a = core.worker!;
  const b = new ReindexWorker(core.repos, core.services.models, core.store, core.preparer.prepareInBackground, core.log, {
    ...core.config.reindex,
    staleAfterMs: STALE_MS,
    pollMs: 50,
    batchDelayMs: 0,
  });
  b.start();
  try {
    await until('B to end the job', async () => (await core.repos.jobs.findById(jobId))!.status !== 'RUNNING');
    const job = (await core.repos.jobs.findById(jobId))!;
    assert.equal(job.status, 'SUCCEEDED');
    assert.equal(job.workerId, b.workerId, 'B took the job over');
    const finishedAt = job.finishedAt!.getTime();

    // The admin switches back while A still sleeps.
    const back = await svc.gql('mutation ($m: ID!) { activateModel(id: $m) { id active } }', { m: String(oldModel) });
    assert.equal(back.errors, undefined, JSON.stringify(back.errors));

    // A wakes and ends its pass (one more "finished" or "taken over" line after B's).
    await until('A to end its pass', () => ended() >= 2, A_PAUSE_MS + 15_000);
    const active = await core.repos.models.findActive();
    assert.equal(active!.id, oldModel, `worker A activated model ${active!.id} again after B had finished its job and the admin switched back`);
    const after = (await core.repos.jobs.findById(jobId))!;
    assert.equal(after.status, 'SUCCEEDED');
    assert.equal(after.finishedAt!.getTime(), finishedAt, 'worker A finished the job a second time');
    assert.notEqual(a.workerId, b.workerId);
  } finally {
    await b.stop();
  }
});
