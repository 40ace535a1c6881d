/**
 * SIGTERM always ends the service within FCDN_SHUTDOWN_TIMEOUT_MS (issue 12): `src/main.ts` as a
 * real process, signalled during an ingest in progress (embedded PGlite), and during a hang (a
 * private Postgres frozen with SIGSTOP under requests that wait on it, no silence timeout). A
 * shutdown that cannot finish in time logs what was still open and exits with status 1.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { loadConfig } from '../../src/config.ts';
import { makePhantomPng } from '../../fixtures/phantoms.ts';
import { startPrivatePostgres, type PrivatePostgres } from '../support/private-postgres.ts';
import { startServiceProcess, type ServiceProcess } from '../../fixtures/service-process.ts';
import { createTestDatabase, type TestDatabase } from '../../fixtures/test-database.ts';
import { caseInput, INGEST, sleep } from './harness.ts';

/** Slack for process exit and the machine's load (2 shared cores), on top of the bound. */
const SLACK_MS = 3000;

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** Sends the signal and resolves with how the process ended and how long it took. */
function terminate(proc: ServiceProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<{ ms: number; code: number | null; signal: NodeJS.Signals | null }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    proc.child.once('exit', (code, sig) => resolve({ ms: Math.round(performance.now() - t0), code, signal: sig }));
    proc.child.kill(signal);
  });
}

test('FCDN_SHUTDOWN_TIMEOUT_MS: 10000 by default, a positive integer of milliseconds', () => {
  assert.equal(loadConfig({}).shutdownTimeoutMs, 10_000);
  assert.equal(loadConfig({ FCDN_SHUTDOWN_TIMEOUT_MS: '2500' }).shutdownTimeoutMs, 2500);
  for (const bad of ['0', '-1', '1.5', 'ten']) assert.throws(() => loadConfig({ FCDN_SHUTDOWN_TIMEOUT_MS: bad }), /FCDN_SHUTDOWN_TIMEOUT_MS must be an integer of at least 1/);
});

test('SIGTERM during an ingest in progress (PGlite): the ingest is answered, then the process ends within the bound', async () => {
  const BOUND_MS = 15_000;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcdn-shutdown-'));
  cleanups.push(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const proc = await startServiceProcess({ FCDN_DATA_DIR: dataDir, DATABASE_URL: '', S3_ENDPOINT: '', FCDN_SHUTDOWN_TIMEOUT_MS: String(BOUND_MS) });
  cleanups.push(() => proc.kill('SIGKILL'));
  // 64 large slices (the most a case has): decoding, resampling and the model take a while.
  const images = Array.from({ length: 64 }, (_, i) => ({ offset: i - 32, data: makePhantomPng({ seed: 500 + i, size: 512, diameterPx: 40 }).toString('base64') }));
  let answeredAt = 0;
  const ingest = proc.gql(INGEST, { input: { patientKey: 'PSEUDO-SIGTERM', externalId: 'in-flight', images } }, 'writer').then(
    (res) => {
      answeredAt = performance.now();
      return res;
    },
    (err: Error) => ({ transportError: err.message }) as const,
  );
  await sleep(200); // the request has reached the service; 64 slices take it over a second to ingest here
  const signalledAt = performance.now();
  assert.equal(answeredAt, 0, 'the ingest is still in progress when the signal comes');
  const end = await terminate(proc);
  const answer = await ingest;
  const logs = proc.logs.join('');
  console.log(`# SIGTERM during an ingest: exited ${end.code ?? end.signal} after ${end.ms} ms (bound ${BOUND_MS} ms); the ingest ${'transportError' in answer ? `lost its connection (${answer.transportError})` : `was answered ${Math.round(answeredAt - signalledAt)} ms after the signal: ${JSON.stringify(answer.data ?? answer.errors).slice(0, 100)}`}`);
  assert.ok(end.ms < BOUND_MS + SLACK_MS, `exited after ${end.ms} ms`);
  assert.match(logs, /"signal":"SIGTERM"[^\n]*shutting down/);
  assert.equal(end.code, 0, `a clean exit: ${logs.slice(-2000)}`);
  assert.ok(!('transportError' in answer), 'the ingest in flight got its answer before the process closed');
  assert.equal(answer.errors, undefined, JSON.stringify(answer.errors));
  assert.ok(answer.data.ingestCase.id, 'and it was stored');
  assert.match(logs, /"msg":"shut down"/);
});

test('SIGTERM while requests hang on a frozen Postgres: exits at the bound with a log line of what was still open', async () => {
  const BOUND_MS = 3000;
  const pg: PrivatePostgres = await startPrivatePostgres();
  cleanups.push(() => pg.destroy());
  const db: TestDatabase = await createTestDatabase({ serverUrl: pg.url });
  cleanups.push(async () => {
    pg.thaw();
    await db.close().catch(() => {});
  });
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcdn-shutdown-'));
  cleanups.push(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const proc = await startServiceProcess({
    FCDN_DATA_DIR: dataDir,
    DATABASE_URL: db.url!,
    S3_ENDPOINT: '',
    // No silence bound: a request waits on the frozen server for as long as it stays frozen.
    FCDN_DB_SILENCE_TIMEOUT_MS: '0',
    FCDN_DB_CONNECT_TIMEOUT_MS: '600000',
    FCDN_SHUTDOWN_TIMEOUT_MS: String(BOUND_MS),
  });
  cleanups.push(() => proc.kill('SIGKILL'));
  assert.equal((await proc.gql(INGEST, { input: caseInput(1, 'SIG') }, 'writer')).errors, undefined);

  pg.freeze();
  const hung = [
    proc.gql('{ cases(first: 5) { totalCount } }', {}, 'reader').catch(() => 'lost'),
    proc.gql(INGEST, { input: caseInput(2, 'SIG') }, 'writer').catch(() => 'lost'),
  ];
  await sleep(1000);
  const end = await terminate(proc);
  await Promise.all(hung);
  const logs = proc.logs.join('');
  const line = logs.split('\n').find((l) => l.includes('shutdown did not finish')) ?? '';
  console.log(`# SIGTERM with Postgres frozen: exited ${end.code ?? end.signal} after ${end.ms} ms (bound ${BOUND_MS} ms); ${JSON.parse(line || '{}').msg ?? 'no log line'}`);
  assert.equal(end.code, 1, `exit status 1 after the bound: ${logs.slice(-2000)}`);
  assert.ok(end.ms >= BOUND_MS - 100, `the shutdown was really held up (exited after ${end.ms} ms)`);
  assert.ok(end.ms < BOUND_MS + SLACK_MS, `exited after ${end.ms} ms`);
  assert.match(line, /shutdown did not finish within 3000 ms \(FCDN_SHUTDOWN_TIMEOUT_MS\); exiting with status 1\. Still open: closing the HTTP server \(waiting for the requests in flight to finish\); 2 HTTP requests in flight \(POST \/graphql for \d+\.\d s, POST \/graphql for \d+\.\d s\)/);
});
