/**
 * The Postgres server hangs under a running service: every process of a private cluster gets
 * SIGSTOP, so connections stay open and the kernel still accepts new ones, but nothing answers (a
 * frozen VM, a black-holed network). Requests must fail as SERVICE_UNAVAILABLE within the
 * configured bounds instead of waiting for TCP; after SIGCONT the same service answers again, and
 * nothing was half-written.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { assertInvariants } from '../support/invariants.ts';
import { startPrivatePostgres, type PrivatePostgres } from '../support/private-postgres.ts';
import { caseInput, INGEST, outcome, SEARCH_BY_CASE, sleep, startRig, type FaultRig } from './harness.ts';

/** FCDN_DB_CONNECT_TIMEOUT_MS and FCDN_DB_SILENCE_TIMEOUT_MS of the service under test. */
const CONNECT_MS = 1500;
const SILENCE_MS = 1500;

let pg: PrivatePostgres;
let rig: FaultRig;

before(async () => {
  pg = await startPrivatePostgres();
  rig = await startRig({ serverUrl: pg.url, bucket: 'faults-pg-hang', dbTimeouts: { connectMs: CONNECT_MS, silenceMs: SILENCE_MS } });
});
after(async () => {
  pg?.thaw();
  await rig?.close();
  pg?.destroy();
});

test('Postgres hangs: ingest, search and listing fail in bounded time with SERVICE_UNAVAILABLE; after it resumes the same service answers', async () => {
  for (let i = 0; i < 3; i++) assert.equal(outcome(await rig.svc.gql(INGEST, { input: caseInput(i, 'H') }, 'writer')), 'ok');
  const [{ id: someCase }] = await rig.db.raw.query<{ id: number }>("SELECT min(id)::int AS id FROM nodule_cases");
  const before = await rig.svc.gql(SEARCH_BY_CASE, { id: String(someCase) }, 'reader');
  assert.equal(outcome(before), 'ok');

  pg.freeze();
  let frozenFor = 0;
  try {
    const t0 = performance.now();
    const timed = async (p: Promise<unknown>) => {
      const r = (await p) as Parameters<typeof outcome>[0];
      return { outcome: outcome(r), ms: Math.round(performance.now() - t0), message: r.errors?.[0]?.message ?? '' };
    };
    const during = await Promise.all([
      timed(rig.svc.gql(INGEST, { input: caseInput(10, 'H') }, 'writer')),
      timed(rig.svc.gql(SEARCH_BY_CASE, { id: String(someCase) }, 'reader')),
      timed(rig.svc.gql('{ cases(first: 5) { totalCount } }', {}, 'reader')),
    ]);
    // /healthz says so too, without hanging.
    const h0 = performance.now();
    const health = await fetch(`${rig.svc.url}/healthz`);
    const healthMs = Math.round(performance.now() - h0);
    frozenFor = performance.now() - t0;
    console.log(`# Postgres frozen (SIGSTOP), connect/silence bounds ${CONNECT_MS}/${SILENCE_MS} ms: ${during.map((d) => `${d.outcome} in ${d.ms} ms`).join('; ')}; /healthz ${health.status} in ${healthMs} ms`);
    assert.deepEqual(during.map((d) => d.outcome), ['SERVICE_UNAVAILABLE', 'SERVICE_UNAVAILABLE', 'SERVICE_UNAVAILABLE'], JSON.stringify(during));
    assert.match(during[0]!.message, /database is unreachable/);
    // The search retries twice on a lost connection; each try waits at most one bound.
    for (const d of during) assert.ok(d.ms < 4 * Math.max(CONNECT_MS, SILENCE_MS) + 2000, `${d.outcome} after ${d.ms} ms`);
    assert.equal(health.status, 503);
    assert.ok(healthMs < 2 * Math.max(CONNECT_MS, SILENCE_MS) + 2000, `/healthz took ${healthMs} ms`);
  } finally {
    pg.thaw();
  }

  // Recovery without restarting the service (the pool replaces the cut connections).
  let after = await rig.svc.gql(SEARCH_BY_CASE, { id: String(someCase) }, 'reader');
  for (let i = 0; i < 20 && outcome(after) !== 'ok'; i++) {
    await sleep(250);
    after = await rig.svc.gql(SEARCH_BY_CASE, { id: String(someCase) }, 'reader');
  }
  assert.equal(outcome(after), 'ok', JSON.stringify(after.errors));
  assert.deepEqual(after.data, before.data, 'the same answer as before the hang');
  assert.equal(outcome(await rig.svc.gql(INGEST, { input: caseInput(10, 'H') }, 'writer')), 'ok');
  const totals = await assertInvariants(rig.db.raw, rig.store, { slicesPerCase: 3 });
  assert.equal(totals.cases, 4);
  console.log(`# after SIGCONT (frozen ${Math.round(frozenFor)} ms): the same search answer, the refused ingest stored on resend; invariants hold with 4 cases`);
});
