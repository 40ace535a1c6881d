/**
 * Similar-case search: turns a query (a stored case, or new slices) into codes of the active
 * model, ranks stored cases by the Joint distance in SQL, and logs the search.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { DEFAULT_WEIGHTS, inSliceWindow, type JointWeights } from '../domain/joint-distance.ts';
import { BadInputError, NotFoundError } from '../errors.ts';
import type { ModelVersion } from '../repositories/records.ts';
import type { CaseFilter } from '../repositories/case.repository.ts';
import type { ReadRepositories, ReadSession, Repositories } from '../repositories/index.ts';
import type { SearchKind } from '../repositories/search-log.repository.ts';
import type { JointSearch, RankedCase } from '../repositories/search.repository.ts';
import type { QuerySliceImage } from './display-images.ts';
import type { ModelService } from './model.service.ts';
import type { FetchPacsNodule, PacsNoduleInput } from './pacs.service.ts';
import type { PrepareSlice } from './ports.ts';
import { prepareSliceInputs, type SliceImageInput } from './slice-input.ts';

export const MAX_K = 1000;

export interface SimilarCasesQuery {
  caseId?: number | null;
  images?: SliceImageInput[] | null;
  /** A nodule in the PACS: its slices are fetched over DICOMweb and searched as uploaded DICOM. */
  pacs?: PacsNoduleInput | null;
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

