/**
 * `npm run bench:api -- [--slices 100000] [--seconds 20] [--connections 32] [--json FILE]`
 *
 * End-to-end load on the running service: stores N synthetic slices (3 per case, learned-like
 * clustered codes under the shipped model; see docs/benchmarks/search.md) in the database of
 * DATABASE_URL (else a PGlite folder), starts `src/main.ts` as its own process, and from this
 * process sends `similarCases` with NEW images (three phantom PNG slices: decoding and ONNX
 * inference included) over loopback from C concurrent keep-alive connections for S seconds.
 * Then it measures ingest throughput through `ingestCase`. Prints a table and writes
 * docs/benchmarks/api.md (and the JSON).
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { SHIPPED_MODEL } from '../src/config.ts';
import { openDatabase } from '../src/db/database.ts';
import { migrate } from '../src/db/migrator.ts';
import { FcdnEncoder } from '../src/inference/index.ts';
import { createRepositories } from '../src/repositories/index.ts';
import { ModelService } from '../src/services/model.service.ts';
import { phantomSlices } from '../test/support/phantom-cases.ts';
import { mulberry32, perturb, randomCode, randomInt } from '../test/support/random-codes.ts';
import { seedCases } from '../test/support/seed-cases.ts';
import { startServiceProcess } from '../test/support/service-process.ts';
import { KEYS } from '../test/support/test-service.ts';

const { values } = parseArgs({
  options: {
    slices: { type: 'string', default: '100000' },
    seconds: { type: 'string', default: '20' },
    connections: { type: 'string', default: '32' },
    ingests: { type: 'string', default: '30' },
    json: { type: 'string' },
  },
});
const SLICES = Number(values.slices);
const SECONDS = Number(values.seconds);
const CONNECTIONS = Number(values.connections);
const log = (m: string) => console.log(`[bench:api ${new Date().toISOString().slice(11, 19)}] ${m}`);
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.max(0, Math.ceil(p * xs.length) - 1))] ?? NaN;

// ---- 1. the stored archive ---------------------------------------------------------------------
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcdn-bench-api-'));
const dbUrl = process.env.DATABASE_URL;
{
  const db = await openDatabase(dbUrl ? { databaseUrl: dbUrl } : { pgliteDir: path.join(dataDir, 'pglite') });
  await migrate(db.raw);
  const repos = createRepositories(db.prisma);
  const model = await new ModelService(repos, (p) => FcdnEncoder.load(p, 'cpu')).register(SHIPPED_MODEL);
  const [{ n }] = await db.raw.query<{ n: number }>('SELECT count(*)::int AS n FROM slice_codes WHERE model_id = $1', [model.id]);
  const rand = mulberry32(7);
  const centres = Array.from({ length: 300 }, () => ({ shallow: randomCode(rand), middle: randomCode(rand), deep: randomCode(rand) }));
  const t0 = performance.now();
  let stored = n;
  for (let batch = 0; stored < SLICES; batch++) {
    await db.raw.query(`INSERT INTO patients (patient_key) SELECT 'BENCH-' || $1 || '-' || g FROM generate_series(1, 100) g ON CONFLICT DO NOTHING`, [batch]);
    const patients = (await db.raw.query<{ id: number }>(`SELECT id FROM patients WHERE patient_key LIKE 'BENCH-' || $1 || '-%'`, [batch])).map((r) => r.id);
    const cases = Array.from({ length: Math.min(3000, Math.ceil((SLICES - stored) / 3)) }, () => {
      const c = centres[randomInt(rand, 0, 299)]!;
      const base = { shallow: perturb(c.shallow, rand, 0.08), middle: perturb(c.middle, rand, 0.08), deep: perturb(c.deep, rand, 0.08) };
      return {
        patientId: patients[randomInt(rand, 0, patients.length - 1)]!,
        malignancyClass: rand() < 0.3 ? 'MALIGNANT' : 'BENIGN',
        diameterMm: randomInt(rand, 30, 300) / 10,
        slices: [-1, 0, 1].map((offset) => ({ offset, shallow: perturb(base.shallow, rand, 0.04), middle: perturb(base.middle, rand, 0.04), deep: perturb(base.deep, rand, 0.04) })),
      };
    });
    await seedCases(db.raw, model.id, cases);
    stored += cases.length * 3;
  }
  log(`${stored} slices stored under ${model.name} (${((performance.now() - t0) / 1000).toFixed(1)} s to load ${stored - n}); ${db.kind}`);
  // Build the compiled search's blocks now (where available), not during the measurement.
  if (await repos.search.blocksAvailable()) log(`search blocks built: ${JSON.stringify(await repos.search.blocks.rebuild(model.id))}`);
  await db.close();
}

// ---- 2. the service, as its own process -----------------------------------------------------------
const service = await startServiceProcess({ FCDN_DATA_DIR: dataDir, FCDN_MODEL: SHIPPED_MODEL, ...(dbUrl ? { DATABASE_URL: dbUrl } : {}) }, 180_000);
const url = new URL(`${service.url}/graphql`);
const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });
const QUERY = 'query ($i: SimilarCasesInput!) { similarCases(input: $i) { tookMs hits { rank jointDistance case { id malignancyClass diameterMm } } } }';
const bodies = Array.from({ length: 16 }, (_, i) => JSON.stringify({ query: QUERY, variables: { i: { images: phantomSlices({ seed: 1000 + i, diameterPx: 6 + i * 1.5 }), k: 10 } } }));

function post(body: string, key = KEYS.reader): Promise<{ status: number; ms: number; errors: boolean; tookMs?: number }> {
  const t = performance.now();
  return new Promise((resolve) => {
    const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', authorization: `Bearer ${key}`, 'content-length': Buffer.byteLength(body) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        const parsed = (() => { try { return JSON.parse(text); } catch { return null; } })();
        resolve({ status: res.statusCode ?? 0, ms: performance.now() - t, errors: !parsed || Boolean(parsed.errors), tookMs: parsed?.data?.similarCases?.tookMs });
      });
    });
    req.on('error', () => resolve({ status: 0, ms: performance.now() - t, errors: true }));
    req.end(body);
  });
}

// Warm-up (model session, JIT, blocks cache).
for (let i = 0; i < 8; i++) await post(bodies[i % bodies.length]!);

// ---- 3. search load --------------------------------------------------------------------------------
log(`load: ${CONNECTIONS} connections for ${SECONDS} s, similarCases with 3 new PNG slices, k = 10`);
const latencies: number[] = [];
const serverMs: number[] = [];
let errors = 0;
const deadline = performance.now() + SECONDS * 1000;
const started = performance.now();
await Promise.all(
  Array.from({ length: CONNECTIONS }, async (_, c) => {
    for (let i = c; performance.now() < deadline; i += CONNECTIONS) {
      const r = await post(bodies[i % bodies.length]!);
      latencies.push(r.ms);
      if (r.tookMs != null) serverMs.push(r.tookMs);
      if (r.status !== 200 || r.errors) errors++;
    }
  }),
);
const elapsed = (performance.now() - started) / 1000;
const single: number[] = [];
for (let i = 0; i < 20; i++) single.push((await post(bodies[i % bodies.length]!)).ms);

// ---- 4. ingest throughput -------------------------------------------------------------------------
const INGEST = 'mutation ($i: IngestCaseInput!) { ingestCase(input: $i) { id } }';
const ingestN = Number(values.ingests);
const t1 = performance.now();
let ingestErrors = 0;
for (let i = 0; i < ingestN; i++) {
  const r = await post(JSON.stringify({ query: INGEST, variables: { i: { externalId: `bench-ingest-${i}`, patientKey: `BENCH-INGEST-${i % 10}`, images: phantomSlices({ seed: 5000 + i, diameterPx: 6 + (i % 20) }) } } }), KEYS.writer);
  if (r.status !== 200 || r.errors) ingestErrors++;
}
const ingestSeconds = (performance.now() - t1) / 1000;
await service.kill('SIGTERM');
agent.destroy();

// ---- 5. report ---------------------------------------------------------------------------------------
const result = {
  slices: SLICES,
  database: dbUrl ? 'postgres' : 'pglite',
  connections: CONNECTIONS,
  seconds: round(elapsed),
  requests: latencies.length,
  errors,
  throughput_rps: round(latencies.length / elapsed),
  p50_ms: round(pct(latencies, 0.5)),
  p95_ms: round(pct(latencies, 0.95)),
  server_p50_ms: round(pct(serverMs, 0.5)),
  single_connection_p50_ms: round(pct(single, 0.5)),
  ingest: { cases: ingestN, slices: ingestN * 3, seconds: round(ingestSeconds), slices_per_s: round((ingestN * 3) / ingestSeconds), errors: ingestErrors },
  load_average: os.loadavg().map((x) => round(x)),
};
function round(x: number) {
  return Math.round(x * 100) / 100;
}
const command = `${dbUrl ? 'DATABASE_URL=... ' : ''}npm run bench:api -- --slices ${SLICES} --seconds ${SECONDS} --connections ${CONNECTIONS}`;
const md = `# API benchmark: similarCases with new images under load

\`${command}\` — ${new Date().toISOString().slice(0, 16)} UTC, ${os.cpus().length} x ${os.cpus()[0]?.model}, load average after the run ${result.load_average.join(' ')}.
The service (\`src/main.ts\`, its own process, ${result.database}) holds ${SLICES.toLocaleString('en')} synthetic slices; this process sends
\`similarCases\` with three new 64x64 PNG slices (decoding, ONNX inference of 3 patches, Joint-distance search, k = 10)
over loopback from ${CONNECTIONS} keep-alive connections. Client and server share the machine's ${os.cpus().length} cores.

| connections | requests | errors | throughput (req/s) | p50 ms | p95 ms | server tookMs p50 | one connection p50 ms |
|---|---|---|---|---|---|---|---|
| ${CONNECTIONS} | ${result.requests} | ${errors} | ${result.throughput_rps} | ${result.p50_ms} | ${result.p95_ms} | ${result.server_p50_ms} | ${result.single_connection_p50_ms} |

Ingest through \`ingestCase\` (3 phantom PNG slices a case, one request at a time): ${ingestN} cases, ${result.ingest.slices_per_s} slices/s, ${ingestErrors} errors.
`;
console.log(md);
fs.mkdirSync('docs/benchmarks', { recursive: true });
fs.writeFileSync('docs/benchmarks/api.md', md);
if (values.json) fs.writeFileSync(values.json, JSON.stringify(result, null, 2));
fs.rmSync(dataDir, { recursive: true, force: true });
