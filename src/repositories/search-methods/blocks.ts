/**
 * Upkeep of the packed code blocks behind the `blocks` search method (the SQL and why it is exact:
 * ../search-sql.ts and migrations/0002_search_blocks.sql).
 *
 * Between builds, triggers mark every changed case "dirty" in the writer's own transaction, and
 * searches rank dirty cases with plain SQL: always exact, but slower as the marks pile up. A
 * rebuild folds them back in, without stopping writers:
 *   1. register the model in fcdn_search.block_sets (committed): from now on every writer's
 *      trigger records its changes;
 *   2. wait out the writers that started before (a SHARE lock on nodule_cases, then on
 *      slice_codes, each in its own short transaction, released at once): their changes are
 *      committed before the next step's snapshot, so none is lost;
 *   3. in one REPEATABLE READ transaction, fcdn_search.rebuild_blocks packs what that snapshot
 *      sees and deletes only the dirty marks that snapshot sees. A change committed later keeps
 *      its mark; a later re-mark of a mark it deletes makes it fail with a serialization error,
 *      and it is retried.
 * A transaction-level advisory lock keeps two processes from building the same model at once.
 * A model switch builds the new model's blocks before it (SearchRepository.prepareBlocksFor) and
 * drops the retired model's in its own transaction (drop; ModelService.switchWithin), so searches
 * after a switch use blocks at once and no retired model's changes are recorded any more.
 * Blocks hold only the slices in the slice window they were built with (block_sets.slice_window,
 * migrations/0006_slice_window.sql); a search with another window treats them as absent, and this
 * class rebuilds them with its own window. So every process of one database must run with the
 * same FCDN_SLICE_WINDOW, or they rebuild each other's blocks (searches stay exact either way).
 */
import { BLOCK_BUILD_LOCK } from '../../db/locks.ts';
import { sqlState } from '../../db/postgres-errors.ts';
import { Prisma } from '../../generated/prisma/client.ts';
import type { Executor, PrismaClient } from '../executor.ts';
import { BLOCKS_STATUS_SQL } from '../search-sql.ts';

export interface BlockStatus {
  built: boolean;
  /** The slice window the blocks were packed with (null: not built). */
  sliceWindow: number | null;
  cases: number;
  blocks: number;
  bytes: number;
  buildMs: number | null;
  dirty: number;
}

export interface BuildResult {
  cases: number;
  blocks: number;
  bytes: number;
  ms: number;
}

export interface BlockMaintenanceOptions {
  /** Rebuild when more than this share of a model's packed cases is dirty ... */
  dirtyRatio?: number;
  /** ... and at least this many. */
  minDirty?: number;
  /** Look at the dirty count at most this often per model (ms). */
  checkEveryMs?: number;
  onError?: (err: unknown) => void;
  /** Called when a search found a model's blocks missing: the upkeep loop should run now, not at its next poll. */
  onNeeded?: () => void;
}

const LONG = { maxWait: 60_000, timeout: 30 * 60_000 };

export class BlockMaintenance {
  private readonly lastCheck = new Map<number, number>();
  private readonly running = new Map<number, Promise<BuildResult | null>>();
  /** Models searched since the last upkeep pass: true when their blocks were missing. */
  private readonly wanted = new Map<number, boolean>();
  private readonly o: Required<Omit<BlockMaintenanceOptions, 'onError' | 'onNeeded'>> & Pick<BlockMaintenanceOptions, 'onError' | 'onNeeded'>;

  constructor(
    private readonly prisma: PrismaClient,
    /** The slice window (FCDN_SLICE_WINDOW) blocks are built with: that of the searches they serve. */
    readonly sliceWindow: number,
    options: BlockMaintenanceOptions = {},
  ) {
    this.o = {
      dirtyRatio: 0.02,
      minDirty: 256,
      checkEveryMs: 5_000,
      ...options,
      onError: options.onError ?? ((err) => console.warn(`[fcdn_search] background rebuild of search blocks failed: ${(err as Error)?.message ?? err}`)),
    };
  }

  async status(modelId: number): Promise<BlockStatus | null> {
    const [row] = await this.prisma.$queryRawUnsafe<BlockStatus[]>(BLOCKS_STATUS_SQL, modelId);
    return row ? { ...row, sliceWindow: row.sliceWindow == null ? null : Number(row.sliceWindow), cases: Number(row.cases), blocks: Number(row.blocks), bytes: Number(row.bytes), dirty: Number(row.dirty) } : null;
  }

