/**
 * Issue 13, items 1 and 2: switching the active model while an ingest is inside its transaction.
 *  1. activateModel(X) checked for missing codes, then switched, in two autocommit statements. An
 *     ingest holding the active model (FOR SHARE) that committed in between stored a case without
 *     X codes, and X went live: that case dropped out of every search.
 *  2. The reindex's activation locked `slices` (SHARE) and then the model row; an ingest locks the
 *     model row and then writes `slices`: a deadlock when the two meet.
 * Each test holds an ingest at a chosen point with a test trigger that waits for an advisory lock
 * an admin session holds, starts the switch, waits until both wait on locks, and releases.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import pino from 'pino';
import { phantomSlices } from '../../fixtures/phantom-cases.ts';
import { usingPostgres } from '../../fixtures/test-database.ts';
import { startTestService, type TestService } from '../../fixtures/test-service.ts';
import { waitingOnLocks } from '../support/lock-waits.ts';

const skip = usingPostgres ? false : 'needs concurrent sessions: set DATABASE_URL (Postgres)';
const MODEL_B = path.resolve('test/fixtures/fcdn-untrained-b.onnx');
const INGEST = 'mutation ($i: IngestCaseInput!) { ingestCase(input: $i) { id } }';
const JOB = 'query ($id: ID!) { reindexJob(id: $id) { id status error model { id active } } }';
let svc: TestService | undefined;
let log = '';

before(async () => {
  if (skip) return;
  svc = await startTestService({
    env: { FCDN_REINDEX_BATCH_SIZE: '64' },
    overrides: { worker: { pollMs: 100 }, log: pino({ level: 'warn' }, { write: (line: string) => void (log += line) }) },
  });
  for (let i = 0; i < 3; i++) {
    const res: { errors?: unknown } = await svc.gql(INGEST, { i: { externalId: `M-${i}`, patientKey: `PM${i}`, images: phantomSlices({ seed: 60 + i, diameterPx: 8 + i }) } }, 'writer');
    assert.equal(res.errors, undefined, JSON.stringify(res.errors));
  }
  const registered = await svc.gql('mutation ($p: String!) { registerModel(path: $p) { id } }', { p: MODEL_B });
  assert.equal(registered.errors, undefined, JSON.stringify(registered.errors));
});
after(async () => svc?.stop());


async function models(): Promise<{ active: string; other: string }> {
  const list = (await svc!.gql('{ models { id active } }')).data.models as { id: string; active: boolean }[];
  return { active: list.find((m) => m.active)!.id, other: list.find((m) => !m.active)!.id };
}

async function untilJobEnds(id: string) {
  const deadline = Date.now() + 90_000;
  for (;;) {
    const job = (await svc!.gql(JOB, { id })).data.reindexJob;
    if (!['QUEUED', 'RUNNING'].includes(job.status)) return job;
    if (Date.now() > deadline) throw new Error(`the job did not finish: ${JSON.stringify(job)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Installs a statement trigger on `table` that holds its writer until the admin releases `lockId`. */
async function holdWritersOf(table: string, lockId: number): Promise<() => Promise<void>> {
  const fn = `test_hold_${table}`;
  await svc!.db.raw.exec(`
    CREATE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN PERFORM pg_advisory_xact_lock_shared(${lockId}); RETURN NULL; END $$;
    CREATE TRIGGER ${fn} BEFORE INSERT ON ${table} FOR EACH STATEMENT EXECUTE FUNCTION ${fn}();`);
  return () => svc!.db.raw.exec(`DROP TRIGGER ${fn} ON ${table}; DROP FUNCTION ${fn}();`);
}

