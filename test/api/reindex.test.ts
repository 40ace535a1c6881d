/**
 * Reindex as an admin lives it: register a new model, start a reindex, watch its progress while
 * search keeps using the old model; kill the service (SIGKILL) mid-job; restart it; the job
 * resumes from its cursor, finishes, and only then does search move to the new model.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { createTestDatabase, databaseLabel, usingPostgres, type TestDatabase } from '../../fixtures/test-database.ts';
import { phantomSlices } from '../../fixtures/phantom-cases.ts';
import { startServiceProcess, type ServiceProcess } from '../../fixtures/service-process.ts';
import { FIXTURE_MODEL, type GraphQLResponse } from '../../fixtures/test-service.ts';

const NEW_MODEL = path.resolve('test/fixtures/fcdn-untrained-b.onnx');
const CASES = 30; // 90 slices: 23 batches of 4

let db: TestDatabase | undefined;
let proc: ServiceProcess | undefined;
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcdn-reindex-'));

after(async () => {
  await proc?.kill();
  await db?.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const JOB = 'query ($id: ID!) { reindexJob(id: $id) { id status total done failed error model { id active } } }';
const SEARCH = '{ similarCases(input: { caseId: "1", k: 5 }) { model { id } hits { case { id } } } }';

test(`reindex survives SIGKILL, resumes, and search switches model only when it has finished (${databaseLabel})`, async () => {
  let env: Record<string, string> = { FCDN_DATA_DIR: dataDir, FCDN_MODEL: FIXTURE_MODEL, FCDN_REINDEX_BATCH_SIZE: '4', FCDN_REINDEX_BATCH_DELAY_MS: '120' };
  if (usingPostgres) {
    db = await createTestDatabase();
    env = { ...env, DATABASE_URL: db.url!, FCDN_REINDEX_STALE_MS: '1500' };
  }
  proc = await startServiceProcess(env);
  for (let i = 0; i < CASES; i++) {
    const res: GraphQLResponse = await proc.gql('mutation ($input: IngestCaseInput!) { ingestCase(input: $input) { id } }', { input: { patientKey: `P${i}`, images: phantomSlices({ seed: i + 1, diameterPx: 6 + i }) } }, 'writer');
    assert.equal(res.errors, undefined, JSON.stringify(res.errors));
  }
  const oldModel = (await proc.gql('{ activeModel { id } }')).data.activeModel.id;

  const registered = await proc.gql('mutation ($p: String!) { registerModel(path: $p) { id active name } }', { p: NEW_MODEL });
  assert.equal(registered.errors, undefined, JSON.stringify(registered.errors));
  const newModel = registered.data.registerModel.id;
  assert.equal(registered.data.registerModel.active, false, 'a registered model waits for its reindex');
  const refused = await proc.gql('mutation ($id: ID!) { activateModel(id: $id) { id } }', { id: newModel });
  assert.match(refused.errors?.[0]?.message ?? '', /no codes for some stored slices/);

  const started = await proc.gql('mutation ($m: ID!) { reindex(modelId: $m) { id status total } }', { m: newModel });
  const jobId = started.data.reindex.id;
  assert.equal(started.data.reindex.total, CASES * 3);

  // Mid-job: progress is visible, search still answers with the old model.
  const midway = await until('the job to be partly done', async () => {
    const j = (await proc!.gql(JOB, { id: jobId })).data.reindexJob;
    return j.done >= 20 && j.status === 'RUNNING' ? j : undefined;
  });
  assert.ok(midway.done < midway.total);
  const during = await proc.gql(SEARCH, {}, 'reader');
  if ((await proc.gql(JOB, { id: jobId })).data.reindexJob.status === 'RUNNING') assert.equal(during.data.similarCases.model.id, oldModel);

  await proc.kill('SIGKILL');
  proc = await startServiceProcess(env);
  const resumedFrom = (await proc.gql(JOB, { id: jobId })).data.reindexJob.done;
  assert.ok(resumedFrom >= midway.done, 'progress recorded before the kill is kept');

  const finished = await until('the job to finish', async () => {
    // Search first, then the job: a job still open after the search means the search ran before
    // the activation (activation and SUCCEEDED commit together), so it must have used the old model.
    const s = await proc!.gql(SEARCH, {}, 'reader');
    const j = (await proc!.gql(JOB, { id: jobId })).data.reindexJob;
    if (j.status === 'RUNNING' || j.status === 'QUEUED') {
      assert.equal(s.data.similarCases.model.id, oldModel);
      return undefined;
    }
    return j;
  });
  assert.equal(finished.status, 'SUCCEEDED', finished.error ?? '');
  assert.equal(finished.failed, 0);
  assert.equal(finished.model.active, true);
  assert.ok(proc.logs.join('').includes('resuming reindex job'), 'the restarted service resumed the job');
  // Each slice was encoded once in pass 1, except the batch in flight at the kill.
  assert.ok(finished.done >= CASES * 3 && finished.done <= CASES * 3 + 4, `done = ${finished.done}`);

  const afterSwitch = await proc.gql(SEARCH, {}, 'reader');
  assert.equal(afterSwitch.data.similarCases.model.id, newModel);
  assert.equal(afterSwitch.data.similarCases.hits.length, 5);
  const codes = await proc.gql('{ case(id: "1") { slices { old: codes(modelId: "1") { shallow } new: codes { shallow } } } }', {}, 'reader');
  assert.ok(codes.data.case.slices.every((s: any) => s.old && s.new), 'old and new codes stand side by side');
  console.log(`# reindex: ${CASES * 3} slices, killed at ${midway.done} done, resumed at ${resumedFrom}, finished with ${finished.done} done`);
});

test('a reindex can be cancelled; the model is not activated', async () => {
  assert.ok(proc, 'runs after the first test');
  const again = await proc.gql('mutation { reindex { id status } }');
  const jobId = again.data.reindex.id;
  const cancelled = await proc.gql('mutation ($id: ID!) { cancelReindex(id: $id) { id status } }', { id: jobId });
  assert.ok(['RUNNING', 'CANCELLED'].includes(cancelled.data.cancelReindex.status));
  const job = await until('the job to stop', async () => {
    const j = (await proc!.gql(JOB, { id: jobId })).data.reindexJob;
    return j.status === 'CANCELLED' ? j : undefined;
  });
  assert.ok(job.done < job.total, 'cancelled before the end');
});
