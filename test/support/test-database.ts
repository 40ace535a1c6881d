/**
 * The one test-database factory. With DATABASE_URL set, each call creates a fresh database on
 * that server (dropped again by close); otherwise an in-memory PGlite. Either way the service's
 * own migrator builds the schema, so tests run against exactly what production runs.
 */
import crypto from 'node:crypto';
import pg from 'pg';
import { openDatabase, type Database } from '../../src/db/database.ts';
import { migrate } from '../../src/db/migrator.ts';

export interface TestDatabase extends Database {
  /** Connection string of the fresh database (Postgres only). */
  url?: string;
}

export const usingPostgres = Boolean(process.env.DATABASE_URL);
export const databaseLabel = usingPostgres ? 'postgres' : 'pglite';

/** serverUrl: another Postgres server than DATABASE_URL's (the fault tests' private one). */
export async function createTestDatabase(opts: { serverUrl?: string } = {}): Promise<TestDatabase> {
  const server = opts.serverUrl ?? process.env.DATABASE_URL;
  if (!server) {
    const db = await openDatabase({});
    await migrate(db.raw);
    return db;
  }
  const admin = new URL(server);
  const name = `fcdn_t_${crypto.randomBytes(6).toString('hex')}`;
  await withAdmin(admin, (c) => c.query(`CREATE DATABASE ${name}`));
  const url = new URL(admin);
  url.pathname = `/${name}`;
  const db = await openDatabase({ databaseUrl: url.toString() });
  await migrate(db.raw);
  return {
    ...db,
    url: url.toString(),
    async close() {
      await db.close();
      await withAdmin(admin, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  };
}

async function withAdmin(url: URL, fn: (c: pg.Client) => Promise<unknown>): Promise<void> {
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  try {
    await fn(client);
  } finally {
    await client.end();
  }
}
