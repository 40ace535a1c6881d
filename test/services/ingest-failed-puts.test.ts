/**
 * Issue 13, item 6: a failed ingest leaves no image behind, even when some of its uploads are
 * still in flight when the first one fails. The store below refuses the ingest's first put at once
 * and lets the others land 200 ms later; before the fix the discard ran before they landed and
 * their objects stayed in the store for good (their outbox rows were already gone).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { ObjectStore } from '../../src/storage/object-store.ts';
import { phantomSlices } from '../../fixtures/phantom-cases.ts';
import { databaseLabel } from '../../fixtures/test-database.ts';
import { startTestService, type TestService } from '../../fixtures/test-service.ts';

let svc: TestService;
let inner: ObjectStore;
let failNextIngest = false;
let putsOfIngest = 0;
/** The keys the failing ingest wrote to: the store may be shared with other tests (CI's S3 leg). */
const keysOfIngest: string[] = [];
/** The failing ingest's puts, settled when each has landed in the store (or was refused). */
const putsInFlight: Promise<unknown>[] = [];

function slowAfterFirstFailure(store: ObjectStore): ObjectStore {
  inner = store;
  return {
    kind: store.kind,
    get: (k) => store.get(k),
    delete: (k) => store.delete(k),
    exists: (k) => store.exists(k),
    list: (p) => store.list(p),
    async put(key, body, contentType) {
      if (!failNextIngest || !key.startsWith('cases/')) return store.put(key, body, contentType);
      putsOfIngest++;
      keysOfIngest.push(key);
      if (putsOfIngest === 1) throw Object.assign(new Error('injected: put #1 refused'), { code: 'ECONNRESET' });
      const landed = new Promise((r) => setTimeout(r, 200)).then(() => store.put(key, body, contentType));
      putsInFlight.push(landed.catch(() => {}));
      return landed;
    },
  };
}

before(async () => {
  svc = await startTestService({ env: { FCDN_JANITOR_POLL_MS: '100' }, overrides: { wrapStore: slowAfterFirstFailure } });
});
after(async () => svc?.stop());

test(`a failed ingest whose other puts land later leaves no object behind (${databaseLabel})`, async () => {
  failNextIngest = true;
  const res = await svc.gql('mutation ($i: IngestCaseInput!) { ingestCase(input: $i) { id } }', {
    i: { externalId: 'puts-1', patientKey: 'P-puts', images: phantomSlices({ seed: 3, diameterPx: 9, slices: 5 }) },
  });
  assert.ok(res.errors?.length, 'the ingest must fail');
  assert.equal(putsOfIngest, 5);
  // The late puts land 200 ms after the failure: wait until each has landed (a discard that ran
  // before them would leave their objects for good), then for one more janitor pass over the
  // outbox. Waiting on these events, not a fixed sleep, keeps the test right on a slow machine.
  assert.equal(putsInFlight.length, 4);
  await Promise.all(putsInFlight);
  await svc.service.services.janitor.drain();
  assert.equal(keysOfIngest.length, 5);
  const remaining = [];
  for (const key of keysOfIngest) if (await inner.exists(key)) remaining.push(key);
  assert.deepEqual(remaining, [], 'objects of the failed ingest remain in the store');
  const rows = await svc.db.raw.query<{ n: number }>('SELECT count(*)::int AS n FROM nodule_cases');
  assert.equal(rows[0]!.n, 0);
  failNextIngest = false;
});
