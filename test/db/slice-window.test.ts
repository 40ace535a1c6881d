/**
 * The slice window of the Joint distance (PRODUCT.md "Joint distance"; FCDN_SLICE_WINDOW = N):
 * only slices at offsets -N..N enter DL and DD. A 30-slice case ranks exactly like the same case
 * stored with only its central 2N+1 slices, a far slice identical to the query cannot lower DL/DD,
 * and the result equals the TypeScript reference for N = 0, 1, 2, 6, with every method available
 * here (naive; blocks where fcdn_search is installed). Blocks packed with one window are never
 * used to answer with another.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { compareHits, inSliceWindow, jointDistance, type SliceCodeSet } from '../../src/domain/joint-distance.ts';
import pino from 'pino';
import { SearchRepository, type JointSearch, type RankedCase, type SearchMethod } from '../../src/repositories/search.repository.ts';
import { searchBlockUpkeep } from '../../src/services/search-block-upkeep.ts';
import { NO_BLOCKS_SQLSTATE } from '../../src/repositories/search-sql.ts';
import { createTestDatabase, databaseLabel, usingPostgres, type TestDatabase } from '../../fixtures/test-database.ts';
import { mulberry32, perturb, randomCode, randomInt, randomWeights } from '../../fixtures/random-codes.ts';
import { seedCases } from '../../fixtures/seed-cases.ts';

const WINDOWS = [0, 1, 2, 6];
const GALLERY = 150;
const QUERIES = 8;
const FAR_OFFSET = 6;

interface Stored {
  id: number;
  name: string;
  slices: SliceCodeSet[];
}

const rand = mulberry32(30_2019);
const centres = { shallow: [] as string[], middle: [] as string[], deep: [] as string[] };
let db: TestDatabase;
let modelId: number;
let stored: Stored[] = [];
const byName = new Map<string, Stored>();
/** The query whose centre codes the far slice of case `far` copies. */
let farQuery: SliceCodeSet[];

/** A case near one cluster centre per layer; offsets lo..hi (0 included), each non-centre one dropped with pHole. */
function clusteredSlices(lo: number, hi: number, pHole = 0): SliceCodeSet[] {
  const pick = (layer: 'shallow' | 'middle' | 'deep') => perturb(centres[layer][randomInt(rand, 0, centres[layer].length - 1)]!, rand, 0.08);
  const base = { shallow: pick('shallow'), middle: pick('middle'), deep: pick('deep') };
  const slices: SliceCodeSet[] = [];
  for (let offset = lo; offset <= hi; offset++) {
    if (offset !== 0 && rand() < pHole) continue;
    slices.push({ offset, shallow: perturb(base.shallow, rand, 0.04), middle: perturb(base.middle, rand, 0.04), deep: perturb(base.deep, rand, 0.04) });
  }
  return slices;
}

function randomCaseSlices(): SliceCodeSet[] {
  const count = rand() < 0.5 ? randomInt(rand, 1, 5) : randomInt(rand, 6, 20);
  const lo = -randomInt(rand, 0, count - 1);
  return clusteredSlices(lo, lo + count - 1, 0.2);
}

const central = (slices: SliceCodeSet[], n: number) => slices.filter((s) => inSliceWindow(s.offset, n));

function searchOf(query: SliceCodeSet[], sliceWindow: number, weights = { shallow: 1, middle: 1, deep: 1 }): JointSearch {
  // The caller gives the query's window (SearchService does: it encodes only those slices).
  const q = central(query, sliceWindow);
  return { modelId, query: { shallow: q.map((s) => s.shallow), middle: q.find((s) => s.offset === 0)!.middle, deep: q.map((s) => s.deep) }, weights, k: 1000 };
}

function reference(query: SliceCodeSet[], sliceWindow: number, weights = { shallow: 1, middle: 1, deep: 1 }): RankedCase[] {
  return stored.map((c) => ({ caseId: c.id, ...jointDistance(query, c.slices, weights, sliceWindow) })).sort(compareHits);
}

