/**
 * Runs the Joint-distance search (the SQL and its explanation: ./search-sql.ts) and chooses how:
 * FCDN_SEARCH_METHOD `auto` (default) takes `blocks` where the fcdn_search extension is installed
 * (Postgres with scripts/install-fcdn-search.sh), else `naive` (PGlite, or a Postgres without it).
 * Every method it may choose is exact and returns the same rows, ties included.
 */
import { DEFAULT_SLICE_WINDOW, type JointWeights } from '../domain/joint-distance.ts';
import type { CaseFilter } from './case.repository.ts';
import type { PrismaClient } from './executor.ts';
import { isSqlState } from '../db/postgres-errors.ts';
import { BlockMaintenance, type BlockMaintenanceOptions } from './search-methods/blocks.ts';
import { BLOCKS_AVAILABLE_SQL, BLOCKS_SEARCH_SQL, BLOCKS_TIE_COUNT_SQL, HNSW_RERANK_SEARCH_SQL, JOINT_DISTANCE_SEARCH_SQL, JOINT_TIE_COUNT_SQL, NO_BLOCKS_SQLSTATE } from './search-sql.ts';

/**
 * FCDN_SEARCH_METHOD: how similarCases ranks (./search-sql.ts). `auto` (default): `blocks` where
 * the fcdn_search extension is installed (Postgres), else `naive`; `naive`: the plain SQL scan;
 * `blocks`: the compiled scan over packed code blocks (fails where it is missing). All are exact
 * and give the same answer.
 */
export type SearchMethodSetting = 'auto' | 'naive' | 'blocks';
export const SEARCH_METHODS: readonly SearchMethodSetting[] = ['auto', 'naive', 'blocks'];

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
  /**
   * Whether the fcdn_search extension is installed, as the service read it once at start
   * (buildCore, reported by /healthz). Unset (tests, benchmarks): asked of the database, and
   * asked again a minute after a no.
   */
  blocksAvailable?: boolean;
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
  /** Runs inside a transaction (a read snapshot): a missing-blocks error must not abort it. */
  private inTransaction = false;
  /** Runs on a read replica: blocks it lacks may only not be replayed yet (the upkeep asks the primary). */
  private onReplica = false;

  constructor(
    private readonly prisma: PrismaClient,
    options: SearchRepositoryOptions = {},
  ) {
    this.setting = options.method ?? 'auto';
    if (options.blocksAvailable !== undefined) this.available = { value: options.blocksAvailable, at: Infinity };
    this.autoMaintain = options.autoMaintain ?? true;
    this.sliceWindow = options.sliceWindow ?? DEFAULT_SLICE_WINDOW;
    if (!Number.isInteger(this.sliceWindow) || this.sliceWindow < 0) throw new Error(`slice window must be an integer >= 0, got ${this.sliceWindow}`);
    this.blocks = new BlockMaintenance(prisma, this.sliceWindow, options.maintenance);
  }

  /**
   * The same search over another executor: a read node, or a snapshot transaction on one
   * (./read-session.ts). Settings, the extension check and the block upkeep (rebuilds run on the
   * primary, and reach the replicas by replication) stay this repository's.
   */
  on(executor: PrismaClient, where: { inTransaction?: boolean; replica?: boolean } = {}): SearchRepository {
    const view = Object.create(this) as SearchRepository;
    Object.defineProperty(view, 'prisma', { value: executor });
    Object.defineProperty(view, 'inTransaction', { value: where.inTransaction ?? false });
    Object.defineProperty(view, 'onReplica', { value: where.replica ?? false });
    return view;
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

  /**
   * Before a switch to a model (issue 13, item 10): its blocks, built now where searches use
   * blocks, so the first searches after the switch do not fall back to the plain SQL while the
   * upkeep loop builds them. False where nothing was built (naive, or another process is building
   * them, or it failed: reported to the rebuild's onError, and the switch goes on, since searches
   * stay exact without blocks and the upkeep loop builds them after the first search).
   */
  async prepareBlocksFor(modelId: number): Promise<boolean> {
    try {
      if ((await this.method()) !== 'blocks') return false;
      return (await this.blocks.rebuild(modelId)) !== null;
    } catch (err) {
      this.blocks.reportError(err);
      return false;
    }
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
      const hits = await this.blocksStep(() => this.run(BLOCKS_SEARCH_SQL, s));
      if (this.autoMaintain) this.blocks.noteSearched(s.modelId);
      return hits;
    } catch (err) {
      if (!isSqlState(err, NO_BLOCKS_SQLSTATE, 'fcdn_search: no blocks for model')) throw err;
      // Not built yet (a new model, a fresh database) or packed with another slice window: the
      // plain SQL answers; build them (for this window) now.
      // On a replica the upkeep checks the primary's status first rather than rebuilding at once.
      if (this.autoMaintain) this.blocks.noteSearched(s.modelId, !this.onReplica);
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
          const [row] = await this.blocksStep(() => this.prisma.$queryRawUnsafe<{ tied: number; ranked: number; last: number | null }[]>(
            BLOCKS_TIE_COUNT_SQL, ...this.params({ ...s, k: limit }), joint));
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

  /** A blocks statement; inside a transaction behind a savepoint, so that "no blocks" leaves it usable for the plain SQL. */
  private async blocksStep<T>(statement: () => Promise<T>): Promise<T> {
    if (!this.inTransaction) return statement();
    await this.prisma.$executeRawUnsafe('SAVEPOINT fcdn_blocks');
    try {
      const result = await statement();
      await this.prisma.$executeRawUnsafe('RELEASE SAVEPOINT fcdn_blocks');
      return result;
    } catch (err) {
      // A lost connection fails this too; the caller sees the statement's own error.
      await this.prisma.$executeRawUnsafe('ROLLBACK TO SAVEPOINT fcdn_blocks').catch(() => {});
      throw err;
    }
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
