/**
 * `npm run bench:api -- [--slices 100000] [--seconds 20] [--rates 50,100] [--connections 32]
 *                       [--query-slices 1] [--ingests 30] [--json FILE] [--no-doc]`
 *
 * End-to-end load on the running service: stores N synthetic slices (3 per case, learned-like
 * clustered codes under the shipped model; see docs/benchmarks/search.md) in the database of
 * DATABASE_URL (else a PGlite folder), starts `src/main.ts` as its own process, and from this
 * process sends `similarCases` with NEW images (phantom PNG slices: decoding and ONNX inference
 * included; 1 slice per query by default, as when a radiologist points at a nodule, or 3) over
 * loopback, in two ways:
 *   - open loop at fixed arrival rates (--rates, requests/s): request i is due at i / rate,
 *     whatever the earlier ones do, and its latency counts from when it was due (no
 *     coordinated omission), so p50 / p95 are what a user sees at that traffic;
 *   - closed loop from C keep-alive connections (--connections): the most it can serve.
 * Then ingest throughput through `ingestCase` (one at a time, and 4 at once so the encoder's
 * micro-batching can join them). Prints a table and writes docs/benchmarks/api.md (and the JSON).
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig, SHIPPED_MODEL } from '../src/config.ts';
import { buildCore } from '../src/core.ts';
import { phantomSlices } from '../fixtures/phantom-cases.ts';
import { seedSyntheticArchive } from '../fixtures/seed-cases.ts';
import { startServiceProcess } from '../fixtures/service-process.ts';
import { KEYS } from '../fixtures/api-keys.ts';
import { postTimed } from '../fixtures/graphql-client.ts';

const { values } = parseArgs({
  options: {
    slices: { type: 'string', default: '100000' },
    seconds: { type: 'string', default: '20' },
    connections: { type: 'string', default: '32' },
    rates: { type: 'string', default: '50,100' },
    'query-slices': { type: 'string', default: '1' },
    'no-doc': { type: 'boolean', default: false },
    ingests: { type: 'string', default: '30' },
    json: { type: 'string' },
  },
});
const SLICES = Number(values.slices);
const SECONDS = Number(values.seconds);
const CONNECTIONS = Number(values.connections);
const RATES = values.rates!.split(',').filter(Boolean).map(Number);
const QUERY_SLICES = Number(values['query-slices']);
if (![1, 3].includes(QUERY_SLICES)) throw new Error('--query-slices must be 1 or 3');
if (RATES.some((r) => !(r > 0))) throw new Error('--rates must be positive numbers (requests/s)');
const log = (m: string) => console.log(`[bench:api ${new Date().toISOString().slice(11, 19)}] ${m}`);
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.max(0, Math.ceil(p * xs.length) - 1))] ?? NaN;

// ---- 1. the stored archive ---------------------------------------------------------------------
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcdn-bench-api-'));
const dbUrl = process.env.DATABASE_URL;
{
  // The database the service process will open (same folder or DATABASE_URL), with its model registered.
  const core = await buildCore(loadConfig({ FCDN_DATA_DIR: dataDir, FCDN_MODEL: SHIPPED_MODEL, FCDN_EXECUTION_PROVIDER: 'cpu', LOG_LEVEL: 'warn', ...(dbUrl ? { DATABASE_URL: dbUrl } : {}) }), { urlSecret: 'ephemeral' });
  const { db, repos } = core;
  const model = core.model!;
  const [{ n }] = await db.raw.query<{ n: number }>('SELECT count(*)::int AS n FROM slice_codes WHERE model_id = $1', [model.id]);
  const t0 = performance.now();
  const stored = n + (n < SLICES ? (await seedSyntheticArchive(db.raw, model.id, SLICES - n, 'BENCH')).length * 3 : 0);
  log(`${stored} slices stored under ${model.name} (${((performance.now() - t0) / 1000).toFixed(1)} s to load ${stored - n}); ${db.kind}`);
  // Build the compiled search's blocks now (where available), not during the measurement.
  if (await repos.search.blocksAvailable()) log(`search blocks built: ${JSON.stringify(await repos.search.blocks.rebuild(model.id))}`);
  await core.close();
}

// ---- 2. the service, as its own process -----------------------------------------------------------
const service = await startServiceProcess({ FCDN_DATA_DIR: dataDir, FCDN_MODEL: SHIPPED_MODEL, ...(dbUrl ? { DATABASE_URL: dbUrl } : {}) }, 180_000);
// Never leave the service running when this script stops early.
process.once('exit', () => {
  if (service.child.exitCode === null) service.child.kill('SIGKILL');
});
const url = new URL(`${service.url}/graphql`);
const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });
const QUERY = 'query ($i: SimilarCasesInput!) { similarCases(input: $i) { tookMs hits { rank jointDistance case { id malignancyClass diameterMm } } } }';
const queryImages = (i: number) => {
  const slices = phantomSlices({ seed: 1000 + i, diameterPx: 6 + i * 1.5 });
  return QUERY_SLICES === 3 ? slices : slices.filter((sl) => sl.offset === 0);
};
const bodies = Array.from({ length: 16 }, (_, i) => JSON.stringify({ query: QUERY, variables: { i: { images: queryImages(i), k: 10 } } }));

async function post(body: string, key = KEYS.reader): Promise<{ status: number; ms: number; errors: boolean; tookMs?: number }> {
  const { status, ms, body: parsed } = await postTimed(url, body, key, agent);
  return { status, ms, errors: !parsed || Boolean(parsed.errors), tookMs: parsed?.data?.similarCases?.tookMs };
}

// Warm-up (model session, JIT, blocks cache).
for (let i = 0; i < 8; i++) await post(bodies[i % bodies.length]!);

// ---- 3. search load --------------------------------------------------------------------------------
interface Phase {
  mode: string;
  requests: number;
  errors: number;
  seconds: number;
  throughput_rps: number;
  p50_ms: number;
  p95_ms: number;
  p99_ms: number;
  server_p50_ms: number;
}
function phase(mode: string, latencies: number[], serverMs: number[], errors: number, seconds: number): Phase {
  return {
    mode,
    requests: latencies.length,
    errors,
    seconds: round(seconds),
    throughput_rps: round(latencies.length / seconds),
    p50_ms: round(pct(latencies, 0.5)),
    p95_ms: round(pct(latencies, 0.95)),
    p99_ms: round(pct(latencies, 0.99)),
    server_p50_ms: round(pct(serverMs, 0.5)),
  };
}

/** Open loop: request i is due at started + i / rate; its latency counts from then. */
async function openLoop(rate: number): Promise<Phase> {
  log(`open loop: ${rate} requests/s for ${SECONDS} s, similarCases with ${QUERY_SLICES} new PNG slice(s), k = 10`);
  const latencies: number[] = [];
  const serverMs: number[] = [];
  let errors = 0;
  const total = Math.round(rate * SECONDS);
  const started = performance.now();
  const inFlight: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    inFlight.push(
      post(bodies[i % bodies.length]!).then((r) => {
        latencies.push(performance.now() - due);
        if (r.tookMs != null) serverMs.push(r.tookMs);
        if (r.status !== 200 || r.errors) errors++;
      }),
    );
  }
  await Promise.all(inFlight);
  return phase(`open loop, ${rate} req/s offered`, latencies, serverMs, errors, (performance.now() - started) / 1000);
}

