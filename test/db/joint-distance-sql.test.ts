/**
 * Property test: the Joint-distance SQL (src/repositories/search-sql.ts) ranks exactly like the
 * plain TypeScript reference (src/domain/joint-distance.ts) on random clustered codes: the same
 * cases, in the same order, with the same DL/DM/DD/Joint, ties included. Cases and queries have
 * random slice counts (1 to 16) and offsets (with gaps), searched with slice windows N = 0..3:
 * the reference cuts both sides to the window itself. Every method available here is compared
 * (naive; blocks, rebuilt for each N, where fcdn_search is installed).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { compareHits, inSliceWindow, jointDistance, type SliceCodeSet } from '../../src/domain/joint-distance.ts';
import type { MalignancyClass } from '../../src/repositories/case.repository.ts';
import { SearchRepository, type SearchMethod } from '../../src/repositories/search.repository.ts';
import { createTestDatabase, databaseLabel, type TestDatabase } from '../../fixtures/test-database.ts';
import { mulberry32, perturb, randomCode, randomInt, randomWeights } from '../../fixtures/random-codes.ts';
import { seedCases } from '../../fixtures/seed-cases.ts';

const CASES = 1200;
const PATIENTS = 300;
const QUERIES = 80;
const WINDOWS = [0, 1, 2, 3];
const CLASSES: MalignancyClass[] = ['BENIGN', 'INDETERMINATE', 'MALIGNANT'];

interface StoredCase {
  id: number;
  patientId: number;
  malignancyClass: MalignancyClass;
  diameterMm: number;
  slices: SliceCodeSet[];
}

let db: TestDatabase;
let cases: StoredCase[];
let modelId: number;
const rand = mulberry32(20191101);
const centres = { shallow: [] as string[], middle: [] as string[], deep: [] as string[] };

/** Mostly the paper's few slices, often many (as imported cases have); offsets with gaps, the centre always there. */
function randomSliceCount(max: number): number {
  return rand() < 0.6 ? randomInt(rand, 1, 5) : randomInt(rand, 6, max);
}

function clusteredSlices(count: number): SliceCodeSet[] {
  // A case sits near one cluster centre per layer; its slices are small perturbations of it.
  const base = {
    shallow: perturb(centres.shallow[randomInt(rand, 0, 7)]!, rand, 0.08),
    middle: perturb(centres.middle[randomInt(rand, 0, 7)]!, rand, 0.08),
    deep: perturb(centres.deep[randomInt(rand, 0, 7)]!, rand, 0.08),
  };
  const first = -randomInt(rand, 0, count - 1);
  return Array.from({ length: count }, (_, i) => ({
    offset: first + i,
    shallow: perturb(base.shallow, rand, 0.04),
    middle: perturb(base.middle, rand, 0.04),
    deep: perturb(base.deep, rand, 0.04),
  })).filter((s) => s.offset === 0 || rand() >= 0.15);
}

before(async () => {
  db = await createTestDatabase();
  for (const layer of ['shallow', 'middle', 'deep'] as const) for (let i = 0; i < 8; i++) centres[layer].push(randomCode(rand));
  [{ id: modelId }] = await db.raw.query<{ id: number }>(
    `INSERT INTO model_versions (name, sha256, bits, file_path, card, active) VALUES ('prop', 'prop', 64, '-', '{}', true) RETURNING id`,
  );
  await db.raw.query(`INSERT INTO patients (patient_key) SELECT 'P' || g FROM generate_series(1, $1) g`, [PATIENTS]);
  const patientIds = (await db.raw.query<{ id: number }>('SELECT id FROM patients ORDER BY id')).map((r) => r.id);
  cases = Array.from({ length: CASES }, () => ({
    id: 0,
    patientId: patientIds[randomInt(rand, 0, PATIENTS - 1)]!,
    malignancyClass: CLASSES[randomInt(rand, 0, 2)]!,
    diameterMm: randomInt(rand, 30, 300) / 10,
    slices: clusteredSlices(randomSliceCount(16)),
  }));
  const ids = await seedCases(db.raw, modelId, cases);
  ids.forEach((id, i) => (cases[i]!.id = id));
});

after(async () => db?.close());

test(`SQL Joint distance equals the TypeScript reference on ${CASES} random cases, ${QUERIES} queries, slice windows ${WINDOWS.join(', ')} (${databaseLabel})`, async () => {
  let compared = 0;
  let tiedPairs = 0;
  let methodsUsed: SearchMethod[] = [];
  for (const [w, sliceWindow] of WINDOWS.entries()) {
    const search = new SearchRepository(db.prisma, { sliceWindow, autoMaintain: false });
    methodsUsed = (await search.blocksAvailable()) ? ['naive', 'blocks'] : ['naive'];
    if (methodsUsed.includes('blocks')) await search.blocks.rebuild(modelId);
    for (let q = w * (QUERIES / WINDOWS.length); q < (w + 1) * (QUERIES / WINDOWS.length); q++) {
      const query = clusteredSlices(randomSliceCount(9));
      const weights = randomWeights(rand, 0.2);
      const k = rand() < 0.2 ? 1000 : randomInt(rand, 1, 60);
      const excludePatientId = rand() < 0.3 ? cases[randomInt(rand, 0, CASES - 1)]!.patientId : null;
      const classes = rand() < 0.3 ? [CLASSES[randomInt(rand, 0, 2)]!] : null;
      const minDiameterMm = rand() < 0.2 ? 10 : null;

      const expected = cases
        .filter((c) => c.patientId !== excludePatientId && (!classes || classes.includes(c.malignancyClass)) && (minDiameterMm == null || c.diameterMm >= minDiameterMm))
        .filter((c) => c.slices.some((s) => s.offset === 0))
        .map((c) => ({ caseId: c.id, ...jointDistance(query, c.slices, weights, sliceWindow) }))
        .sort(compareHits)
        .slice(0, k);
      // The repository takes the query's window (SearchService cuts it: only those slices are encoded).
      const inWindow = query.filter((s) => inSliceWindow(s.offset, sliceWindow));
      for (const method of methodsUsed) {
        const actual = await search.searchWith(method, {
          modelId,
          query: { shallow: inWindow.map((s) => s.shallow), middle: query.find((s) => s.offset === 0)!.middle, deep: inWindow.map((s) => s.deep) },
          weights,
          k,
          excludePatientIds: excludePatientId == null ? null : [excludePatientId],
          filter: { malignancyClass: classes, minDiameterMm },
        });
        assert.deepEqual(actual, expected, `query ${q}, N=${sliceWindow}, ${method} (k=${k}, weights ${JSON.stringify(weights)})`);
        compared += actual.length;
      }
      for (let i = 1; i < expected.length; i++) if (expected[i]!.jointDistance === expected[i - 1]!.jointDistance) tiedPairs++;
    }
  }
  // The codes are clustered so that ties are frequent: the tie-breaking rules are really exercised.
  assert.ok(tiedPairs > 100, `only ${tiedPairs} tied neighbours; the test would not exercise tie-breaking`);
  console.log(`# ${databaseLabel} (${methodsUsed.join(' + ')}): ${CASES} cases, ${QUERIES} queries, ${compared} ranked hits compared, ${tiedPairs} tied neighbours`);
});
