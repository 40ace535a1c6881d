/**
 * A missing or corrupt model file at start: the service process refuses to start. It exits
 * non-zero with a message that names the file and the problem, and never listens (no
 * half-working server that would fail every ingest and search).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { freePort } from '../../fixtures/local-servers.ts';
import { createTestDatabase, type TestDatabase } from '../../fixtures/test-database.ts';
import { FIXTURE_MODEL } from '../../fixtures/test-service.ts';
import { postgresUrl } from './harness.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcdn-model-fault-'));
const card = JSON.parse(fs.readFileSync(FIXTURE_MODEL.replace(/\.onnx$/, '.json'), 'utf8'));
const bytes = fs.readFileSync(FIXTURE_MODEL);
let db: TestDatabase;

before(async () => {
  postgresUrl();
  db = await createTestDatabase();
});
after(async () => {
  await db?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Writes a model (bytes and card, either may be left out) under a name; returns its path. */
function model(name: string, onnx: Buffer | null, cardJson: object | null): string {
  const file = path.join(dir, `${name}.onnx`);
  if (onnx) fs.writeFileSync(file, onnx);
  if (cardJson) fs.writeFileSync(path.join(dir, `${name}.json`), JSON.stringify(cardJson));
  return file;
}

/** Runs `npm start`'s entry point to its exit; returns the exit code, its output, and whether the port ever answered. */
async function startWith(modelPath: string): Promise<{ code: number | null; output: string; listened: boolean; ms: number }> {
  const port = await freePort();
  const t0 = Date.now();
  const child = spawn(process.execPath, ['--import', 'tsx', path.resolve('src/main.ts')], {
    env: { ...process.env, PORT: String(port), DATABASE_URL: db.url!, FCDN_DATA_DIR: path.join(dir, 'data'), FCDN_MODEL: modelPath, FCDN_EXECUTION_PROVIDER: 'cpu', FCDN_API_KEYS: 'admin:admin-key-00001', FCDN_URL_SECRET: 'model-start-url-secret-0123456789abcdef' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (c) => (output += c));
  child.stderr.on('data', (c) => (output += c));
  let listened = false;
  const probe = setInterval(() => {
    const s = net.connect(port, '127.0.0.1', () => {
      listened = true;
      s.destroy();
    });
    s.on('error', () => {});
  }, 50);
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  clearInterval(probe);
  clearTimeout(timer);
  return { code, output, listened, ms: Date.now() - t0 };
}

const half = bytes.subarray(0, Math.floor(bytes.length / 2));
const { sha256: _sha, ...cardWithoutSha } = card;
const cases: [string, () => string, RegExp][] = [
  ['the model file is missing', () => path.join(dir, 'absent.onnx'), /Cannot read the model file .*absent\.onnx: it does not exist/],
  ['the model card is missing', () => model('no-card', bytes, null), /Cannot read the model card/],
  ['the file is truncated (sha256 differs from the card)', () => model('truncated', half, card), /does not match its card: sha256 is [0-9a-f]{64}, the card says/],
  ['the card names another sha256', () => model('wrong-sha', bytes, { ...card, sha256: '0'.repeat(64) }), /does not match its card/],
  ['the file is truncated and the card has no sha256 (ONNX cannot parse it)', () => model('truncated-nosha', half, cardWithoutSha), /onnxruntime could not load the model/],
  ['the file is empty', () => model('empty', Buffer.alloc(0), card), /is empty/],
];

for (const [what, make, message] of cases) {
  test(`the service refuses to start when ${what}`, async () => {
    const run = await startWith(make());
    console.log(`# ${what}: exit ${run.code} after ${run.ms} ms: ${run.output.trim().split('\n').pop()?.slice(0, 200)}`);
    assert.equal(run.code, 1, run.output);
    assert.match(run.output, /fcdn: the service could not start:/);
    assert.match(run.output, message);
    assert.doesNotMatch(run.output, /listening on/);
    assert.equal(run.listened, false, 'the port never accepted a connection');
  });
}
