/**
 * Issue 13 item 12: the silence bound on Postgres connections (FCDN_DB_SILENCE_TIMEOUT_MS) must
 * cut a connection to a hung server, not a statement that legitimately runs longer than the bound
 * (a migration, an index build, a reindex statement, an analytics query, the benches' loads).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { openDatabase, type Database } from '../../src/db/database.ts';
import { startPrivatePostgres, type PrivatePostgres } from '../support/private-postgres.ts';
import { usingPostgres } from '../../fixtures/test-database.ts';

const skip = usingPostgres ? false : 'needs a Postgres server: set DATABASE_URL';
const SILENCE_MS = 1000;
const CONNECT_MS = 2000;

let db: Database | undefined;
before(async () => {
  if (!skip) db = await openDatabase({ databaseUrl: process.env.DATABASE_URL, poolSize: 2, timeouts: { connectMs: CONNECT_MS, silenceMs: SILENCE_MS } });
});
after(async () => db?.close());

test('a statement running 3x longer than the silence bound completes (raw SQL, a transaction, Prisma)', { skip }, async () => {
  const t0 = performance.now();
  const [row] = await db!.raw.query<{ done: boolean }>('SELECT pg_sleep(3) IS NOT NULL AS done');
  assert.equal(row!.done, true);
  assert.ok(performance.now() - t0 >= 2900);
  // A long statement inside a transaction (a migration or an index build runs so).
  const n = await db!.raw.transaction(async (tx) => {
    await tx.exec('SELECT pg_sleep(2.5)');
    return (await tx.query<{ n: number }>('SELECT 1 AS n'))[0]!.n;
  });
  assert.equal(n, 1);
  const viaPrisma = await db!.prisma.$queryRawUnsafe<{ done: boolean }[]>('SELECT pg_sleep(2.5) IS NOT NULL AS done');
  assert.equal(viaPrisma[0]!.done, true);
});

test('a long statement on a server that hangs meanwhile is still cut within the silence bound', { skip }, async () => {
  let pg: PrivatePostgres | undefined;
  let hung: Database | undefined;
  try {
    pg = await startPrivatePostgres();
    hung = await openDatabase({ databaseUrl: pg.url, poolSize: 2, timeouts: { connectMs: CONNECT_MS, silenceMs: SILENCE_MS } });
    await hung.raw.query('SELECT 1');
    const t0 = performance.now();
    const running = hung.raw.query('SELECT pg_sleep(60)').then(
      () => 'completed',
      (err: Error) => err.message,
    );
    await new Promise((r) => setTimeout(r, 300));
    pg.freeze();
    const outcome = await running;
    const ms = performance.now() - t0;
    pg.thaw();
    console.log(`# frozen server under a 60 s statement: "${outcome}" after ${Math.round(ms)} ms (silence bound ${SILENCE_MS} ms)`);
    assert.match(outcome, /the database sent nothing|did not answer/);
    assert.ok(ms < 300 + SILENCE_MS + CONNECT_MS + 1000, `cut after ${Math.round(ms)} ms`);
  } finally {
    pg?.thaw();
    await hung?.close().catch(() => {});
    pg?.destroy();
  }
});
