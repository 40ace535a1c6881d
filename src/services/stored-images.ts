import type { Logger } from 'pino';
import type { ObjectStore } from '../storage/object-store.ts';

/**
 * Removes stored slice images. Best effort: a failure leaves an unreferenced object (logged with
 * its key), never a case that points at a missing image.
 */
export async function removeObjects(store: ObjectStore, keys: readonly string[], log: Logger): Promise<void> {
  const results = await Promise.allSettled(keys.map((k) => store.delete(k)));
  const failed = keys.filter((_, i) => results[i]!.status === 'rejected');
  if (failed.length > 0) log.warn({ keys: failed }, 'could not remove stored images; they are now unreferenced');
}
