/**
 * What the fault tests share: a service under test (in this process, on its own database, images
 * on an s3rver), a separate admin connection to break its Postgres sessions, a view of the store
 * for the invariant checker, and the GraphQL calls a PACS-side client makes.
 */
import assert from 'node:assert/strict';
import pg from 'pg';
import { openDatabase, type Database, type PostgresTimeouts } from '../../src/db/database.ts';
import { S3ObjectStore } from '../../src/storage/s3-store.ts';
import { startS3rver, type RunningS3rver } from '../../scripts/start-s3rver.ts';
import { phantomSlices } from '../../fixtures/phantom-cases.ts';
import { createTestDatabase, type TestDatabase } from '../../fixtures/test-database.ts';
import { startTestService, type GraphQLResponse, type TestService } from '../../fixtures/test-service.ts';

/** application_name of the service's own connections: what pg_terminate_backend aims at. */
export const TARGET_APP = 'fcdn-fault-target';

/** The suite runs against real Postgres only; without it, it fails rather than skips. */
export function postgresUrl(): string {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error('the fault suite needs real Postgres: set DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/postgres)');
  return url;
}

export const INGEST = 'mutation ($input: IngestCaseInput!) { ingestCase(input: $input) { id externalId slices { offset } } }';
export const SEARCH_BY_CASE = 'query ($id: ID!) { similarCases(input: { caseId: $id, k: 5 }) { model { id } hits { case { id } } } }';
export const SEARCH_BY_IMAGES = 'query ($images: [SliceImageInput!]!) { similarCases(input: { images: $images, k: 5 }) { hits { case { id } } } }';

export function caseInput(n: number, prefix = 'F') {
  return { externalId: `${prefix}-${n}`, patientKey: `${prefix}P${n % 7}`, malignancy: 1 + (n % 5), images: phantomSlices({ seed: n + 1, diameterPx: 6 + (n % 12) }) };
}

/** 'ok', or the error's code; an answer that is neither (no data, no code) fails the test. */
export function outcome(res: GraphQLResponse): string {
  if (!res.errors) return 'ok';
  const [e] = res.errors;
  assert.ok(e?.extensions?.code, `an error without a code: ${JSON.stringify(res.errors)}`);
  assert.ok(e.message.length > 0, 'an error without a message');
  return e.extensions.code;
}

export function tally(outcomes: string[]): Record<string, number> {
  return outcomes.reduce<Record<string, number>>((t, o) => ({ ...t, [o]: (t[o] ?? 0) + 1 }), {});
}

export async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function openStore(s3: RunningS3rver, bucket: string): Promise<S3ObjectStore> {
  return S3ObjectStore.open({ endPoint: s3.endpoint, accessKey: s3.accessKey, secretKey: s3.secretKey, bucket });
}

export function s3Env(s3: RunningS3rver, bucket: string): Record<string, string> {
  return { S3_ENDPOINT: s3.endpoint, S3_ACCESS_KEY: s3.accessKey, S3_SECRET_KEY: s3.secretKey, S3_BUCKET: bucket };
}

export interface FaultRig {
  svc: TestService;
  /** The test's own connection (the invariant checker's), untouched by the faults. */
  db: TestDatabase;
  store: S3ObjectStore;
  s3: RunningS3rver;
  /** pg_terminate_backend on every session of the service; `busy`: those in a query or a transaction. */
  terminate(): Promise<{ killed: number; busy: number }>;
  close(): Promise<void>;
}

/** A fresh database on serverUrl (default DATABASE_URL's server), an s3rver, and the service on both. */
/** s3: an s3rver the test stops and starts itself (else the rig starts and closes its own). */
export async function startRig(opts: { serverUrl?: string; bucket: string; env?: Record<string, string>; s3?: RunningS3rver; dbTimeouts?: Partial<PostgresTimeouts> }): Promise<FaultRig> {
  const serverUrl = opts.serverUrl ?? postgresUrl();
  const s3 = opts.s3 ?? (await startS3rver());
  const db = await createTestDatabase({ serverUrl });
  const target = new URL(db.url!);
  target.searchParams.set('application_name', TARGET_APP);
  const serviceDb: Database = await openDatabase({ databaseUrl: target.toString(), timeouts: opts.dbTimeouts });
  const svc = await startTestService({
    db: serviceDb,
    env: { ...s3Env(s3, opts.bucket), FCDN_JANITOR_POLL_MS: '200', ...opts.env },
    overrides: { worker: { pollMs: 200 } },
  });
  const store = await openStore(s3, opts.bucket);
  const admin = new pg.Client({ connectionString: serverUrl, application_name: 'fcdn-fault-admin' });
  await admin.connect();
  admin.on('error', () => {}); // the restart test stops this server too
  const dbName = target.pathname.slice(1);
  return {
    svc,
    db,
    store,
    s3,
    async terminate() {
      const { rows } = await admin.query<{ killed: number; busy: number }>(
        `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::int AS killed,
                count(*) FILTER (WHERE state IN ('active', 'idle in transaction'))::int AS busy
         FROM pg_stat_activity WHERE datname = $1 AND application_name = $2`,
        [dbName, TARGET_APP],
      );
      return rows[0]!;
    },
    async close() {
      await svc.stop().catch(() => {}); // closes the service's own connections and its data folder
      await admin.end().catch(() => {});
      await db.close().catch(() => {});
      if (!opts.s3) await s3.close();
    },
  };
}
