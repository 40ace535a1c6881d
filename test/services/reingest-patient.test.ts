/**
 * Re-ingest of a stored externalId under another patientKey (found while fixing issue 13). An
 * externalId names one nodule of one patient; a re-ingest replaces the case. Before, a re-ingest
 * under another patient key silently moved the case (its slices, codes, report) to that patient:
 * a typo in a key, or two sources reusing an externalId, rewrote another patient's case. Now it
 * is refused (BAD_USER_INPUT, nothing written), as a study under another patient key already was.
 * Two concurrent ingests of one new externalId under two patient keys: one stores the case, the
 * other gets the same refusal (not a unique-constraint error).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { phantomSlices } from '../../fixtures/phantom-cases.ts';
import { databaseLabel } from '../../fixtures/test-database.ts';
import { startTestService, type TestService } from '../../fixtures/test-service.ts';

const INGEST = 'mutation ($i: IngestCaseInput!) { ingestCase(input: $i) { id patientKey slices { id } } }';
const CASE = 'query ($e: String!) { caseByExternalId(externalId: $e) { id patientKey slices { id } } }';
let svc: TestService;

before(async () => {
  svc = await startTestService({ env: { FCDN_JANITOR_POLL_MS: '100' } });
});
after(async () => svc?.stop());

const ingest = (externalId: string, patientKey: string, seed: number) =>
  svc.gql(INGEST, { i: { externalId, patientKey, images: phantomSlices({ seed, diameterPx: 8 }) } }, 'writer');

async function caseObjects(): Promise<number> {
  await svc.service.services.janitor.drain();
  return (await svc.service.store.list('cases/')).length;
}

test(`re-ingest of an externalId under another patientKey is refused; nothing is written (${databaseLabel})`, async () => {
  const first = await ingest('RP-1', 'PATIENT-A', 1);
  assert.equal(first.errors, undefined, JSON.stringify(first.errors));
  const objects = await caseObjects();

  const moved = await ingest('RP-1', 'PATIENT-B', 2);
  assert.equal(moved.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT', `a re-ingest under another patient key was accepted: ${JSON.stringify(moved.data ?? moved.errors)}`);
  assert.match(moved.errors![0]!.message, /externalId "RP-1" is stored under another patient key/);
  const stored = (await svc.gql(CASE, { e: 'RP-1' })).data.caseByExternalId;
  assert.equal(stored.patientKey, 'PATIENT-A');
  assert.deepEqual(stored.slices, first.data.ingestCase.slices, 'the stored case is unchanged');
  assert.equal(await caseObjects(), objects, 'the refused ingest left images behind');

  // Under its own patient key a re-ingest still replaces the case.
  const again = await ingest('RP-1', 'PATIENT-A', 3);
  assert.equal(again.errors, undefined, JSON.stringify(again.errors));
  assert.equal(again.data.ingestCase.id, first.data.ingestCase.id);
});

test(`two concurrent ingests of one new externalId under two patient keys: one stored, one refused (${databaseLabel})`, async () => {
  const [a, b] = await Promise.all([ingest('RP-2', 'PATIENT-C', 4), ingest('RP-2', 'PATIENT-D', 5)]);
  const codes = [a, b].map((r) => r.errors?.[0]?.extensions?.code ?? 'ok').sort();
  assert.deepEqual(codes, ['BAD_USER_INPUT', 'ok'], JSON.stringify([a.errors, b.errors]));
  const stored = (await svc.gql(CASE, { e: 'RP-2' })).data.caseByExternalId;
  assert.equal(stored.patientKey, (a.errors ? b : a).data.ingestCase.patientKey);
});