test('activateModel while an ingest under the active model commits: refused, or the new case has codes (postgres)', { skip }, async () => {
  const s = svc!;
  // Reindex to the second model: it becomes active, and the first keeps codes for every slice so far.
  const first = (await models()).active;
  const job = await untilJobEnds((await s.gql('mutation ($m: ID!) { reindex(modelId: $m) { id } }', { m: (await models()).other })).data.reindex.id);
  assert.equal(job.status, 'SUCCEEDED', job.error ?? '');
  assert.notEqual((await models()).active, first);

  const drop = await holdWritersOf('slice_codes', 913);
  const admin = new pg.Client({ connectionString: s.db.url });
  await admin.connect();
  try {
    await admin.query('SELECT pg_advisory_lock(913)');
    // The ingest holds the active model (FOR SHARE) and has written its slices; its codes wait.
    const ingest = s.gql(INGEST, { i: { externalId: 'M-held', patientKey: 'PM-held', images: phantomSlices({ seed: 70, diameterPx: 9 }) } }, 'writer');
    await waitingOnLocks(admin, 1);
    const activation = s.gql('mutation ($id: ID!) { activateModel(id: $id) { id active } }', { id: first });
    await waitingOnLocks(admin, 2);
    await admin.query('SELECT pg_advisory_unlock(913)');
    const [i, a] = await Promise.all([ingest, activation]);
    assert.equal(i.errors, undefined, `ingest: ${JSON.stringify(i.errors)}`);
    const caseId = i.data.ingestCase.id;
    if (a.errors) {
      assert.equal(a.errors[0]?.extensions?.code, 'BAD_USER_INPUT', JSON.stringify(a.errors));
      assert.match(a.errors[0]!.message, /no codes for some stored slices/);
    }
    const active = (await models()).active;
    const missing = await s.db.raw.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM slices s WHERE NOT EXISTS (SELECT 1 FROM slice_codes c WHERE c.slice_id = s.id AND c.model_id = $1)',
      [Number(active)],
    );
    assert.equal(missing[0]!.n, 0, `model ${active} went live without codes for ${missing[0]!.n} slice(s)`);
    const search = await s.gql('query ($id: ID!) { similarCases(input: { caseId: $id, k: 3 }) { hits { case { id } } } }', { id: caseId }, 'reader');
    assert.equal(search.errors, undefined, `search by the new case: ${JSON.stringify(search.errors)}`);
  } finally {
    await admin.end();
    await drop();
  }
});

test('an ingest and a reindex activation meeting on the model row and slices: no deadlock (postgres)', { skip }, async () => {
  const s = svc!;
  const { other } = await models();
  const drop = await holdWritersOf('patients', 914);
  const admin = new pg.Client({ connectionString: s.db.url });
  await admin.connect();
  log = '';
  try {
    await admin.query('SELECT pg_advisory_lock(914)');
    // The ingest holds the active model (FOR SHARE); it waits at its new patient, before any slice.
    const ingest = s.gql(INGEST, { i: { externalId: 'M-dl', patientKey: 'PM-deadlock', images: phantomSlices({ seed: 80, diameterPx: 10 }) } }, 'writer');
    await waitingOnLocks(admin, 1);
    const started = await s.gql('mutation ($m: ID!) { reindex(modelId: $m) { id } }', { m: other });
    assert.equal(started.errors, undefined, JSON.stringify(started.errors));
    // The worker encodes every slice, then its activation waits for the model row the ingest holds.
    await waitingOnLocks(admin, 2);
    await admin.query('SELECT pg_advisory_unlock(914)');
    const i = await ingest;
    assert.equal(i.errors, undefined, `ingest: ${JSON.stringify(i.errors)}`);
    const job = await untilJobEnds(started.data.reindex.id);
    assert.equal(job.status, 'SUCCEEDED', job.error ?? '');
    assert.equal(job.model.active, true);
    assert.doesNotMatch(log, /deadlock/i, 'the service met a deadlock');
  } finally {
    await admin.end();
    await drop();
  }
});

test('retryOnDeadlock runs a transaction again after a deadlock or a write conflict, and only then', async () => {
  const { retryOnDeadlock, isDeadlockOrConflict } = await import('../../src/db/postgres-errors.ts');
  assert.ok(isDeadlockOrConflict(Object.assign(new Error('Transaction failed due to a write conflict or a deadlock'), { code: 'P2034' })));
  assert.ok(isDeadlockOrConflict(Object.assign(new Error('raw query failed'), { code: 'P2010', meta: { code: '40P01' } })));
  assert.ok(isDeadlockOrConflict(new Error('wrapped', { cause: Object.assign(new Error('deadlock detected'), { code: '40P01' }) })));
  assert.ok(!isDeadlockOrConflict(Object.assign(new Error('duplicate key'), { code: '23505' })));
  let calls = 0;
  assert.equal(await retryOnDeadlock(async () => (++calls < 3 ? Promise.reject(Object.assign(new Error('deadlock'), { code: '40P01' })) : 'done'), 3, 1), 'done');
  assert.equal(calls, 3);
  calls = 0;
  await assert.rejects(retryOnDeadlock(async () => (calls++, Promise.reject(new Error('other'))), 3, 1), /other/);
  assert.equal(calls, 1);
});
