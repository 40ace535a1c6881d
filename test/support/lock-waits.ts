import type pg from 'pg';

/**
 * Waits until at least n sessions of the current database wait on a lock: the point where a
 * race test has both sides where it wants them (a trigger or an admin's lock holds one back).
 */
export async function waitingOnLocks(admin: pg.Client, n: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await admin.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
    );
    if (rows[0]!.n >= n) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} sessions waiting on locks (${rows[0]!.n})`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
