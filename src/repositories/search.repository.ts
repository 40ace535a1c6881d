/**
 * Runs the Joint-distance search (the SQL and its explanation: ./search-sql.ts) and chooses how:
 * FCDN_SEARCH_METHOD `auto` (default) takes `blocks` where the fcdn_search extension is installed
 * (Postgres with scripts/install-fcdn-search.sh), else `naive` (PGlite, or a Postgres without it).
 * Every method it may choose is exact and returns the same rows, ties included.
 */
import { DEFAULT_SLICE_WINDOW, type SearchMethodSetting } from '../config.ts';
import type { JointWeights } from '../domain/joint-distance.ts';
import type { CaseFilter } from './case.repository.ts';
import type { PrismaClient } from './executor.ts';
import { BlockMaintenance, isSqlState, type BlockMaintenanceOptions } from './search-methods/blocks.ts';
import { BLOCKS_AVAILABLE_SQL, BLOCKS_SEARCH_SQL, BLOCKS_TIE_COUNT_SQL, HNSW_RERANK_SEARCH_SQL, JOINT_DISTANCE_SEARCH_SQL, JOINT_TIE_COUNT_SQL, NO_BLOCKS_SQLSTATE } from './search-sql.ts';

export interface QueryCodes {
  /** Layer-4 and layer-25 codes of every query slice in the slice window; layer-17 code of the centre slice. */
  shallow: string[];
  middle: string;
  deep: string[];
}

export interface JointSearch {
  modelId: number;
  query: QueryCodes;
  weights: JointWeights;
  k: number;
  excludeCaseId?: number | null;
  excludePatientIds?: number[] | null;
  filter?: CaseFilter | null;
}

export interface RankedCase {
  caseId: number;
  shallowDistance: number;
  middleDistance: number;
  deepDistance: number;
  jointDistance: number;
}

/** Exact methods the service may use; `hnsw` (approximate) only on request (benchmarks). */
export type ExactSearchMethod = 'naive' | 'blocks';
export type SearchMethod = ExactSearchMethod | 'hnsw';

export interface SearchRepositoryOptions {
  /** AppConfig.searchMethod (FCDN_SEARCH_METHOD); default auto. */
  method?: SearchMethodSetting;
  /** AppConfig.sliceWindow (FCDN_SLICE_WINDOW): stored slices at |offset| <= N take part; default DEFAULT_SLICE_WINDOW. */
  sliceWindow?: number;
  /** Rebuild blocks in the background when missing or too dirty (default true). */
  autoMaintain?: boolean;
  maintenance?: BlockMaintenanceOptions;
}

export interface HnswOptions {
  /** Candidates per layer and query slice (default 100). */
  candidates?: number;
  /** hnsw.ef_search (default 400; at least candidates). */
  efSearch?: number;
}

type Row = { caseId: number; dl: number; dm: number; dd: number; joint: number };

const RECHECK_MISSING_MS = 60_000;
/** fcdn_search.topk's largest k (MAX_K in pg/fcdn_search/fcdn_search.c). */
const BLOCKS_MAX_K = 1_000_000;

export class SearchRepository {
  readonly blocks: BlockMaintenance;
  /**
   * The slice window N this repository ranks with (stored side; the blocks are packed with it).
   * Callers give query codes of the query's window only (SearchService cuts them with this N).
   */
  readonly sliceWindow: number;
  private readonly setting: SearchMethodSetting;
  private readonly autoMaintain: boolean;
  private available: { value: boolean; at: number } | null = null;

  constructor(
    private readonly prisma: PrismaClient,
    options: SearchRepositoryOptions = {},
  ) {
    this.setting = options.method ?? 'auto';
    this.autoMaintain = options.autoMaintain ?? true;
    this.sliceWindow = options.sliceWindow ?? DEFAULT_SLICE_WINDOW;
    if (!Number.isInteger(this.sliceWindow) || this.sliceWindow < 0) throw new Error(`slice window must be an integer >= 0, got ${this.sliceWindow}`);
    this.blocks = new BlockMaintenance(prisma, this.sliceWindow, options.maintenance);
  }

  /** Is the fcdn_search extension installed in this database? (Re-checked a minute after a no.) */
  async blocksAvailable(): Promise<boolean> {
    if (this.available && (this.available.value || Date.now() - this.available.at < RECHECK_MISSING_MS)) return this.available.value;
    const [row] = await this.prisma.$queryRawUnsafe<{ n: number }[]>(BLOCKS_AVAILABLE_SQL);
    this.available = { value: Number(row?.n) > 0, at: Date.now() };
    return this.available.value;
  }

