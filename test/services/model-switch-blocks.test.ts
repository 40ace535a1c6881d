/**
 * Issue 13, item 10: the search blocks (src/repositories/search-methods/blocks.ts) across a model switch.
 *  - Reindexing the active model rewrote every code row with the same codes, and the triggers marked
 *    every case dirty: searches ranked the whole archive with the plain SQL until a rebuild.
 *  - A retired model kept its block set, its blocks and its dirty marks forever (drop() had no
 *    caller), and its triggers kept recording every change for it.
 *  - The new model's blocks were built only after the switch, by the upkeep loop woken by the first
 *    search: until then every search fell back to the plain SQL (~2.5 s at 1M slices).
 * Where the fcdn_search extension is missing (PGlite) nothing can be built; a block set registered
 * by hand still makes the triggers record, so the first two parts run there too.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { phantomSlices } from '../../fixtures/phantom-cases.ts';
import { databaseLabel } from '../../fixtures/test-database.ts';
import { startTestService, type TestService } from '../../fixtures/test-service.ts';

const MODEL_B = path.resolve('test/fixtures/fcdn-untrained-b.onnx');
const JOB = 'query ($id: ID!) { reindexJob(id: $id) { id status error model { id active } } }';
let svc: TestService;
let canBuild = false;

before(async () => {
  svc = await startTestService({ overrides: { worker: { pollMs: 100 } } });
  for (let i = 0; i < 3; i++) {
    const res = await svc.gql('mutation ($i: IngestCaseInput!) { ingestCase(input: $i) { id } }', {
      i: { externalId: `B-${i}`, patientKey: `PB${i}`, images: phantomSlices({ seed: 80 + i, diameterPx: 7 + i }) },
    }, 'writer');
    assert.equal(res.errors, undefined, JSON.stringify(res.errors));
  }
  const registered = await svc.gql('mutation ($p: String!) { registerModel(path: $p) { id } }', { p: MODEL_B });
  assert.equal(registered.errors, undefined, JSON.stringify(registered.errors));
  canBuild = await svc.service.repos.search.blocksAvailable();
});
after(async () => svc?.stop());

async function models(): Promise<{ active: number; other: number }> {
  const list = (await svc.gql('{ models { id active } }')).data.models as { id: string; active: boolean }[];
  return { active: Number(list.find((m) => m.active)!.id), other: Number(list.find((m) => !m.active)!.id) };
}

async function reindex(modelId: number) {
  const started = await svc.gql('mutation ($m: ID!) { reindex(modelId: $m) { id } }', { m: String(modelId) });
  assert.equal(started.errors, undefined, JSON.stringify(started.errors));
  const deadline = Date.now() + 90_000;
  for (;;) {
    const job = (await svc.gql(JOB, { id: started.data.reindex.id })).data.reindexJob;
    if (!['QUEUED', 'RUNNING'].includes(job.status)) return job;
    if (Date.now() > deadline) throw new Error(`the job did not finish: ${JSON.stringify(job)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Rows of each fcdn_search table for a model. */
async function blockRows(modelId: number): Promise<{ sets: number; blocks: number; dirty: number }> {
  const [row] = await svc.db.raw.query<{ sets: number; blocks: number; dirty: number }>(
    `SELECT (SELECT count(*)::int FROM fcdn_search.block_sets WHERE model_id = $1) AS sets,
            (SELECT count(*)::int FROM fcdn_search.blocks WHERE model_id = $1) AS blocks,
            (SELECT count(*)::int FROM fcdn_search.dirty WHERE model_id = $1) AS dirty`,
    [modelId],
  );
  return { sets: Number(row!.sets), blocks: Number(row!.blocks), dirty: Number(row!.dirty) };
}

/** The model's blocks, built where the extension is installed; else only its block set registered (the triggers record). */
async function giveBlocks(modelId: number): Promise<void> {
  if (canBuild) await svc.service.repos.search.blocks.rebuild(modelId);
  else await svc.db.raw.query('INSERT INTO fcdn_search.block_sets (model_id) VALUES ($1) ON CONFLICT DO NOTHING', [modelId]);
}

