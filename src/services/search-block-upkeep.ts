/**
 * Keeps the packed code blocks of the `blocks` search method fresh (src/repositories/search-methods/blocks.ts):
 * a background loop, like the object janitor, that rebuilds the blocks of the models searched
 * since its last pass when they are missing or too dirty. Searches only note what they used, so
 * no search starts or waits for upkeep; a search that found blocks missing wakes the loop.
 */
import type { Logger } from 'pino';
import { PollingLoop } from './polling-loop.ts';

/** What the loop drives: BlockMaintenance (repos.search.blocks). */
export interface SearchBlocks {
  maintainSearched(): Promise<void>;
}

/** The upkeep loop (start, stop: lets a rebuild in progress finish, wake: run a pass now). */
export function searchBlockUpkeep(blocks: SearchBlocks, pollMs: number, log: Logger): PollingLoop {
  return new PollingLoop('search block upkeep', pollMs, async () => (await blocks.maintainSearched(), false), log);
}