  /** The method jointDistanceSearch uses now. */
  async method(): Promise<ExactSearchMethod> {
    if (this.setting === 'naive') return 'naive';
    if (await this.blocksAvailable()) return 'blocks';
    if (this.setting === 'blocks') {
      throw new Error('FCDN_SEARCH_METHOD=blocks, but the fcdn_search extension is not installed in this database (scripts/install-fcdn-search.sh; never on PGlite)');
    }
    return 'naive';
  }

  async jointDistanceSearch(s: JointSearch): Promise<RankedCase[]> {
    return this.searchWith(await this.method(), s);
  }

  /** One search by a named method (tests and benchmarks compare them). */
  async searchWith(method: SearchMethod, s: JointSearch, hnsw: HnswOptions = {}): Promise<RankedCase[]> {
    if (method === 'naive') return this.run(JOINT_DISTANCE_SEARCH_SQL, s);
    if (method === 'hnsw') {
      const candidates = hnsw.candidates ?? 100;
      const ef = Math.max(hnsw.efSearch ?? 400, candidates);
      return this.prisma.$transaction(async (tx) => {
        await tx.$executeRawUnsafe(`SET LOCAL hnsw.ef_search = ${Math.trunc(ef)}`);
        return this.run(HNSW_RERANK_SEARCH_SQL, s, [candidates], tx as unknown as PrismaClient);
      }, { maxWait: 10_000, timeout: 120_000 });
    }
    try {
      const hits = await this.run(BLOCKS_SEARCH_SQL, s);
      if (this.autoMaintain) this.blocks.maybeMaintain(s.modelId);
      return hits;
    } catch (err) {
      if (!isSqlState(err, NO_BLOCKS_SQLSTATE, 'fcdn_search: no blocks for model')) throw err;
      // Not built yet (a new model, a fresh database) or packed with another slice window: the
      // plain SQL answers; build them (for this window) now.
      if (this.autoMaintain) this.blocks.maybeMaintain(s.modelId, true);
      return this.run(JOINT_DISTANCE_SEARCH_SQL, s);
    }
  }

  /**
   * How many eligible cases have exactly this Joint distance, hits included: the size of a tie
   * group, exact (SimilarCasesResult.tiedAtCutoff). `joint` must come from a search by the method
   * in use with the same query. With `blocks`, the top k' of the same search with k' doubling
   * from 2k until a row past `joint` shows up (or fewer rows than asked come back): the C heap
   * keeps each step cheap, and the cost grows with the size of the group, not of the archive.
   * With `naive` (or past topk's largest k), JOINT_TIE_COUNT_SQL: one scan, like the search.
   */
  async countAtJoint(s: JointSearch, joint: number): Promise<number> {
    if ((await this.method()) === 'blocks') {
      try {
        for (let limit = Math.max(2 * s.k, 64); limit <= BLOCKS_MAX_K; limit *= 2) {
          const [row] = await this.prisma.$queryRawUnsafe<{ tied: number; ranked: number; last: number | null }[]>(
            BLOCKS_TIE_COUNT_SQL, ...this.params({ ...s, k: limit }), joint);
          if (!row) break;
          if (Number(row.ranked) < limit || Number(row.last) > joint) return Number(row.tied);
        }
      } catch (err) {
        // No blocks for this model and window (yet): the plain SQL below counts.
        if (!isSqlState(err, NO_BLOCKS_SQLSTATE, 'fcdn_search: no blocks for model')) throw err;
      }
    }
    const [row] = await this.prisma.$queryRawUnsafe<{ n: number }[]>(JOINT_TIE_COUNT_SQL, ...this.params({ ...s, k: null }), joint);
    return Number(row?.n ?? 0);
  }

  /** $1..$15 of every search SQL (search-sql.ts); k null: no limit. */
  private params(s: Omit<JointSearch, 'k'> & { k: number | null }): unknown[] {
    const f = s.filter ?? {};
    return [
      s.query.shallow,
      s.query.middle,
      s.query.deep,
      s.modelId,
      s.weights.shallow,
      s.weights.middle,
      s.weights.deep,
      s.k,
      s.excludeCaseId ?? null,
      s.excludePatientIds?.length ? s.excludePatientIds : null,
      f.malignancyClass?.length ? f.malignancyClass : null,
      f.minDiameterMm ?? null,
      f.maxDiameterMm ?? null,
      f.patientKey ?? null,
      this.sliceWindow,
    ];
  }

  private async run(sql: string, s: JointSearch, extra: unknown[] = [], db: PrismaClient = this.prisma): Promise<RankedCase[]> {
    const rows = await db.$queryRawUnsafe<Row[]>(sql, ...this.params(s), ...extra);
    return rows.map((r) => ({
      caseId: Number(r.caseId),
      shallowDistance: Number(r.dl),
      middleDistance: Number(r.dm),
      deepDistance: Number(r.dd),
      jointDistance: Number(r.joint),
    }));
  }
}
