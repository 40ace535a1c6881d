/**
 * One process per embedded data folder (issue 12, item 6; src/db/data-dir-lock.ts): with `npm start`
 * running on a folder, a second `npm start` and an `npm run import` on the same FCDN_DATA_DIR stop
 * at start, within seconds, with an error naming the folder and the holding process, instead of
 * "importing" into a database the server never sees and hanging it. A holder that was killed
 * (SIGKILL: no cleanup) leaves a stale lock that the next process takes over.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { DataDirInUseError, lockDataDir } from '../../src/db/data-dir-lock.ts';
import { openDatabase } from '../../src/db/database.ts';
import { makePhantomPng } from '../../fixtures/phantoms.ts';
import { startServiceProcess, type ServiceProcess } from '../../fixtures/service-process.ts';
import { FIXTURE_MODEL, KEYS, TEST_URL_SECRET } from '../../fixtures/test-service.ts';

const run = promisify(execFile);
const dirs: string[] = [];
const children: ServiceProcess[] = [];

function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

/** A process that only waits (stands in for another holder); resolves with it once it runs. */
async function idleProcess() {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  await new Promise((resolve) => child.once('spawn', resolve));
  return child;
}

after(async () => {
  for (const c of children) await c.kill('SIGKILL').catch(() => {});
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

test('a folder locked by another live process is refused at open with its folder and process; a dead holder\'s lock is taken over', async () => {
  const dataDir = tempDir('fcdn-lock-');
  const pgliteDir = path.join(dataDir, 'pglite');
  const other = await idleProcess();
  try {
    fs.writeFileSync(`${pgliteDir}.lock`, JSON.stringify({ pid: other.pid, host: os.hostname(), command: 'npm start: src/main.ts', since: '2026-12-06T12:00:00.000Z' }));
    const started = Date.now();
    await assert.rejects(openDatabase({ pgliteDir }), (err: unknown) => {
      assert.ok(err instanceof DataDirInUseError);
      assert.equal(err.message, `the data folder ${dataDir} is in use by process ${other.pid} (npm start: src/main.ts, since 2026-12-06T12:00:00.000Z); PGlite allows one process per folder: stop that process, or set FCDN_DATA_DIR to another folder (or DATABASE_URL to a Postgres server, which any number of processes can share)`);
      return true;
    });
    assert.ok(Date.now() - started < 2000, 'refused at once, not after a hang');
  } finally {
    other.kill('SIGKILL');
    await new Promise((resolve) => other.once('exit', resolve));
  }
  // The holder is gone (killed without cleanup): its lock is stale and this process takes over.
  const db = await openDatabase({ pgliteDir });
  assert.equal(JSON.parse(fs.readFileSync(`${pgliteDir}.lock`, 'utf8')).pid, process.pid);
  // The same process may open its folder again (shared, counted); the lock goes with the last close.
  const again = lockDataDir(pgliteDir);
  again.release();
  assert.ok(fs.existsSync(`${pgliteDir}.lock`));
  await db.close();
  assert.equal(fs.existsSync(`${pgliteDir}.lock`), false, 'closing removes the lock');
});

test('with npm start running on a folder, a second npm start and npm run import on it fail at start naming the folder and the process', { timeout: 180_000 }, async () => {
  const dataDir = tempDir('fcdn-lock-svc-');
  // The embedded database is what one folder per process protects: PGlite even where the suite runs on Postgres.
  const env = { FCDN_DATA_DIR: dataDir, FCDN_MODEL: FIXTURE_MODEL, DATABASE_URL: '' };
  const server = await startServiceProcess(env);
  children.push(server);
  const inUse = `the data folder ${dataDir} is in use by process ${server.child.pid} (`;

  const childEnv = { ...process.env, ...env, PORT: '0', FCDN_EXECUTION_PROVIDER: 'cpu', LOG_LEVEL: 'warn', FCDN_API_KEYS: `admin:${KEYS.admin}`, FCDN_URL_SECRET: TEST_URL_SECRET };
  let started = Date.now();
  const second = await run(process.execPath, ['--import', 'tsx', 'src/main.ts'], { env: childEnv, timeout: 60_000 }).then(
    () => assert.fail('a second server started on the same folder'),
    (err: { code?: number; stderr: string }) => err,
  );
  assert.equal(second.code, 1);
  assert.match(second.stderr, new RegExp(`fcdn: the service could not start: ${escape(inUse)}`));
  assert.ok(Date.now() - started < 30_000, `the second server gave up in ${Date.now() - started} ms`);

  const folder = tempDir('fcdn-lock-import-');
  fs.writeFileSync(path.join(folder, 'a.png'), makePhantomPng({ seed: 1, size: 64, diameterPx: 12 }));
  fs.writeFileSync(path.join(folder, 'labels.csv'), 'id,image_path,patient_id,malignancy\nlock-1,a.png,PSEUDO-LOCK,4\n');
  started = Date.now();
  const imported = await run(process.execPath, ['--import', 'tsx', 'src/cli/import.ts', folder], { env: childEnv, timeout: 60_000 }).then(
    () => assert.fail('the import ran beside the server'),
    (err: { code?: number; stderr: string }) => err,
  );
  assert.equal(imported.code, 1);
  assert.match(imported.stderr, new RegExp(`import: the service could not start: ${escape(inUse)}`));
  assert.ok(Date.now() - started < 30_000);

  // The server still answers, untouched; once it is killed outright, the import runs.
  const res = await server.gql(`{ cases { totalCount } }`);
  assert.equal(res.data.cases.totalCount, 0);
  await server.kill('SIGKILL');
  const after = await run(process.execPath, ['--import', 'tsx', 'src/cli/import.ts', folder], { env: childEnv, timeout: 120_000 });
  assert.match(after.stdout, /imported 1\b/);
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

test('a lock left by an earlier life of this process (a restarted container: same host, same pid) or left empty by a crash is stale', () => {
  const dataDir = tempDir('fcdn-lock-restart-');
  const pgliteDir = path.join(dataDir, 'pglite');
  // A container restarted after a kill: its new process got the pid the lock names.
  fs.writeFileSync(`${pgliteDir}.lock`, JSON.stringify({ pid: process.pid, host: os.hostname(), command: 'npm start: src/main.ts', since: '2026-12-06T11:00:00.000Z' }));
  let lock = lockDataDir(pgliteDir);
  assert.ok(JSON.parse(fs.readFileSync(`${pgliteDir}.lock`, 'utf8')).since > '2026-12-06T11:00:00.000Z', 'claimed anew');
  lock.release();
  // Empty (a crash between creating and writing it): being written now when fresh, stale when old.
  fs.writeFileSync(`${pgliteDir}.lock`, '');
  assert.throws(() => lockDataDir(pgliteDir), DataDirInUseError);
  const old = new Date(Date.now() - 60_000);
  fs.utimesSync(`${pgliteDir}.lock`, old, old);
  lock = lockDataDir(pgliteDir);
  assert.equal(JSON.parse(fs.readFileSync(`${pgliteDir}.lock`, 'utf8')).pid, process.pid);
  lock.release();
});
