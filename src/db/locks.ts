/**
 * Advisory lock ids, all in one place so that no two features ever pick the same number.
 * Arbitrary constants; only their distinctness matters.
 */

/** The migrator's lock (src/db/migrator.ts): one process applies a migration, the others wait and skip it. */
export const MIGRATION_LOCK = 7_164_220_190;

/** Class of the "building search blocks" lock (src/repositories/search-methods/blocks.ts), taken with the model id as second key. */
export const BLOCK_BUILD_LOCK = 716_422_019;

/** Class of the "ingesting this externalId" lock (CaseRepository.lockByExternalId), taken with hashtext(externalId) as second key. */
export const EXTERNAL_ID_LOCK = 716_422_020;