/** Closed loop: C connections, each sends its next request when the last one answered. */
async function closedLoop(connections: number): Promise<Phase> {
  log(`closed loop: ${connections} connections for ${SECONDS} s`);
  const latencies: number[] = [];
  const serverMs: number[] = [];
  let errors = 0;
  const deadline = performance.now() + SECONDS * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: connections }, async (_, c) => {
      for (let i = c; performance.now() < deadline; i += connections) {
        const r = await post(bodies[i % bodies.length]!);
        latencies.push(r.ms);
        if (r.tookMs != null) serverMs.push(r.tookMs);
        if (r.status !== 200 || r.errors) errors++;
      }
    }),
  );
  return phase(`closed loop, ${connections} connections`, latencies, serverMs, errors, (performance.now() - started) / 1000);
}

const phases: Phase[] = [];
for (const rate of RATES) phases.push(await openLoop(rate));
phases.push(await closedLoop(CONNECTIONS));
const single: number[] = [];
for (let i = 0; i < 20; i++) single.push((await post(bodies[i % bodies.length]!)).ms);
for (const p of phases) log(`${p.mode}: ${p.requests} requests, ${p.errors} errors, ${p.throughput_rps} req/s, p50 ${p.p50_ms} ms, p95 ${p.p95_ms} ms`);