/** Where a search's time went, for the metrics (ms): fetch (PACS), decode, encode, search (SQL). */
export interface SearchStages {
  fetch?: number;
  decode?: number;
  encode?: number;
  search: number;
}
export type OnSearch = (tookMs: number, kind: SearchKind, stages: SearchStages) => void;

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
    private readonly onSearch: OnSearch = () => {},
    /** The PACS as a source of query slices (PacsService.fetchNodule). */
    private readonly fetchPacsNodule?: FetchPacsNodule,
  ) {}

  /**
   * A search only reads. It runs on one read node (`reads`: the request's, else a new session:
   * the primary, or a streaming replica with FCDN_READ_DATABASE_URL; a read that loses its
   * connection runs again there or on the primary). The active model, the stored codes and the
   * ranking are read in one snapshot of that node, so a lagging replica never mixes models: an
   * image query is encoded with the model active there and encoded again if the ranking's
   * snapshot shows another one (a switch replayed meanwhile). The log write is best effort.
   */
  async similarCases(q: SimilarCasesQuery, reads: ReadSession = this.repos.reads()): Promise<SimilarCasesAnswer> {
    const started = performance.now();
    const hasCase = q.caseId != null;
    const hasImages = q.images != null;
    const hasPacs = q.pacs != null;
    if (Number(hasCase) + Number(hasImages) + Number(hasPacs) !== 1) {
      throw new BadInputError('give exactly one of caseId, images and pacs (a stored case, new slices, or a nodule in the PACS)');
    }
    const kind: SearchKind = hasCase ? 'CASE' : hasPacs ? 'PACS' : 'IMAGES';
    const stages: SearchStages = { search: 0 };
    const k = q.k ?? 10;
    if (!Number.isInteger(k) || k < 1 || k > MAX_K) throw new BadInputError(`k must be an integer from 1 to ${MAX_K}, got ${k}`);
    const weights = weightsOf(q.weights);
    const filter = q.filter ?? null;
    if (filter?.minDiameterMm != null && filter.maxDiameterMm != null && filter.minDiameterMm > filter.maxDiameterMm) {
      throw new BadInputError('filter.minDiameterMm is larger than filter.maxDiameterMm');
    }

    // Only the query's slice window takes part (the search's own window, FCDN_SLICE_WINDOW); the
    // repository cuts the stored cases the same way.
    const sliceWindow = this.repos.search.sliceWindow;
    const common = { weights, k, filter, excludePatientKey: q.excludePatientKey ?? null };
    let found: { version: ModelVersion; ranking: Ranking; querySlices: number; excludeCaseId: number | null };
    let queryImages: SimilarCasesAnswer['queryImages'] = null;
    if (hasCase) {
      const t = performance.now();
      found = await reads.snapshot(async (r) => {
        const version = await activeOn(r);
        const [stored] = await r.cases.findByIds([q.caseId!]);
        if (!stored) throw new NotFoundError(`no case with id ${q.caseId}`);
        const codes = (await r.codes.findForCase(version.id, stored.id)).filter((c) => inSliceWindow(c.offset, sliceWindow));
        const centre = codes.find((c) => c.offset === 0);
        if (!centre) throw new Error(`case ${stored.id} has no codes under the active model ${version.id}`);
        const query = { shallow: codes.map((c) => c.shallow), middle: centre.middle, deep: codes.map((c) => c.deep) };
        const excludePatientIds = (q.excludeSamePatient ?? true) ? [stored.patientId] : [];
        const ranking = await this.rank(r, { ...common, modelId: version.id, query, excludeCaseId: stored.id, excludePatientIds });
        return { version, ranking, querySlices: codes.length, excludeCaseId: stored.id };
      });
      stages.search = performance.now() - t;
    } else {
      let images = q.images;
      let excludeKey = common.excludePatientKey;
      if (hasPacs) {
        if (!this.fetchPacsNodule) throw new BadInputError('pacs: this service has no PACS configured (FCDN_DICOMWEB_URL is not set)');
        // The PACS's files, then exactly the path of DICOM uploaded inline.
        const fetched = await this.fetchPacsNodule(q.pacs!);
        stages.fetch = fetched.fetchMs;
        images = fetched.images;
        // The nodule's own patient, if imported from this PACS under its derived key, is not a
        // similar case of another patient (the caller cannot compute that key to exclude it).
        if ((q.excludeSamePatient ?? true) && excludeKey == null) excludeKey = fetched.patientKey;
      }
      for (let attempt = 1; ; attempt++) {
        const version = await reads.run(activeOn);
        const encoder = await this.models.encoder(version);
        // Every slice sent is checked as an ingest checks it; only the window's are encoded.
        let t = performance.now();
        const prepared = await prepareSliceInputs(images!, encoder.card, this.prepare);
        stages.decode = performance.now() - t;
        queryImages = prepared.map((s) => ({ offset: s.offset, storedPng: s.storedPng, inSliceWindow: inSliceWindow(s.offset, sliceWindow) }));
        const slices = prepared.filter((s) => inSliceWindow(s.offset, sliceWindow));
        t = performance.now();
        const codes = await encoder.encode(slices.map((s) => s.patch));
        stages.encode = performance.now() - t;
        const centre = slices.findIndex((s) => s.offset === 0);
        const query = { shallow: codes.map((c) => c.shallow), middle: codes[centre]!.middle, deep: codes.map((c) => c.deep) };
        t = performance.now();
        const ranking = await reads.snapshot(async (r) =>
          (await activeOn(r)).id === version.id ? this.rank(r, { ...common, excludePatientKey: excludeKey, modelId: version.id, query, excludeCaseId: null, excludePatientIds: [] }) : null,
        );
        stages.search = performance.now() - t;
        if (ranking) {
          found = { version, ranking, querySlices: slices.length, excludeCaseId: null };
          break;
        }
        if (attempt >= 3) throw new Error('the active model changed three times during one search');
      }
    }
    const { version, ranking, querySlices, excludeCaseId } = found;
    const { hits, tiedAtCutoff } = ranking;
    const tookMs = performance.now() - started;
    this.onSearch(tookMs, kind, stages);
    this.repos.searchLog
      .record({ tookMs, k, modelId: version.id, queryKind: kind, queryCaseId: excludeCaseId, querySlices, weights: { ...weights }, resultCaseIds: hits.map((h) => h.caseId) })
      .catch((err) => this.log.warn({ err }, 'could not write the search log'));
    return { model: version, tookMs, hits, tiedAtCutoff, queryImages };
  }

  /** The top k and the size of the last tie group, in the caller's snapshot. */
  private async rank(r: ReadRepositories, s: Omit<JointSearch, 'excludePatientIds'> & { excludePatientIds: number[]; excludePatientKey: string | null }): Promise<Ranking> {
    const { excludePatientKey, ...search } = s;
    if (excludePatientKey != null) {
      const patientId = await r.cases.findPatientId(excludePatientKey);
      if (patientId != null) search.excludePatientIds = [...search.excludePatientIds, patientId];
    }
    const k = search.k;
    // Tie groups, exact and cheap: one row more than asked says whether the last hit's Joint
    // distance goes on past k. If not (the usual case), every tie group is whole among the hits
    // and counting them there is exact. If it does, the repository counts that one group
    // (countAtJoint); groups at smaller distances always lie wholly inside the top k.
    const probe = await r.search.jointDistanceSearch({ ...search, k: k + 1 });
    const ranked = probe.slice(0, k);
    const cutoff = ranked.at(-1)?.jointDistance;
    const inHits = new Map<number, number>();
    for (const h of ranked) inHits.set(h.jointDistance, (inHits.get(h.jointDistance) ?? 0) + 1);
    let tiedAtCutoff = cutoff === undefined ? 0 : inHits.get(cutoff)!;
    if (cutoff !== undefined && probe.length > k && probe[k]!.jointDistance === cutoff) {
      tiedAtCutoff = await r.search.countAtJoint(search, cutoff);
    }
    const hits = ranked.map((h, i) => ({ ...h, rank: i + 1, tieGroupSize: h.jointDistance === cutoff ? tiedAtCutoff : inHits.get(h.jointDistance)! }));
    return { hits, tiedAtCutoff };
  }
}

type Ranking = Pick<SimilarCasesAnswer, 'hits' | 'tiedAtCutoff'>;

/** The model active on the node (and in the snapshot) `r` reads. */
async function activeOn(r: ReadRepositories): Promise<ModelVersion> {
  const version = await r.models.findActive();
  if (!version) throw new Error('no active model: the service registers one at start');
  return version;
}
