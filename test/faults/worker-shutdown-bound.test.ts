/**
 * `npm run worker` (src/worker.ts) ends within FCDN_SHUTDOWN_TIMEOUT_MS, as the API does
 * (test/faults/shutdown-bound.test.ts): signalled while its claim of a job hangs on a frozen
 * Postgres (SIGSTOP, no silence timeout), it logs what was still open and exits with status 1 at
 * the bound. Before, it waited for the frozen database for as long as it stayed frozen.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { startPrivatePostgres, type PrivatePostgres } from '../support/private-postgres.ts';
import { createTestDatabase, type TestDatabase } from '../../fixtures/test-database.ts';
import { sleep } from './harness.ts';

const BOUND_MS = 3000;
/** Slack for process exit and the machine's load (2 shared cores), on top of the bound. */
const SLACK_MS = 3000;
/** How long the test waits for an exit before it calls it hung (and kills the worker). */
const GIVE_UP_MS = BOUND_MS + 15_000;

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

test('SIGTERM while the worker waits on a frozen Postgres: exits at FCDN_SHUTDOWN_TIMEOUT_MS with a log line of what was still open', async () => {
  const pg: PrivatePostgres = await startPrivatePostgres();
  cleanups.push(() => pg.destroy());
  const db: TestDatabase = await createTestDatabase({ serverUrl: pg.url });
  cleanups.push(async () => {
    pg.thaw();
    await db.close().catch(() => {});
  });
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcdn-worker-shutdown-'));
  cleanups.push(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const child = spawn(process.execPath, ['--import', 'tsx', path.resolve('src/worker.ts')], {
    env: {
      ...process.env,
      DATABASE_URL: db.url!,
      FCDN_DATA_DIR: dataDir,
      S3_ENDPOINT: '',
      LOG_LEVEL: 'info',
      FCDN_EXECUTION_PROVIDER: 'cpu',
      // No silence bound: a claim waits on the frozen server for as long as it stays frozen.
      FCDN_DB_SILENCE_TIMEOUT_MS: '0',
      FCDN_DB_CONNECT_TIMEOUT_MS: '600000',
      FCDN_SHUTDOWN_TIMEOUT_MS: String(BOUND_MS),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let logs = '';
  child.stdout!.on('data', (c: Buffer) => (logs += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (logs += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  cleanups.push(() => void (child.exitCode === null && child.signalCode === null && child.kill('SIGKILL')));

  const startDeadline = Date.now() + 60_000;
  while (!logs.includes('reindex worker started')) {
    if (Date.now() > startDeadline || child.exitCode !== null) assert.fail(`the worker did not start:\n${logs}`);
    await sleep(100);
  }
  pg.freeze();
  await sleep(2500); // the worker polls every 2 s: its next claim now waits on the frozen server
  const t0 = performance.now();
  child.kill('SIGTERM');
  const end = await Promise.race([exited, sleep(GIVE_UP_MS).then(() => null)]);
  const ms = Math.round(performance.now() - t0);
  const line = logs.split('\n').find((l) => l.includes('shutdown did not finish')) ?? '';
  console.log(`# worker, SIGTERM with Postgres frozen: ${end ? `exited ${end.code ?? end.signal} after ${ms} ms` : `still running after ${ms} ms`} (bound ${BOUND_MS} ms); ${JSON.parse(line || '{}').msg ?? 'no log line'}`);
  assert.ok(end, `the worker was still running ${GIVE_UP_MS} ms after SIGTERM (bound ${BOUND_MS} ms):\n${logs.slice(-2000)}`);
  assert.equal(end.code, 1, `exit status 1 after the bound: ${logs.slice(-2000)}`);
  assert.ok(ms >= BOUND_MS - 100, `the shutdown was really held up (exited after ${ms} ms)`);
  assert.ok(ms < BOUND_MS + SLACK_MS, `exited after ${ms} ms`);
  assert.match(line, /shutdown did not finish within 3000 ms \(FCDN_SHUTDOWN_TIMEOUT_MS\); exiting with status 1\. Still open: closing the reindex worker/);
});