// ---- 4. ingest throughput -------------------------------------------------------------------------
const INGEST = 'mutation ($i: IngestCaseInput!) { ingestCase(input: $i) { id } }';
const ingestN = Number(values.ingests);
async function ingestRun(concurrency: number, offset: number) {
  const t = performance.now();
  let errs = 0;
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < ingestN; i = next++) {
        const n = offset + i;
        const r = await post(JSON.stringify({ query: INGEST, variables: { i: { externalId: `bench-ingest-${n}`, patientKey: `BENCH-INGEST-${n % 10}`, images: phantomSlices({ seed: 5000 + n, diameterPx: 6 + (n % 20) }) } } }), KEYS.writer);
        if (r.status !== 200 || r.errors) errs++;
      }
    }),
  );
  const seconds = (performance.now() - t) / 1000;
  return { concurrency, cases: ingestN, slices: ingestN * 3, seconds: round(seconds), slices_per_s: round((ingestN * 3) / seconds), errors: errs };
}
const ingests = [await ingestRun(1, 0), await ingestRun(4, ingestN)];
await service.kill('SIGTERM');
agent.destroy();

// ---- 5. report ---------------------------------------------------------------------------------------
const result = {
  slices: SLICES,
  database: dbUrl ? 'postgres' : 'pglite',
  query_slices: QUERY_SLICES,
  phases,
  single_connection_p50_ms: round(pct(single, 0.5)),
  ingest: ingests,
  load_average: os.loadavg().map((x) => round(x)),
};
function round(x: number) {
  return Math.round(x * 100) / 100;
}
const command = `${dbUrl ? 'DATABASE_URL=... ' : ''}npm run bench:api -- --slices ${SLICES} --seconds ${SECONDS} --rates ${RATES.join(',')} --connections ${CONNECTIONS} --query-slices ${QUERY_SLICES}`;
const md = `# API benchmark: similarCases with new images under load

\`${command}\` — ${new Date().toISOString().slice(0, 16)} UTC, ${os.cpus().length} x ${os.cpus()[0]?.model}, load average after the run ${result.load_average.join(' ')}.
The service (\`src/main.ts\`, its own process, ${result.database}, model \`${path.basename(SHIPPED_MODEL)}\`) holds ${SLICES.toLocaleString('en')} synthetic slices; this process sends
\`similarCases\` with ${QUERY_SLICES} new 64x64 PNG slice(s) per query (decoding, ONNX inference, Joint-distance search, k = 10) over
loopback. Client and server share the machine's ${os.cpus().length} cores. Open loop: requests arrive at a fixed rate whatever
the service does, latency counted from each request's due time (what a user sees at that traffic). Closed loop: each
connection sends its next request when the last one answered (the most the service can serve; latency is then
connections / throughput by Little's law).

| load | requests | errors | throughput (req/s) | p50 ms | p95 ms | p99 ms | server tookMs p50 |
|---|---:|---:|---:|---:|---:|---:|---:|
${phases.map((p) => `| ${p.mode} | ${p.requests} | ${p.errors} | ${p.throughput_rps} | ${p.p50_ms} | ${p.p95_ms} | ${p.p99_ms} | ${p.server_p50_ms} |`).join('\n')}

One request at a time: p50 ${result.single_connection_p50_ms} ms.

Ingest through \`ingestCase\` (3 phantom PNG slices a case): ${ingests.map((g) => `${g.concurrency} at a time: ${g.cases} cases, ${g.slices_per_s} slices/s, ${g.errors} errors`).join('; ')}.
`;
console.log(md);
if (!values['no-doc']) {
  fs.mkdirSync('docs/benchmarks', { recursive: true });
  fs.writeFileSync('docs/benchmarks/api.md', md);
}
if (values.json) fs.writeFileSync(values.json, JSON.stringify(result, null, 2));
fs.rmSync(dataDir, { recursive: true, force: true });
