/**
 * Issue 13, item 9: deleteCase racing a re-ingest of the same case (same externalId) must neither
 * orphan images nor fail. Two interleavings, each forced with a lock an admin session holds:
 *  - the re-ingest is held after it replaced the case row and inserted its new slices (a test
 *    trigger on slice_codes waits for an advisory lock): before the fix deleteCase read the old
 *    image keys, waited for the case row, then deleted the case with the re-ingest's new slices,
 *    whose images no one scheduled for removal;
 *  - the re-ingest is held while it deletes the old slices, before it touches the case row (the
 *    cascade to slice_codes waits for a table lock): before the fix deleteCase locked the case row
 *    and then waited for those slices, while the re-ingest waited for the case row: a deadlock,
 *    answered INTERNAL_SERVER_ERROR.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { phantomSlices } from '../../fixtures/phantom-cases.ts';
import { usingPostgres } from '../../fixtures/test-database.ts';
import { startTestService, type TestService } from '../../fixtures/test-service.ts';
import { waitingOnLocks } from '../support/lock-waits.ts';

const skip = usingPostgres ? false : 'needs concurrent sessions: set DATABASE_URL (Postgres)';
const INGEST = 'mutation ($i: IngestCaseInput!) { ingestCase(input: $i) { id } }';
let svc: TestService | undefined;

before(async () => {
  if (!skip) svc = await startTestService({ env: { FCDN_JANITOR_POLL_MS: '100' } });
});
after(async () => svc?.stop());


async function assertNoImagesLeft(s: TestService): Promise<void> {
  const store = s.service.store;
  const deadline = Date.now() + 5_000;
  let left = await store.list('cases/');
  while (left.length > 0 && Date.now() < deadline) {
    await s.service.services.janitor.drain();
    await new Promise((r) => setTimeout(r, 200));
    left = await store.list('cases/');
  }
  assert.deepEqual(left, [], 'images of the deleted case remain in the store');
}

/** Ingests a case, then re-ingests it and deletes it while `hold` (run on an admin session) holds the re-ingest. */
async function race(externalId: string, hold: (admin: pg.Client) => Promise<void>, release: (admin: pg.Client) => Promise<void>) {
  const s = svc!;
  const input = (seed: number) => ({ externalId, patientKey: `P-${externalId}`, images: phantomSlices({ seed, diameterPx: 8 }) });
  const first = await s.gql(INGEST, { i: input(1) }, 'writer');
  assert.equal(first.errors, undefined, JSON.stringify(first.errors));
  const id = first.data.ingestCase.id;
  const admin = new pg.Client({ connectionString: s.db.url });
  await admin.connect();
  try {
    await hold(admin);
    const reingest = s.gql(INGEST, { i: input(2) }, 'writer');
    await waitingOnLocks(admin, 1);
    const deleted = s.gql('mutation ($id: ID!) { deleteCase(id: $id) }', { id }, 'admin');
    await waitingOnLocks(admin, 2);
    await release(admin);
    const [r, d] = await Promise.all([reingest, deleted]);
    // The re-ingest commits first; its read-back may already find the case deleted (NOT_FOUND).
    assert.ok(!r.errors || r.errors[0]?.extensions?.code === 'NOT_FOUND', `re-ingest: ${JSON.stringify(r.errors)}`);
    assert.equal(d.errors, undefined, `deleteCase: ${JSON.stringify(d.errors)}`);
    assert.equal(d.data.deleteCase, true);
  } finally {
    await admin.end();
  }
  const cases = await s.db.raw.query<{ n: number }>('SELECT count(*)::int AS n FROM nodule_cases WHERE external_id = $1', [externalId]);
  assert.equal(cases[0]!.n, 0, 'the case is gone');
  await assertNoImagesLeft(s);
}

test('deleteCase while a re-ingest of the case is about to commit: no orphaned images (postgres)', { skip }, async () => {
  await svc!.db.raw.exec(`
    CREATE FUNCTION test_hold_codes() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN PERFORM pg_advisory_xact_lock_shared(913); RETURN NULL; END $$;
    CREATE TRIGGER test_hold_codes BEFORE INSERT ON slice_codes FOR EACH STATEMENT EXECUTE FUNCTION test_hold_codes();`);
  try {
    await race(
      'race-commit',
      (admin) => admin.query('SELECT pg_advisory_lock(913)').then(() => {}),
      (admin) => admin.query('SELECT pg_advisory_unlock(913)').then(() => {}),
    );
  } finally {
    await svc!.db.raw.exec('DROP TRIGGER test_hold_codes ON slice_codes; DROP FUNCTION test_hold_codes();');
  }
});

test('deleteCase while a re-ingest of the case deletes its old slices: no deadlock (postgres)', { skip }, async () => {
  await race(
    'race-slices',
    async (admin) => {
      await admin.query('BEGIN');
      await admin.query('LOCK TABLE slice_codes IN EXCLUSIVE MODE');
    },
    (admin) => admin.query('COMMIT').then(() => {}),
  );
});