  /** Builds (or rebuilds) one model's blocks for this slice window; null when another process is building them now. */
  rebuild(modelId: number): Promise<BuildResult | null> {
    const inFlight = this.running.get(modelId);
    if (inFlight) return inFlight;
    const run = this.build(modelId).finally(() => this.running.delete(modelId));
    this.running.set(modelId, run);
    return run;
  }

  /**
   * Stops keeping blocks for a model: its block set (its triggers stop recording), its blocks and
   * its dirty marks. A model switch calls it for the retired model inside its own transaction (db).
   */
  async drop(modelId: number, db?: Executor): Promise<void> {
    if (!db) return this.prisma.$transaction((tx) => this.drop(modelId, tx));
    for (const table of ['block_sets', 'blocks', 'dirty']) await db.$executeRawUnsafe(`DELETE FROM fcdn_search.${table} WHERE model_id = $1`, modelId);
  }

  /** A failed rebuild outside the upkeep loop (before a model switch): to onError, like the loop's. */
  reportError(err: unknown): void {
    this.o.onError?.(err);
  }

  /**
   * After a search by blocks: notes the model for the upkeep loop (no database work here; the
   * search itself never waits for upkeep). Missing blocks ask the loop to run at once.
   */
  noteSearched(modelId: number, missing = false): void {
    this.wanted.set(modelId, missing || (this.wanted.get(modelId) ?? false));
    if (missing) this.o.onNeeded?.();
  }

  /**
   * One pass of the upkeep loop (SearchBlockUpkeep): for each model searched since the last pass,
   * rebuild its blocks when they are missing, packed with another slice window, or too dirty.
   * Throttled per model: where a rebuild cannot run (a read replica), searches keep answering
   * with plain SQL for the dirty or unbuilt part and it is tried only every checkEveryMs.
   * A failure is reported to onError; the model is tried again after a later search.
   */
  async maintainSearched(): Promise<void> {
    const wanted = [...this.wanted];
    this.wanted.clear();
    for (const [modelId, missing] of wanted) {
      const now = Date.now();
      if (this.running.has(modelId) || now - (this.lastCheck.get(modelId) ?? 0) < this.o.checkEveryMs) continue;
      this.lastCheck.set(modelId, now);
      try {
        // A model searched just before a switch retired it: its blocks were dropped with the
        // switch and must not come back (its triggers would record every change for nothing).
        const [model] = await this.prisma.$queryRawUnsafe<{ active: boolean }[]>('SELECT active FROM model_versions WHERE id = $1', modelId);
        if (!model?.active) continue;
        if (!missing) {
          const s = await this.status(modelId);
          if (s?.built && s.sliceWindow === this.sliceWindow && s.dirty <= Math.max(this.o.minDirty, this.o.dirtyRatio * s.cases)) continue;
        }
        await this.rebuild(modelId);
      } catch (err) {
        this.o.onError?.(err);
      }
    }
  }

  private async build(modelId: number): Promise<BuildResult | null> {
    const started = performance.now();
    await this.prisma.$executeRawUnsafe('INSERT INTO fcdn_search.block_sets (model_id) VALUES ($1) ON CONFLICT (model_id) DO NOTHING', modelId);
    for (const table of ['nodule_cases', 'slice_codes']) {
      await this.prisma.$transaction(async (tx) => void (await tx.$executeRawUnsafe(`LOCK TABLE ${table} IN SHARE MODE`)), LONG);
    }
    for (let attempt = 1; ; attempt++) {
      try {
        const built = await this.prisma.$transaction(
          async (tx) => {
            const [{ locked }] = await tx.$queryRawUnsafe<{ locked: boolean }[]>('SELECT pg_try_advisory_xact_lock($1, $2) AS locked', BLOCK_BUILD_LOCK, modelId);
            if (!locked) return null;
            const [r] = await tx.$queryRawUnsafe<{ built_cases: number; built_blocks: number; built_bytes: bigint | number }[]>(
              'SELECT * FROM fcdn_search.rebuild_blocks($1, $2)',
              modelId,
              this.sliceWindow,
            );
            return { cases: Number(r!.built_cases), blocks: Number(r!.built_blocks), bytes: Number(r!.built_bytes) };
          },
          { ...LONG, isolationLevel: Prisma.TransactionIsolationLevel.RepeatableRead },
        );
        if (!built) return null;
        // Old block rows are dead now; a scan should not wade through them until autovacuum comes.
        await this.prisma.$executeRawUnsafe('VACUUM fcdn_search.blocks').catch(() => {});
        return { ...built, ms: performance.now() - started };
      } catch (err) {
        const state = sqlState(err);
        if ((state === '40001' || state === '40P01') && attempt < 8) continue;
        throw err;
      }
    }
  }
}
