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
 * Blocks hold only the slices in the slice window they were built with (block_sets.slice_window,
 * migrations/0006_slice_window.sql); a search with another window treats them as absent, and this
 * class rebuilds them with its own window. So every process of one database must run with the
 * same FCDN_SLICE_WINDOW, or they rebuild each other's blocks (searches stay exact either way).
 */
import { Prisma } from '../../generated/prisma/client.ts';
import type { PrismaClient } from '../executor.ts';
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
}

const BUILD_LOCK = 716_422_019; // advisory lock class: "building blocks" (next to the migration lock)
const LONG = { maxWait: 60_000, timeout: 30 * 60_000 };

function sqlState(err: unknown): string | undefined {
  for (let e: any = err, depth = 0; e && depth < 6; e = e.cause ?? e.meta?.driverAdapterError, depth++) {
    const code = e.originalCode ?? e.code ?? e.meta?.code ?? e.cause?.originalCode;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  const m = /(?:SQLSTATE|Code:)[: `]+([0-9A-Z]{5})|\b(40001|40P01)\b/.exec(String((err as Error)?.message ?? ''));
  return m?.[1] ?? m?.[2];
}

export function isSqlState(err: unknown, state: string, messageHint?: string): boolean {
  if (sqlState(err) === state) return true;
  return messageHint != null && String((err as Error)?.message ?? '').includes(messageHint);
}

export class BlockMaintenance {
  private readonly lastCheck = new Map<number, number>();
  private readonly running = new Map<number, Promise<BuildResult | null>>();
  private readonly o: Required<Omit<BlockMaintenanceOptions, 'onError'>> & Pick<BlockMaintenanceOptions, 'onError'>;

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
      onError: (err) => console.warn(`[fcdn_search] background rebuild of search blocks failed: ${(err as Error)?.message ?? err}`),
      ...options,
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

  /** Stops keeping blocks for a model (its triggers stop recording; searches use plain SQL). */
  async drop(modelId: number): Promise<void> {
    await this.prisma.$transaction([
      this.prisma.$executeRawUnsafe('DELETE FROM fcdn_search.block_sets WHERE model_id = $1', modelId),
      this.prisma.$executeRawUnsafe('DELETE FROM fcdn_search.blocks WHERE model_id = $1', modelId),
      this.prisma.$executeRawUnsafe('DELETE FROM fcdn_search.dirty WHERE model_id = $1', modelId),
    ]);
  }

  /** After a search: rebuild in the background when the blocks are missing or too dirty. */
  maybeMaintain(modelId: number, missing = false): void {
    const now = Date.now();
    if (this.running.has(modelId)) return;
    // Throttled either way: where a rebuild cannot run (a read replica), searches keep answering
    // with plain SQL for the dirty or unbuilt part and retry only every checkEveryMs.
    if (now - (this.lastCheck.get(modelId) ?? 0) < this.o.checkEveryMs) return;
    this.lastCheck.set(modelId, now);
    void (async () => {
      if (!missing) {
        const s = await this.status(modelId);
        if (s?.built && s.sliceWindow === this.sliceWindow && s.dirty <= Math.max(this.o.minDirty, this.o.dirtyRatio * s.cases)) return;
      }
      await this.rebuild(modelId);
    })().catch((err) => this.o.onError?.(err));
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
            const [{ locked }] = await tx.$queryRawUnsafe<{ locked: boolean }[]>('SELECT pg_try_advisory_xact_lock($1, $2) AS locked', BUILD_LOCK, modelId);
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
