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
import { loadConfig, type AppConfig, type Role } from '../../src/config.ts';
import { createTestDatabase, type TestDatabase } from './test-database.ts';

export const FIXTURE_MODEL = path.resolve('test/fixtures/fcdn-untrained.onnx');
/** Configured keys need a configured URL secret (src/auth/url-secret.ts). */
export const TEST_URL_SECRET = 'test-url-secret-0123456789abcdef0123456789';
export const KEYS: Record<Role, string> = { reader: 'reader-key-0001', writer: 'writer-key-0001', admin: 'admin-key-00001' };

export interface GraphQLResponse<T = any> {
  status: number;
  data?: T;
  errors?: { message: string; extensions?: { code?: string } }[];
}

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
    FCDN_API_KEYS: Object.entries(KEYS).map(([r, k]) => `${r}:${k}`).join(','),
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
    async gql(query, variables, role = 'admin') {
      const res = await fetch(`${url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(role ? { authorization: `Bearer ${KEYS[role]}` } : {}) },
        body: JSON.stringify({ query, variables }),
      });
      const body = (await res.json()) as GraphQLResponse;
      return { ...body, status: res.status };
    },
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
