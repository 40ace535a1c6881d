/**
 * `npm run test:containers`: the database, search and storage suites against Postgres (+ pgvector)
 * and an S3 server started as containers through testcontainers, as a user with Docker runs them.
 * The suites themselves are the ordinary ones; this only gives them DATABASE_URL and S3_* of the
 * containers (fixtures/test-database.ts makes a fresh database per test file there).
 *
 * Images (no registry is reachable in CI, which builds local stand-ins: scripts/ci-docker.sh):
 *   FCDN_TC_POSTGRES_IMAGE  default pgvector/pgvector:pg15 (CI: fcdn-postgres:local, the compose
 *                           file's image with fcdn_search; set FCDN_SEARCH_REQUIRED=1 with it)
 *   FCDN_TC_S3_IMAGE        default minio/minio:latest, run as `server /data` (CI: fcdn-ci/s3rver,
 *                           an s3rver stand-in that checks no signatures)
 * No engine answering: the leg is skipped with the reason printed, or fails when
 * FCDN_TESTCONTAINERS_REQUIRED=1 (CI). TESTCONTAINERS_RYUK_DISABLED=true where the Ryuk image cannot
 * be pulled; the containers are stopped here either way.
 */
import { spawn } from 'node:child_process';
import pg from 'pg';
import { GenericContainer, getContainerRuntimeClient, Wait, type StartedTestContainer } from 'testcontainers';

const SUITES = [
  // database
  'test/db/analytics-views.test.ts',
  'test/db/joint-distance-sql.test.ts',
  'test/db/schema-agreement.test.ts',
  'test/db/slice-window.test.ts',
  // search
  'test/db/search-methods.test.ts',
  'test/api/search-story.test.ts',
  // storage (and ingest through the API onto it)
  'test/storage/object-store.test.ts',
  'test/services/ingest-failed-puts.test.ts',
];
const POSTGRES_IMAGE = process.env.FCDN_TC_POSTGRES_IMAGE || 'pgvector/pgvector:pg15';
const S3_IMAGE = process.env.FCDN_TC_S3_IMAGE || 'minio/minio:latest';
const PG_PASSWORD = 'fcdn-testcontainers';
// MinIO takes any root user of 3+ characters; s3rver knows only S3RVER (and checks no secret).
const S3_KEY = 'S3RVER';
const S3_SECRET = 'fcdn-testcontainers';

try {
  const runtime = await getContainerRuntimeClient();
  const engine = runtime.info.containerRuntime;
  console.log(`# container engine: server ${engine.serverVersion} on ${engine.operatingSystem}, reached at ${engine.host}`);
} catch (err) {
  const reason = `no container engine answers (${(err as Error).message.split('\n')[0]})`;
  if (process.env.FCDN_TESTCONTAINERS_REQUIRED === '1') {
    console.error(`testcontainers leg FAILED: ${reason}; FCDN_TESTCONTAINERS_REQUIRED=1`);
    process.exit(1);
  }
  console.log(`# SKIPPED testcontainers leg (${SUITES.length} suites not run): ${reason}`);
  process.exit(0);
}

const started: StartedTestContainer[] = [];
let code = 1;
try {
  const t0 = Date.now();
  const [postgres, s3] = await Promise.all([
    new GenericContainer(POSTGRES_IMAGE)
      .withEnvironment({ POSTGRES_USER: 'postgres', POSTGRES_PASSWORD: PG_PASSWORD, POSTGRES_DB: 'postgres' })
      // A throwaway server: no fsync (the suites seed thousands of rows; on a busy disk a flush could
      // outlast the service's 60 s silence bound).
      .withCommand(['postgres', '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'])
      .withExposedPorts(5432)
      .withWaitStrategy(Wait.forListeningPorts())
      .withStartupTimeout(120_000)
      .start(),
    new GenericContainer(S3_IMAGE)
      .withCommand(['server', '/data'])
      .withEnvironment({ MINIO_ROOT_USER: S3_KEY, MINIO_ROOT_PASSWORD: S3_SECRET })
      .withExposedPorts(9000)
      .withWaitStrategy(Wait.forListeningPorts())
      .withStartupTimeout(120_000)
      .start(),
  ]);
  started.push(postgres, s3);
  const databaseUrl = `postgres://postgres:${PG_PASSWORD}@${postgres.getHost()}:${postgres.getMappedPort(5432)}/postgres`;
  const s3Endpoint = `http://${s3.getHost()}:${s3.getMappedPort(9000)}`;
  await untilPostgresAnswers(databaseUrl);
  console.log(`# containers up in ${Date.now() - t0} ms: ${POSTGRES_IMAGE} at ${postgres.getHost()}:${postgres.getMappedPort(5432)}, ${S3_IMAGE} at ${s3Endpoint}`);
  code = await run(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', ...SUITES], {
    ...process.env,
    DATABASE_URL: databaseUrl,
    S3_ENDPOINT: s3Endpoint,
    S3_ACCESS_KEY: S3_KEY,
    S3_SECRET_KEY: S3_SECRET,
  });
} finally {
  await Promise.all(started.map((c) => c.stop().catch((err: Error) => console.error(`stopping a container: ${err.message}`))));
}
process.exit(code);

/** The port listens before the first start's initialisation may be over: wait for a real answer. */
async function untilPostgresAnswers(url: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      const { rows } = await client.query(`SELECT current_setting('server_version') AS v, (SELECT string_agg(name, ',' ORDER BY name) FROM pg_available_extensions WHERE name IN ('vector', 'fcdn_search')) AS ext`);
      console.log(`# Postgres ${rows[0].v}, extensions available: ${rows[0].ext}`);
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 500));
    } finally {
      await client.end().catch(() => {});
    }
  }
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: 'inherit' });
    child.on('error', reject);
    child.on('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0)));
  });
}
