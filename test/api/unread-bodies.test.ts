/**
 * Issue 13, item 4: bodies read before the caller is known. `express.json` read and parsed up to
 * FCDN_MAX_REQUEST_BYTES (32 MB) of a POST /graphql before the resolver found no key, and
 * `PUT /uploads/:id` buffered up to FCDN_MAX_UPLOAD_BYTES (64 MB) before checking its signature:
 * a few dozen anonymous requests could exhaust the memory. Now the key and the upload signature
 * are checked on the headers, and the answer comes while the client is still sending.
 *
 * The service runs as its own process (src/main.ts), so its peak resident memory (VmHWM in
 * /proc/<pid>/status) is its own, not the test's: 12 concurrent anonymous ~30 MB bodies per route.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { startServiceProcess, type ServiceProcess } from '../../fixtures/service-process.ts';
import { createTestDatabase, databaseLabel, usingPostgres, type TestDatabase } from '../../fixtures/test-database.ts';

const BODY_BYTES = 30 * 1024 * 1024;
const CONCURRENT = 12;
/** Peak RSS the service may gain while refusing them: 12 bodies read would be 12 x 30 MB and more. */
const MAX_GROWTH_MB = 100;
const CHUNK = Buffer.alloc(256 * 1024, 0x20); // JSON whitespace: the body stays valid JSON

let proc: ServiceProcess;
let db: TestDatabase | undefined;
let dataDir: string;

before(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcdn-unread-'));
  db = usingPostgres ? await createTestDatabase() : undefined;
  proc = await startServiceProcess({ FCDN_DATA_DIR: dataDir, DATABASE_URL: db?.url ?? '', S3_ENDPOINT: '' });
});
after(async () => {
  await proc?.kill();
  await db?.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

function memoryMb(pid: number): { rss: number; peak: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)![1]);
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

interface Outcome {
  status: number | null;
  /** Body bytes the client had handed to its socket when the answer arrived. */
  sentWhenAnswered: number;
  error?: string;
}

/**
 * Sends a ~30 MB body: the first FIRST_PART bytes (with the headers, in one write), then waits up to ANSWER_WAIT_MS for an answer,
 * then (no answer yet: the server is reading) the rest, in chunks that respect backpressure. A
 * server that answers on the headers has answered before the rest is sent; one that reads the body
 * answers only after all of it. (Writing on after an early answer races the server's close: Node's
 * client may then report EPIPE instead of the answer.)
 */
const FIRST_PART = 64 * 1024;
const ANSWER_WAIT_MS = 3_000;
function sendLarge(method: string, urlPath: string, headers: Record<string, string>, prefix: string, suffix: string): Promise<Outcome> {
  const url = new URL(urlPath, proc.url);
  return new Promise((resolve) => {
    let sent = 0;
    let answered = false;
    let onAnswer = () => {};
    const req = http.request(url, { method, agent: false, headers: { ...headers, 'content-length': String(BODY_BYTES) } });
    req.on('response', (res) => {
      answered = true;
      onAnswer();
      resolve({ status: res.statusCode ?? null, sentWhenAnswered: sent });
      res.resume();
      req.destroy();
    });
    req.on('error', (err) => {
      if (!answered) resolve({ status: null, sentWhenAnswered: sent, error: (err as Error).message });
    });
    const waitFor = (ms: number | null) =>
      new Promise<void>((r) => {
        const timer = ms === null ? null : setTimeout(() => done(), ms);
        const done = () => (timer && clearTimeout(timer), req.off('drain', done), req.off('close', done), (onAnswer = () => {}), r());
        if (ms === null) req.on('drain', done);
        req.on('close', done);
        onAnswer = done;
      });
    const writeUpTo = async (limit: number) => {
      while (!answered && !req.destroyed && sent < limit) {
        const n = Math.min(CHUNK.length, limit - sent);
        const ok = req.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n));
        sent += n;
        if (!ok) await waitFor(null);
      }
    };
    void (async () => {
      const head = Buffer.from(prefix);
      const tail = Buffer.from(suffix);
      req.write(Buffer.concat([head, CHUNK.subarray(0, FIRST_PART - head.length)]));
      sent = FIRST_PART;
      if (!answered) await waitFor(ANSWER_WAIT_MS);
      await writeUpTo(BODY_BYTES - tail.length);
      if (!answered && !req.destroyed) {
        req.end(tail);
        sent = BODY_BYTES;
      }
    })().catch(() => {});
  });
}

async function refusedConcurrently(make: () => Promise<Outcome>, expected: number, label: string) {
  const pid = proc.child.pid!;
  const before = memoryMb(pid);
  // The startup's peak (model load) is above the idle RSS, so the burst's own peak is sampled.
  let highest = before.rss;
  const sampler = setInterval(() => (highest = Math.max(highest, memoryMb(pid).rss)), 10);
  const outcomes = await Promise.all(Array.from({ length: CONCURRENT }, make));
  await new Promise((r) => setTimeout(r, 200));
  clearInterval(sampler);
  const sent = outcomes.map((o) => Math.round(o.sentWhenAnswered / 1024));
  console.log(`# ${label}: ${CONCURRENT} x ${BODY_BYTES / 1024 / 1024} MB; statuses ${[...new Set(outcomes.map((o) => o.status))].join(',')}; KB sent when answered: ${sent.join(' ')}; service RSS ${before.rss.toFixed(0)} MB before, highest ${highest.toFixed(0)} MB during (+${(highest - before.rss).toFixed(0)} MB)`);
  for (const o of outcomes) {
    assert.equal(o.status, expected, `${label}: ${JSON.stringify(o)}`);
    assert.ok(o.sentWhenAnswered < BODY_BYTES, `${label}: the answer came only after the whole body was sent (${o.sentWhenAnswered} bytes): the server read it`);
  }
  assert.ok(highest - before.rss < MAX_GROWTH_MB, `${label}: the service's RSS grew by ${(highest - before.rss).toFixed(0)} MB while refusing them`);
}

test(`POST /graphql without a valid key: 401 before the body is read, memory flat (${databaseLabel})`, async () => {
  const prefix = '{"query":"{ models { id } }","variables":{},"pad":"';
  const suffix = '"}';
  await refusedConcurrently(() => sendLarge('POST', '/graphql', { 'content-type': 'application/json' }, prefix, suffix), 401, 'anonymous POST /graphql');
  await refusedConcurrently(() => sendLarge('POST', '/graphql', { 'content-type': 'application/json', authorization: 'Bearer fcdn_admin_not_a_key_0000000000000000' }, prefix, suffix), 401, 'POST /graphql with a wrong key');
  // The service still answers a caller with a key.
  const ok = await proc.gql('{ models { id } }', {}, 'reader');
  assert.equal(ok.errors, undefined, JSON.stringify(ok.errors));
});

test(`PUT /uploads/:id with a forged signature: 403 before the body is read, memory flat (${databaseLabel})`, async () => {
  const id = '3f0c1d2e-4b5a-4c6d-8e7f-9a0b1c2d3e4f';
  await refusedConcurrently(
    () => sendLarge('PUT', `/uploads/${id}?expires=${Math.floor(Date.now() / 1000) + 600}&sig=forged`, { 'content-type': 'application/octet-stream' }, '', ''),
    403,
    'unsigned PUT /uploads',
  );
});
