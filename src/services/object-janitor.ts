/**
 * Drains the outbox of object-store deletions (migrations/0005_pending_object_deletions.sql):
 * removes due objects that no slice references, and keeps retrying those the store could not
 * remove (it was down) until it can. Runs in every API process; several drain safely at once.
 */
import type { Logger } from 'pino';
import type { Repositories } from '../repositories/index.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import { PollingLoop } from './polling-loop.ts';

export interface ObjectJanitorOptions {
  /** How long an upload may take from its first byte to its ingest's commit before it counts as abandoned. */
  uploadGraceMs: number;
  /** How often the outbox is looked at, and how long a failed removal waits before the next try. */
  pollMs: number;
  batchSize: number;
}

export class ObjectJanitor {
  private readonly loop: PollingLoop;
  /** Keys to make due now, remembered while the database cannot be told. */
  private readonly expediting = new Set<string>();
  private draining: Promise<number> | null = null;

  constructor(
    private readonly repos: Repositories,
    private readonly store: ObjectStore,
    private readonly log: Logger,
    readonly options: ObjectJanitorOptions,
  ) {
    this.loop = new PollingLoop('object janitor', options.pollMs, async () => (await this.drain(), false), log);
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  /**
   * The uploads of an ingest that did not commit: removed now when the database and the store
   * answer, else by the loop once they do. Safe even if the commit did happen after all (a
   * connection lost during COMMIT), because referenced keys are never removed.
   */
  async discard(keys: readonly string[]): Promise<void> {
    keys.forEach((k) => this.expediting.add(k));
    await this.drain().catch((err) => {
      this.log.warn({ err, keys: keys.length }, 'could not remove the images of a failed ingest yet; will retry');
    });
  }

  /** One pass over the due keys; returns how many objects were removed. Concurrent calls share a pass. */
  drain(): Promise<number> {
    this.draining ??= this.drainOnce().finally(() => (this.draining = null));
    return this.draining;
  }

  private async drainOnce(): Promise<number> {
    if (this.expediting.size > 0) {
      const keys = [...this.expediting];
      await this.repos.objectDeletions.expedite(keys);
      keys.forEach((k) => this.expediting.delete(k));
    }
    let removed = 0;
    for (;;) {
      const pass = await this.repos.transaction(
        async (tx) => {
          // The rows stay locked while the store is asked, so an ingest cannot claim a key being removed.
          const keys = await this.repos.objectDeletions.lockDue(tx, this.options.batchSize);
          const keep = await this.repos.objectDeletions.referenced(tx, keys);
          const doomed = keys.filter((k) => !keep.has(k));
          const results = await Promise.allSettled(doomed.map((k) => this.store.delete(k)));
          const failed = doomed.filter((_, i) => results[i]!.status === 'rejected');
          await this.repos.objectDeletions.remove(tx, keys.filter((k) => !failed.includes(k)));
          if (failed.length > 0) {
            const reason = (results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason as Error;
            await this.repos.objectDeletions.postpone(tx, failed, reason?.message ?? String(reason), this.options.pollMs);
            this.log.warn({ keys: failed.length, err: reason }, 'object store could not remove images; will retry');
          }
          return { locked: keys.length, removed: doomed.length - failed.length, failed: failed.length };
        },
        { timeout: 120_000, maxWait: 30_000 },
      );
      removed += pass.removed;
      if (pass.locked < this.options.batchSize || pass.failed > 0) return removed;
    }
  }
}