const distances = (hits: RankedCase[], name: string) => {
  const h = hits.find((x) => x.caseId === byName.get(name)!.id);
  assert.ok(h, `case ${name} is ranked`);
  const { caseId: _, ...d } = h;
  return d;
};

async function methods(repo: SearchRepository): Promise<SearchMethod[]> {
  return (await repo.blocksAvailable()) ? ['naive', 'blocks'] : ['naive'];
}

before(async () => {
  db = await createTestDatabase();
  for (const layer of ['shallow', 'middle', 'deep'] as const) for (let i = 0; i < 6; i++) centres[layer].push(randomCode(rand));
  [{ id: modelId }] = await db.raw.query<{ id: number }>(
    `INSERT INTO model_versions (name, sha256, bits, file_path, card, active) VALUES ('window', 'window', 64, '-', '{}', true) RETURNING id`,
  );
  const patients = (await db.raw.query<{ id: number }>(`INSERT INTO patients (patient_key) SELECT 'W' || g FROM generate_series(1, 40) g RETURNING id`)).map((r) => r.id);

  const long = clusteredSlices(-15, 14); // 30 slices
  farQuery = clusteredSlices(-4, 4);
  const q0 = farQuery.find((s) => s.offset === 0)!;
  const named: [string, SliceCodeSet[]][] = [
    ['long', long],
    // The same case stored with only its central slices (the importer's 64 vs the paper's 3).
    ['central-1', central(long, 0)],
    ['central-3', central(long, 1)],
    ['central-5', central(long, 2)],
    ['central-13', central(long, 6)],
    // long's 3 central slices plus a far slice whose layer-4/25 codes are those of farQuery's centre.
    ['far', [...central(long, 1), { offset: FAR_OFFSET, shallow: q0.shallow, middle: randomCode(rand), deep: q0.deep }]],
  ];
  for (let i = 0; i < GALLERY; i++) named.push([`g${i}`, randomCaseSlices()]);
  const ids = await seedCases(
    db.raw,
    modelId,
    named.map(([, slices], i) => ({ patientId: patients[i % patients.length]!, malignancyClass: 'BENIGN', diameterMm: 10, slices })),
  );
  stored = named.map(([name, slices], i) => ({ id: ids[i]!, name, slices }));
  for (const c of stored) byName.set(c.name, c);
});

after(async () => db?.close());

test(`a 30-slice case gives exactly the distances of its central slices; far slices change nothing; N = ${WINDOWS.join(', ')} (${databaseLabel})`, async (t) => {
  const queries = [farQuery, ...Array.from({ length: QUERIES }, () => randomCaseSlices()), clusteredSlices(-15, 15)];
  let compared = 0;
  for (const n of WINDOWS) {
    const repo = new SearchRepository(db.prisma, { sliceWindow: n, autoMaintain: false });
    const ms = await methods(repo);
    if (ms.includes('blocks')) {
      const built = await repo.blocks.rebuild(modelId);
      assert.equal(built?.cases, stored.length, `blocks for N=${n}`);
      assert.equal((await repo.blocks.status(modelId))?.sliceWindow, n);
    }
    const copy = `central-${2 * n + 1}`;
    for (const [qi, query] of queries.entries()) {
      const weights = qi % 3 === 2 ? randomWeights(rand, 0) : undefined;
      const expected = reference(query, n, weights);
      for (const method of ms) {
        const label = `N=${n}, ${method}, query ${qi}`;
        const hits = await repo.searchWith(method, searchOf(query, n, weights));
        assert.deepEqual(hits, expected, `${label}: equals the reference (window on both sides)`);
        // The test: the long case and its central window are the same case to the search.
        assert.deepEqual(distances(hits, 'long'), distances(hits, copy), `${label}: 30 slices = its ${2 * n + 1} central slices`);
        // Query slices outside the window do not enter either.
        assert.deepEqual(hits, await repo.searchWith(method, searchOf(central(query, n), n, weights)), `${label}: query cut to its window`);
        // The far slice enters only when the window reaches it.
        const far = distances(hits, 'far');
        if (n < FAR_OFFSET) assert.deepEqual(far, distances(hits, `central-${2 * Math.min(n, 1) + 1}`), `${label}: the far slice changes nothing`);
        if (qi === 0) {
          if (n < FAR_OFFSET) assert.ok(far.shallowDistance > 0 && far.deepDistance > 0, `${label}: DL/DD not lowered by the far slice (${JSON.stringify(far)})`);
          else assert.equal(far.shallowDistance + far.deepDistance, 0, `${label}: inside the window, the identical slice gives DL = DD = 0`);
        }
        compared += hits.length;
      }
    }
  }
  t.diagnostic(`${compared} ranked hits compared over ${WINDOWS.length} windows`);
  // Without the window the 30-slice case would be a different case: the test has teeth.
  const wide = reference(farQuery, 15);
  assert.notDeepEqual(distances(wide, 'long'), distances(wide, 'central-3'));
});

