/**
 * Per-request DataLoaders: every relation the schema exposes is fetched in one query per level of
 * the response, however many parents ask (no N+1). The composition root makes a fresh set for each
 * GraphQL request (Core.newLoaders); resolvers only call .load().
 */
import DataLoader from 'dataloader';
import type { DiagnosticReport, ModelVersion, ReindexJob, Slice } from '../repositories/records.ts';
import type { CaseRecord, StudyRecord } from '../repositories/case.repository.ts';
import type { SliceCodeRow } from '../repositories/code.repository.ts';
import type { ReadRepositories, ReadSession, Repositories } from '../repositories/index.ts';

function byKey<K, V>(keys: readonly K[], rows: V[], keyOf: (row: V) => K): (V | null)[] {
  const map = new Map(rows.map((r) => [keyOf(r), r]));
  return keys.map((k) => map.get(k) ?? null);
}

function groupBy<K, V>(keys: readonly K[], rows: V[], keyOf: (row: V) => K | null): V[][] {
  const map = new Map<K, V[]>(keys.map((k) => [k, []]));
  for (const r of rows) {
    const k = keyOf(r);
    if (k != null) map.get(k)?.push(r);
  }
  return keys.map((k) => map.get(k)!);
}

/** Codes are loaded per (model, slice); the key is "modelId:sliceId". */
export function codeKey(modelId: number, sliceId: number): string {
  return `${modelId}:${sliceId}`;
}

/**
 * Reads go through the request's read session (`reads`: one node for the whole response, a
 * streaming replica with FCDN_READ_DATABASE_URL); a mutation calls usePrimary() before it runs
 * (src/http/graphql.ts), so its answer shows its own writes. Reindex jobs are read on the primary.
 */
export function createLoaders(repos: Repositories) {
  let activeModel: Promise<ModelVersion | null> | undefined;
  let reads = repos.reads();
  const read = <T>(step: (r: ReadRepositories) => Promise<T>) => reads.run(step);
  return {
    /** This request's read session (searches and listings of the request use it too). */
    get reads(): ReadSession {
      return reads;
    },
    /** Read on the primary from now on (before a mutation runs). */
    usePrimary(): void {
      reads = repos.reads({ primary: true });
    },
    /** The active model, read once per request (Slice.codes defaults to it). */
    activeModel: () => (activeModel ??= read((r) => r.models.findActive())),
    caseById: new DataLoader<number, CaseRecord | null>(async (ids) => byKey(ids, await read((r) => r.cases.findByIds(ids)), (c) => c.id)),
    studyById: new DataLoader<number, StudyRecord | null>(async (ids) => byKey(ids, await read((r) => r.cases.findStudiesByIds(ids)), (s) => s.id)),
    casesByStudy: new DataLoader<number, CaseRecord[]>(async (ids) => groupBy(ids, await read((r) => r.cases.findByStudyIds(ids)), (c) => c.studyId)),
    slicesByCase: new DataLoader<number, Slice[]>(async (ids) => groupBy(ids, await read((r) => r.slices.findByCaseIds(ids)), (s) => s.caseId)),
    reportsByCase: new DataLoader<number, DiagnosticReport[]>(async (ids) => groupBy(ids, await read((r) => r.reports.findByCaseIds(ids)), (r) => r.caseId)),
    reportsByStudy: new DataLoader<number, DiagnosticReport[]>(async (ids) => groupBy(ids, await read((r) => r.reports.findByStudyIds(ids)), (r) => r.studyId)),
    modelById: new DataLoader<number, ModelVersion | null>(async (ids) => byKey(ids, await read((r) => r.models.findByIds(ids)), (m) => m.id)),
    jobById: new DataLoader<number, ReindexJob | null>(async (ids) => byKey(ids, await repos.jobs.findByIds(ids), (j) => j.id)),
    codes: new DataLoader<string, SliceCodeRow | null>(async (keys) => {
      const byModel = new Map<number, number[]>();
      for (const k of keys) {
        const [m, s] = k.split(':').map(Number) as [number, number];
        byModel.set(m, [...(byModel.get(m) ?? []), s]);
      }
      const rows = (await Promise.all([...byModel].map(async ([m, ids]) => (await read((r) => r.codes.findForSlices(m, ids))).map((r) => ({ ...r, modelId: m }))))).flat();
      return byKey(keys, rows, (r) => codeKey(r.modelId, r.sliceId));
    }),
  };
}

export type Loaders = ReturnType<typeof createLoaders>;
