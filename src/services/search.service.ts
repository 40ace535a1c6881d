/**
 * Similar-case search: turns a query (a stored case, or new slices) into codes of the active
 * model, ranks stored cases by the Joint distance in SQL, and logs the search.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { retryReadOnDisconnect } from '../db/connection-errors.ts';
import { DEFAULT_WEIGHTS, inSliceWindow, type JointWeights } from '../domain/joint-distance.ts';
import { BadInputError, NotFoundError } from '../errors.ts';
import type { ModelVersion } from '../generated/prisma/client.ts';
import type { CaseFilter } from '../repositories/case.repository.ts';
import type { Repositories } from '../repositories/index.ts';
import type { QueryCodes, RankedCase } from '../repositories/search.repository.ts';
import type { QuerySliceImage } from './display-images.ts';
import type { ModelService } from './model.service.ts';
import type { PrepareSlice } from './ports.ts';
import { prepareSliceInputs, type SliceImageInput } from './slice-input.ts';

export const MAX_K = 1000;

export interface SimilarCasesQuery {
  caseId?: number | null;
  images?: SliceImageInput[] | null;
  k?: number | null;
  weights?: Partial<JointWeights> | null;
  excludeSamePatient?: boolean | null;
  excludePatientKey?: string | null;
  filter?: CaseFilter | null;
}

export interface SimilarCasesAnswer {
  model: ModelVersion;
  tookMs: number;
  hits: (RankedCase & { rank: number; tieGroupSize: number })[];
  /** Eligible cases in all with the last hit's Joint distance (0 without hits). */
  tiedAtCutoff: number;
  /** A search by images: every slice sent, as prepared (for display previews); null for a search by case. */
  queryImages: (QuerySliceImage & { inSliceWindow: boolean })[] | null;
}

function weightsOf(input: Partial<JointWeights> | null | undefined): JointWeights {
  const w = { ...DEFAULT_WEIGHTS };
  for (const layer of ['shallow', 'middle', 'deep'] as const) {
    const v = input?.[layer];
    if (v == null) continue;
    if (!Number.isFinite(v) || v < 0 || v > 1000) throw new BadInputError(`weights.${layer} must be a number from 0 to 1000`);
    w[layer] = v;
  }
  return w;
}

export class SearchService {
  constructor(
    private readonly repos: Repositories,
    private readonly models: ModelService,
    private readonly prepare: PrepareSlice,
    private readonly log: Logger,
    private readonly onSearch: (tookMs: number, kind: 'CASE' | 'IMAGES') => void = () => {},
  ) {}

  /** A search only reads, so a connection lost under it is retried (the log write is best effort). */
  async similarCases(q: SimilarCasesQuery): Promise<SimilarCasesAnswer> {
    return retryReadOnDisconnect(() => this.similarCasesOnce(q));
  }

  private async similarCasesOnce(q: SimilarCasesQuery): Promise<SimilarCasesAnswer> {
    const started = performance.now();
    const hasCase = q.caseId != null;
    const hasImages = q.images != null;
    if (hasCase === hasImages) throw new BadInputError('give exactly one of caseId (a stored case) and images (new slices)');
    const k = q.k ?? 10;
    if (!Number.isInteger(k) || k < 1 || k > MAX_K) throw new BadInputError(`k must be an integer from 1 to ${MAX_K}, got ${k}`);
    const weights = weightsOf(q.weights);
    const filter = q.filter ?? null;
    if (filter?.minDiameterMm != null && filter.maxDiameterMm != null && filter.minDiameterMm > filter.maxDiameterMm) {
      throw new BadInputError('filter.minDiameterMm is larger than filter.maxDiameterMm');
    }

    const { version, encoder } = await this.models.active();
    // Only the query's slice window takes part (the search's own window, FCDN_SLICE_WINDOW); the
    // repository cuts the stored cases the same way.
    const sliceWindow = this.repos.search.sliceWindow;
    let query: QueryCodes;
    let excludeCaseId: number | null = null;
    const excludePatientIds: number[] = [];
    let querySlices: number;
    let queryImages: SimilarCasesAnswer['queryImages'] = null;
    if (hasCase) {
      const [stored] = await this.repos.cases.findByIds([q.caseId!]);
      if (!stored) throw new NotFoundError(`no case with id ${q.caseId}`);
      const codes = (await this.repos.codes.findForCase(version.id, stored.id)).filter((c) => inSliceWindow(c.offset, sliceWindow));
      const centre = codes.find((c) => c.offset === 0);
      if (!centre) throw new Error(`case ${stored.id} has no codes under the active model ${version.id}`);
      query = { shallow: codes.map((c) => c.shallow), middle: centre.middle, deep: codes.map((c) => c.deep) };
      excludeCaseId = stored.id;
      if (q.excludeSamePatient ?? true) excludePatientIds.push(stored.patientId);
      querySlices = codes.length;
    } else {
      // Every slice sent is checked as an ingest checks it; only the window's are encoded.
      const prepared = await prepareSliceInputs(q.images!, encoder.card, this.prepare);
      queryImages = prepared.map((s) => ({ offset: s.offset, storedPng: s.storedPng, inSliceWindow: inSliceWindow(s.offset, sliceWindow) }));
      const slices = prepared.filter((s) => inSliceWindow(s.offset, sliceWindow));
      const codes = await encoder.encode(slices.map((s) => s.patch));
      const centre = slices.findIndex((s) => s.offset === 0);
      query = { shallow: codes.map((c) => c.shallow), middle: codes[centre]!.middle, deep: codes.map((c) => c.deep) };
      querySlices = slices.length;
    }

    if (q.excludePatientKey != null) {
      const patientId = await this.repos.cases.findPatientId(q.excludePatientKey);
      if (patientId != null) excludePatientIds.push(patientId);
    }
    const search = { modelId: version.id, query, weights, k, excludeCaseId, excludePatientIds, filter };
    // Tie groups, exact and cheap: one row more than asked says whether the last hit's Joint
    // distance goes on past k. If not (the usual case), every tie group is whole among the hits
    // and counting them there is exact. If it does, the repository counts that one group
    // (countAtJoint); groups at smaller distances always lie wholly inside the top k.
    const probe = await this.repos.search.jointDistanceSearch({ ...search, k: k + 1 });
    const ranked = probe.slice(0, k);
    const cutoff = ranked.at(-1)?.jointDistance;
    const inHits = new Map<number, number>();
    for (const h of ranked) inHits.set(h.jointDistance, (inHits.get(h.jointDistance) ?? 0) + 1);
    let tiedAtCutoff = cutoff === undefined ? 0 : inHits.get(cutoff)!;
    if (cutoff !== undefined && probe.length > k && probe[k]!.jointDistance === cutoff) {
      tiedAtCutoff = await this.repos.search.countAtJoint(search, cutoff);
    }
    const hits = ranked.map((h, i) => ({ ...h, rank: i + 1, tieGroupSize: h.jointDistance === cutoff ? tiedAtCutoff : inHits.get(h.jointDistance)! }));
    const tookMs = performance.now() - started;
    this.onSearch(tookMs, hasCase ? 'CASE' : 'IMAGES');
    this.repos.searchLog
      .record({ tookMs, k, modelId: version.id, queryKind: hasCase ? 'CASE' : 'IMAGES', queryCaseId: excludeCaseId, querySlices, weights: { ...weights }, resultCaseIds: hits.map((h) => h.caseId) })
      .catch((err) => this.log.warn({ err }, 'could not write the search log'));
    return { model: version, tookMs, hits, tiedAtCutoff, queryImages };
  }
}