test(`blocks packed with one window are never used for another (${databaseLabel})`, async (t) => {
  const one = new SearchRepository(db.prisma, { sliceWindow: 1, autoMaintain: false });
  const two = new SearchRepository(db.prisma, { sliceWindow: 2, autoMaintain: false });
  const isNoBlocks = (err: unknown) => {
    assert.match(String((err as Error).message), /no blocks for model \d+ with slice window 2/);
    assert.equal((err as { code?: string }).code, NO_BLOCKS_SQLSTATE, 'the SQLSTATE the repository falls back on');
    return true;
  };
  // PGlite too: the window check and its SQLSTATE are plain SQL.
  await db.raw.query('DELETE FROM fcdn_search.block_sets');
  await assert.rejects(db.raw.query('SELECT fcdn_search.blocks_for_window($1, 2)', [modelId]), isNoBlocks);
  await db.raw.query(`INSERT INTO fcdn_search.block_sets (model_id, built_at, slice_window) VALUES ($1, now(), 1)`, [modelId]);
  await assert.rejects(db.raw.query('SELECT fcdn_search.blocks_for_window($1, 2)', [modelId]), isNoBlocks);
  const [{ ok }] = await db.raw.query<{ ok: string }>('SELECT fcdn_search.blocks_for_window($1, 1)::text AS ok', [modelId]);
  assert.equal(ok, 'fcdn_search.blocks');
  await db.raw.query('DELETE FROM fcdn_search.block_sets');
  if (!(await one.blocksAvailable())) return t.skip('fcdn_search is not installed here: checked the window check only');

  await one.blocks.rebuild(modelId);
  const query = clusteredSlices(-3, 3);
  // N=2 over blocks of N=1: treated as absent, answered by the plain SQL with N=2.
  assert.deepEqual(await two.searchWith('blocks', searchOf(query, 2)), reference(query, 2));
  assert.equal((await two.blocks.status(modelId))?.sliceWindow, 1, 'the blocks are untouched (autoMaintain off)');
  // With upkeep on, that search rebuilds them for its own window.
  const maintained = new SearchRepository(db.prisma, { sliceWindow: 2, maintenance: { checkEveryMs: 0 } });
  const upkeep = searchBlockUpkeep(maintained.blocks, 100, pino({ level: 'silent' }));
  upkeep.start();
  try {
    assert.deepEqual(await maintained.searchWith('blocks', searchOf(query, 2)), reference(query, 2));
    for (let i = 0; i < 300 && (await maintained.blocks.status(modelId))?.sliceWindow !== 2; i++) await new Promise((r) => setTimeout(r, 100));
  } finally {
    await upkeep.stop();
  }
  assert.equal((await maintained.blocks.status(modelId))?.sliceWindow, 2, 'rebuilt for N=2 in the background');
  assert.deepEqual(await two.searchWith('blocks', searchOf(query, 2)), reference(query, 2));
  assert.deepEqual(await one.searchWith('blocks', searchOf(query, 1)), reference(query, 1), 'and now N=1 falls back');
  if (usingPostgres) t.diagnostic('blocks of N=1 refused for N=2, rebuilt for N=2, then refused for N=1');
});
