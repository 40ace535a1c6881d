/**
 * Starts the whole service on a loopback port for a test: the shared test database, a temporary
 * data folder, the untrained FCDN fixture (or a given model), and one API key per role.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { startService, type RunningService, type ServiceOverrides } from '../../src/app.ts';
import type { Role } from '../../src/auth/api-keys.ts';
import { loadConfig, type AppConfig } from '../../src/config.ts';
import { API_KEYS_SETTING, KEYS, TEST_URL_SECRET } from '../../fixtures/api-keys.ts';
import { postGraphQL, type GraphQLResponse } from '../../fixtures/graphql-client.ts';
import { createTestDatabase, type TestDatabase } from '../../fixtures/test-database.ts';

export const FIXTURE_MODEL = path.resolve('test/fixtures/fcdn-untrained.onnx');
export { KEYS, TEST_URL_SECRET, type GraphQLResponse };

export interface TestService {
  url: string;
  service: RunningService;
  db: TestDatabase;
  dataDir: string;
  gql<T = any>(query: string, variables?: Record<string, unknown>, role?: Role | null): Promise<GraphQLResponse<T>>;
  /** Stops the HTTP server and the service; keeps the database unless dropDatabase. */
  stop(opts?: { dropDatabase?: boolean }): Promise<void>;
}

export interface TestServiceOptions {
  db?: TestDatabase;
  dataDir?: string;
  env?: Record<string, string>;
  overrides?: ServiceOverrides;
}

export async function startTestService(opts: TestServiceOptions = {}): Promise<TestService> {
  const db = opts.db ?? (await createTestDatabase());
  const dataDir = opts.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'fcdn-test-'));
  const config: AppConfig = loadConfig({
    FCDN_DATA_DIR: dataDir,
    FCDN_MODEL: FIXTURE_MODEL,
    FCDN_EXECUTION_PROVIDER: 'cpu',
    FCDN_API_KEYS: API_KEYS_SETTING,
    FCDN_URL_SECRET: TEST_URL_SECRET,
    LOG_LEVEL: 'silent',
    // With S3_ENDPOINT set (CI's s3rver run), images go to the S3 protocol server instead of files.
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('S3_'))),
    ...opts.env,
  });
  const service = await startService(config, { log: pino({ level: 'silent' }), database: db, ...opts.overrides });
  const server = http.createServer(service.handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    service,
    db,
    dataDir,
    gql: (query, variables, role = 'admin') => postGraphQL(url, query, variables, role ? KEYS[role] : null),
    async stop({ dropDatabase = true } = {}) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await service.close();
      if (dropDatabase) {
        await db.close();
        fs.rmSync(dataDir, { recursive: true, force: true });
      }
    },
  };
}
