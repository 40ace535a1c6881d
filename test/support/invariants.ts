/**
 * The invariants every fault test checks afterwards, in one place: whatever failed, the stored
 * data is whole. Every case has its slices (with a centre slice), codes under the active model
 * for every slice, and every image in the object store; no row points at nothing; no object in
 * the store is left without its slice; no externalId is used twice.
 */
import assert from 'node:assert/strict';
import type { RawSql } from '../../src/db/database.ts';
import type { ObjectStore } from '../../src/storage/object-store.ts';

/** Where ingest stores slice images (src/services/ingest.service.ts). */
const IMAGE_PREFIX = 'cases/';

export interface InvariantOptions {
  /** When given, every case must have exactly this many slices. */
  slicesPerCase?: number;
}

export interface StoredTotals {
  cases: number;
  slices: number;
  objects: number;
  /** Outbox rows not yet drained (src/services/object-janitor.ts). */
  pendingDeletions: number;
}

const ORPHAN_ROW_CHECKS: [string, string][] = [
  ['cases without slices (a partial case)', 'SELECT c.id FROM nodule_cases c WHERE NOT EXISTS (SELECT 1 FROM slices s WHERE s.case_id = c.id)'],
  ['cases without a centre slice (offset 0)', 'SELECT c.id FROM nodule_cases c WHERE NOT EXISTS (SELECT 1 FROM slices s WHERE s.case_id = c.id AND s.slice_offset = 0)'],
  ['slices without their case', 'SELECT s.id FROM slices s LEFT JOIN nodule_cases c ON c.id = s.case_id WHERE c.id IS NULL'],
  ['codes without their slice', 'SELECT c.slice_id AS id FROM slice_codes c LEFT JOIN slices s ON s.id = c.slice_id WHERE s.id IS NULL'],
  ['codes whose case or offset differ from their slice', 'SELECT c.slice_id AS id FROM slice_codes c JOIN slices s ON s.id = c.slice_id WHERE s.case_id <> c.case_id OR s.slice_offset <> c.slice_offset'],
  ['reports without a case or study', `SELECT r.id FROM diagnostic_reports r LEFT JOIN nodule_cases c ON c.id = r.case_id LEFT JOIN studies st ON st.id = r.study_id
     WHERE (r.case_id IS NOT NULL AND c.id IS NULL) OR (r.study_id IS NOT NULL AND st.id IS NULL) OR (r.case_id IS NULL AND r.study_id IS NULL)`],
  ['cases without their patient', 'SELECT c.id FROM nodule_cases c LEFT JOIN patients p ON p.id = c.patient_id WHERE p.id IS NULL'],
  ['cases pointing at a missing study', 'SELECT c.id FROM nodule_cases c LEFT JOIN studies st ON st.id = c.study_id WHERE c.study_id IS NOT NULL AND st.id IS NULL'],
  ['studies without their patient', 'SELECT st.id FROM studies st LEFT JOIN patients p ON p.id = st.patient_id WHERE p.id IS NULL'],
  ['duplicate externalIds', 'SELECT min(id) AS id FROM nodule_cases WHERE external_id IS NOT NULL GROUP BY external_id HAVING count(*) > 1'],
  ['slices sharing an image key', 'SELECT min(id) AS id FROM slices GROUP BY image_key HAVING count(*) > 1'],
];

/** Every broken invariant, described with up to five offending ids or keys; [] when all hold. */
export async function findViolations(raw: RawSql, store: ObjectStore, opts: InvariantOptions = {}): Promise<{ violations: string[]; totals: StoredTotals }> {
  const violations: string[] = [];
  const report = (what: string, items: unknown[]) => {
    if (items.length > 0) violations.push(`${what}: ${items.length} (${items.slice(0, 5).join(', ')}${items.length > 5 ? ', ...' : ''})`);
  };
  for (const [what, sql] of ORPHAN_ROW_CHECKS) report(what, (await raw.query<{ id: number }>(sql)).map((r) => r.id));

  const active = await raw.query<{ id: number }>('SELECT id FROM model_versions WHERE active');
  if (active.length !== 1) violations.push(`expected one active model, found ${active.length}`);
  else {
    const missing = await raw.query<{ id: number }>(
      'SELECT s.id FROM slices s WHERE NOT EXISTS (SELECT 1 FROM slice_codes c WHERE c.slice_id = s.id AND c.model_id = $1)',
      [active[0]!.id],
    );
    report(`slices without codes under the active model ${active[0]!.id}`, missing.map((r) => r.id));
  }
  if (opts.slicesPerCase !== undefined) {
    const wrong = await raw.query<{ id: number; n: number }>('SELECT case_id AS id, count(*)::int AS n FROM slices GROUP BY case_id HAVING count(*) <> $1', [opts.slicesPerCase]);
    report(`cases without exactly ${opts.slicesPerCase} slices`, wrong.map((r) => `${r.id}:${r.n}`));
  }

  const keys = (await raw.query<{ key: string }>('SELECT image_key AS key FROM slices')).map((r) => r.key);
  const objects = new Set(await store.list(IMAGE_PREFIX));
  const referenced = new Set(keys);
  report('slices whose image is missing from the object store', keys.filter((k) => !objects.has(k)));
  report('objects in the store without a slice (orphans)', [...objects].filter((k) => !referenced.has(k)));

  const [counts] = await raw.query<{ cases: number; slices: number; pending: number }>(
    'SELECT (SELECT count(*)::int FROM nodule_cases) AS cases, (SELECT count(*)::int FROM slices) AS slices, (SELECT count(*)::int FROM pending_object_deletions) AS pending',
  );
  return { violations, totals: { cases: counts!.cases, slices: counts!.slices, objects: objects.size, pendingDeletions: counts!.pending } };
}

/**
 * Asserts the invariants. Removal of orphaned images is asynchronous (the deletion outbox), so the
 * check is repeated for up to settleMs before it fails with the last list of violations.
 */
export async function assertInvariants(raw: RawSql, store: ObjectStore, opts: InvariantOptions & { settleMs?: number } = {}): Promise<StoredTotals> {
  const deadline = Date.now() + (opts.settleMs ?? 20_000);
  for (;;) {
    const { violations, totals } = await findViolations(raw, store, opts);
    if (violations.length === 0) return totals;
    if (Date.now() > deadline) assert.deepEqual(violations, [], 'the stored data is not whole');
    await new Promise((r) => setTimeout(r, 250));
  }
}