test(`reindexing the active model marks no case dirty when its codes did not change (${databaseLabel})`, async () => {
  const { active } = await models();
  await giveBlocks(active);
  assert.equal((await blockRows(active)).dirty, 0);
  const job = await reindex(active);
  assert.equal(job.status, 'SUCCEEDED', job.error ?? '');
  assert.equal((await blockRows(active)).dirty, 0, 'the same codes written again marked cases dirty');
});

test(`a reindex to a new model builds its blocks before the switch and drops the retired model's (${databaseLabel})`, async (t) => {
  t.diagnostic(canBuild ? 'fcdn_search installed: blocks built and checked' : 'fcdn_search not installed: only the drop is checked');
  const { active: retired, other: next } = await models();
  await giveBlocks(retired);
  // A change under the retired model leaves a dirty mark, as ingests would.
  await svc.db.raw.query('UPDATE slice_codes SET deep = ~deep WHERE model_id = $1 AND slice_offset = 1', [retired]);
  assert.ok((await blockRows(retired)).dirty > 0);
  const job = await reindex(next);
  assert.equal(job.status, 'SUCCEEDED', job.error ?? '');
  assert.equal(job.model.active, true);
  assert.deepEqual(await blockRows(retired), { sets: 0, blocks: 0, dirty: 0 }, 'the retired model keeps its block set, blocks or dirty marks');
  if (canBuild) {
    // No search has run since: only the switch itself can have built them.
    const status = await svc.service.repos.search.blocks.status(next);
    assert.ok(status?.built, `the new model has no blocks at its activation: ${JSON.stringify(status)}`);
    assert.equal(status.sliceWindow, svc.service.repos.search.sliceWindow);
    assert.equal(status.cases, 3);
    assert.equal(status.dirty, 0);
  }
});

test(`activateModel builds the target's blocks before the switch and drops the retired model's (${databaseLabel})`, async () => {
  const { active: retired, other: target } = await models();
  await giveBlocks(retired);
  const res = await svc.gql('mutation ($m: ID!) { activateModel(id: $m) { id active } }', { m: String(target) });
  assert.equal(res.errors, undefined, JSON.stringify(res.errors));
  assert.deepEqual(await blockRows(retired), { sets: 0, blocks: 0, dirty: 0 }, 'the retired model keeps its block set, blocks or dirty marks');
  if (canBuild) {
    const status = await svc.service.repos.search.blocks.status(target);
    assert.ok(status?.built, `the activated model has no blocks: ${JSON.stringify(status)}`);
    assert.equal(status.cases, 3);
  }
});

test(`the upkeep loop does not bring back a retired model's blocks after a switch (${databaseLabel})`, async () => {
  const { other: retired } = await models();
  assert.deepEqual(await blockRows(retired), { sets: 0, blocks: 0, dirty: 0 });
  // The retired model was searched just before the switch: the loop still has it noted.
  const blocks = svc.service.repos.search.blocks;
  blocks.noteSearched(retired, true);
  await blocks.maintainSearched();
  assert.deepEqual(await blockRows(retired), { sets: 0, blocks: 0, dirty: 0 }, 'the upkeep loop registered the retired model again');
  // Its triggers record nothing for it: a change to a case marks only the active model dirty.
  await svc.db.raw.query('UPDATE slice_codes SET deep = ~deep WHERE model_id = $1 AND slice_offset = 1', [retired]);
  assert.equal((await blockRows(retired)).sets, 0);
});

test(`an activation refused for missing codes leaves no block set behind (${databaseLabel})`, async () => {
  const { other } = await models();
  await svc.db.raw.query('DELETE FROM slice_codes WHERE model_id = $1 AND slice_offset = -1', [other]);
  const res = await svc.gql('mutation ($m: ID!) { activateModel(id: $m) { id } }', { m: String(other) });
  assert.equal(res.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT', JSON.stringify(res.errors));
  assert.equal((await blockRows(other)).sets, 0);
});
