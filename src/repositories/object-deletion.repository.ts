/**
 * The outbox of object-store deletions (migrations/0005_pending_object_deletions.sql). Plain SQL:
 * keys go in with a due time, the janitor takes due ones with FOR UPDATE SKIP LOCKED (several
 * processes may drain at once), and a key that a slice references is never removed.
 */
import type { Executor, PrismaClient } from './executor.ts';

export class ObjectDeletionRepository {
  constructor(private readonly prisma: PrismaClient) {}

  /** Schedules the keys for removal in delayMs; a key already pending keeps the earlier due time. */
  async schedule(keys: readonly string[], delayMs: number, db: Executor = this.prisma): Promise<void> {
    if (keys.length === 0) return;
    await db.$executeRawUnsafe(
      `INSERT INTO pending_object_deletions (object_key, due_at)
       SELECT k, now() + make_interval(secs => $2::float8 / 1000) FROM unnest($1::text[]) AS k
       ON CONFLICT (object_key) DO UPDATE SET due_at = LEAST(pending_object_deletions.due_at, EXCLUDED.due_at)`,
      [...keys],
      delayMs,
    );
  }

  /**
   * An ingest's commit takes its uploads off the list; returns how many were still there. Fewer
   * than asked means the janitor already removed some (the ingest outlived its grace period).
   */
  async withdraw(db: Executor, keys: readonly string[]): Promise<number> {
    if (keys.length === 0) return 0;
    return db.$executeRawUnsafe('DELETE FROM pending_object_deletions WHERE object_key = ANY($1::text[])', [...keys]);
  }

  /** Makes the keys due now (an ingest that failed no longer needs its grace period). */
  async expedite(keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return;
    await this.prisma.$executeRawUnsafe('UPDATE pending_object_deletions SET due_at = now() WHERE object_key = ANY($1::text[]) AND due_at > now()', [...keys]);
  }

  /** Locks up to `limit` due keys for this transaction; other drainers skip them. */
  async lockDue(tx: Executor, limit: number): Promise<string[]> {
    const rows = await tx.$queryRawUnsafe<{ key: string }[]>(
      `SELECT object_key AS key FROM pending_object_deletions WHERE due_at <= now()
       ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED`,
      limit,
    );
    return rows.map((r) => r.key);
  }

  /** Of these keys, those a slice still references (they must stay). */
  async referenced(tx: Executor, keys: readonly string[]): Promise<Set<string>> {
    if (keys.length === 0) return new Set();
    const rows = await tx.$queryRawUnsafe<{ key: string }[]>('SELECT DISTINCT image_key AS key FROM slices WHERE image_key = ANY($1::text[])', [...keys]);
    return new Set(rows.map((r) => r.key));
  }

  async remove(tx: Executor, keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return;
    await tx.$executeRawUnsafe('DELETE FROM pending_object_deletions WHERE object_key = ANY($1::text[])', [...keys]);
  }

  /** Records a failed removal and tries again after retryMs. */
  async postpone(tx: Executor, keys: readonly string[], error: string, retryMs: number): Promise<void> {
    if (keys.length === 0) return;
    await tx.$executeRawUnsafe(
      `UPDATE pending_object_deletions SET attempts = attempts + 1, last_error = $2,
              due_at = now() + make_interval(secs => $3::float8 / 1000)
       WHERE object_key = ANY($1::text[])`,
      [...keys],
      error.slice(0, 500),
      retryMs,
    );
  }

  async countPending(): Promise<number> {
    const [row] = await this.prisma.$queryRawUnsafe<{ n: number }[]>('SELECT count(*)::int AS n FROM pending_object_deletions');
    return row?.n ?? 0;
  }
}
