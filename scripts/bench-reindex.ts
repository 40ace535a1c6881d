/**
 * `npm run bench:reindex -- [--slices 100000] [--json FILE] [--no-doc]`
 *
 * How long a model change takes: N stored slices (3 per case) with images in the object store
 * and codes under an old model (the test fixture `fcdn-untrained.onnx`), the service
 * (`src/main.ts`, its own process, with its in-process reindex worker), then an admin's
 * `registerModel` of the shipped model and `reindex`, as in the admin's story. Every slice is
 * read from the store, decoded, encoded by the new model and its codes written; the new model is
 * activated when the job has finished. Meanwhile this process searches by stored case once a
 * second (search keeps answering with the old model). Reports slices/s, the time per 100k
 * slices, and the search latency during the job; writes docs/benchmarks/reindex.md (and the JSON).
 *
 * The images are 16 distinct phantom PNGs spread over the slices (decoding and inference cost
 * the same whatever the pixels), written straight into the filesystem object store.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig, SHIPPED_MODEL } from '../src/config.ts';
import { buildCore } from '../src/core.ts';
import { PROJECT_ROOT } from '../src/paths.ts';
import { phantomSlices } from '../fixtures/phantom-cases.ts';
import { randomInt } from '../fixtures/random-codes.ts';
import { seedSyntheticArchive } from '../fixtures/seed-cases.ts';
import { startServiceProcess } from '../fixtures/service-process.ts';

const { values } = parseArgs({
  options: {
    slices: { type: 'string', default: '100000' },
    json: { type: 'string' },
    'no-doc': { type: 'boolean', default: false },
  },
});
const SLICES = Number(values.slices);
if (!Number.isInteger(SLICES) || SLICES < 3) throw new Error('--slices must be an integer >= 3');
const OLD_MODEL = path.join(PROJECT_ROOT, 'test/fixtures/fcdn-untrained.onnx');
const log = (m: string) => console.log(`[bench:reindex ${new Date().toISOString().slice(11, 19)}] ${m}`);
const round = (x: number) => Math.round(x * 100) / 100;
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.max(0, Math.ceil(p * xs.length) - 1))] ?? NaN;

// ---- 1. the stored archive, under the old model ------------------------------------------------
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcdn-bench-reindex-'));
const dbUrl = process.env.DATABASE_URL;
let firstCaseId = 0;
{
  // The database and store the service process will open, with the old model registered.
  const core = await buildCore(loadConfig({ FCDN_DATA_DIR: dataDir, FCDN_MODEL: OLD_MODEL, FCDN_EXECUTION_PROVIDER: 'cpu', LOG_LEVEL: 'warn', ...(dbUrl ? { DATABASE_URL: dbUrl } : {}) }), { urlSecret: 'ephemeral' });
  const { db, store } = core;
  const old = core.model!;
  const [{ n: existing }] = await db.raw.query<{ n: number }>('SELECT count(*)::int AS n FROM slices');
  if (existing > 0) throw new Error(`the database already holds ${existing} slices: use a fresh one`);
  const pngs = Array.from({ length: 16 }, (_, i) => Buffer.from(phantomSlices({ seed: 300 + i, diameterPx: 5 + i * 1.5, slices: 1 })[0]!.data, 'base64'));
  const t0 = performance.now();
  const ids = await seedSyntheticArchive(db.raw, old.id, SLICES, 'REINDEX');
  firstCaseId = ids[0]!;
  // Each slice's image under a key of the store's form (one file per slice, as ingest writes them).
  await db.raw.query(`UPDATE slices SET image_key = 'k/' || case_id || '/s' || slice_offset`);
  const keys = ids.flatMap((id) => [-1, 0, 1].map((o) => `k/${id}/s${o}`));
  for (let i = 0; i < keys.length; i += 64) {
    await Promise.all(keys.slice(i, i + 64).map((key, j) => store.put(key, pngs[(i + j) % pngs.length]!, 'image/png')));
  }
  const stored = keys.length;
  log(`${stored} slices with images stored under ${old.name} in ${((performance.now() - t0) / 1000).toFixed(1)} s (${db.kind})`);
  await core.close();
}

// ---- 2. the service, and the admin's model change --------------------------------------------------
// The service re-encodes on FCDN_EXECUTION_PROVIDER when given (webgpu on a GPU machine), else the CPU.
const service = await startServiceProcess({ FCDN_DATA_DIR: dataDir, FCDN_MODEL: OLD_MODEL, FCDN_EXECUTION_PROVIDER: process.env.FCDN_EXECUTION_PROVIDER ?? 'cpu', ...(dbUrl ? { DATABASE_URL: dbUrl } : {}) }, 180_000);
// Never leave the service running when this script stops early.
process.once('exit', () => {
  if (service.child.exitCode === null) service.child.kill('SIGKILL');
});
// A service that dies mid-run: show why.
service.child.once('exit', (code) => {
  if (code !== null && code !== 0) console.error(`the service exited with ${code}:\n${service.logs.join('').slice(-4000)}`);
});
const registered = await service.gql('mutation ($p: String!) { registerModel(path: $p) { id name } }', { p: SHIPPED_MODEL });
if (registered.errors) throw new Error(`registerModel: ${JSON.stringify(registered.errors)}`);
const newModel = registered.data.registerModel;
const t1 = performance.now();
const started = await service.gql('mutation ($m: ID!) { reindex(modelId: $m) { id total } }', { m: newModel.id });
if (started.errors) throw new Error(`reindex: ${JSON.stringify(started.errors)}`);
const jobId = started.data.reindex.id;
log(`reindex job ${jobId} to ${newModel.name}: ${started.data.reindex.total} slices`);

const SEARCH = 'query ($id: ID!) { similarCases(input: { caseId: $id, k: 10 }) { model { name } hits { rank } } }';
const searchMs: number[] = [];
let searchErrors = 0;
let job: { status: string; done: number; failed: number; total: number; error: string | null } = { status: 'RUNNING', done: 0, failed: 0, total: 0, error: null };
let lastLog = 0;
while (job.status === 'PENDING' || job.status === 'RUNNING') {
  await new Promise((r) => setTimeout(r, 1000));
  const ts = performance.now();
  try {
    const s = await service.gql(SEARCH, { id: String(firstCaseId + randomInt(Math.random, 0, Math.min(1000, SLICES / 3 - 1))) }, 'reader');
    if (s.errors) throw new Error(JSON.stringify(s.errors));
  } catch (err) {
    searchErrors++;
    log(`search failed: ${err instanceof Error ? `${err.message} ${String(err.cause ?? '')}` : String(err)}`);
  }
  searchMs.push(performance.now() - ts);
  job = (await service.gql('query ($id: ID!) { reindexJob(id: $id) { status done failed total error } }', { id: jobId })).data.reindexJob;
  if (performance.now() - lastLog > 15_000) {
    lastLog = performance.now();
    log(`${job.done} / ${job.total} done (${job.failed} failed), ${((job.done / (performance.now() - t1)) * 1000).toFixed(1)} slices/s`);
  }
}
const seconds = (performance.now() - t1) / 1000;
const active = (await service.gql('{ activeModel { name } }')).data.activeModel.name;
await service.kill('SIGTERM');
fs.rmSync(dataDir, { recursive: true, force: true });

// ---- 3. report ------------------------------------------------------------------------------------------
const result = {
  slices: SLICES,
  database: dbUrl ? 'postgres' : 'pglite',
  model: newModel.name,
  status: job.status,
  done: job.done,
  failed: job.failed,
  seconds: round(seconds),
  slices_per_s: round(job.done / seconds),
  minutes_per_100k: round(((100_000 / (job.done / seconds)) / 60)),
  active_after: active,
  search_during: { requests: searchMs.length, errors: searchErrors, p50_ms: round(pct(searchMs, 0.5)), p95_ms: round(pct(searchMs, 0.95)) },
  load_average: os.loadavg().map(round),
};
log(JSON.stringify(result));
const command = `${dbUrl ? 'DATABASE_URL=... ' : ''}npm run bench:reindex -- --slices ${SLICES}`;
const md = `# Reindex benchmark: a model change over the stored archive

\`${command}\` — ${new Date().toISOString().slice(0, 16)} UTC, ${os.cpus().length} x ${os.cpus()[0]?.model}, load average after the run ${result.load_average.join(' ')}.
${SLICES.toLocaleString('en')} stored slices (3 per case) with PNG images in the filesystem object store and codes under the
test fixture model; the service (\`src/main.ts\`, ${result.database}, in-process worker, default batch size) re-encodes
every slice with \`${newModel.name}\` after \`registerModel\` + \`reindex\`, while a search by stored case runs once a second.

| slices | status | done | failed | seconds | slices/s | minutes per 100k slices | active model after |
|---:|---|---:|---:|---:|---:|---:|---|
| ${SLICES} | ${job.status} | ${job.done} | ${job.failed} | ${result.seconds} | ${result.slices_per_s} | ${result.minutes_per_100k} | ${active} |

Searches during the job: ${searchMs.length}, ${searchErrors} errors, p50 ${result.search_during.p50_ms} ms, p95 ${result.search_during.p95_ms} ms
(answered with the old model until the job finished).
`;
console.log(md);
if (!values['no-doc']) fs.writeFileSync(path.join(PROJECT_ROOT, 'docs/benchmarks/reindex.md'), md);
if (values.json) fs.writeFileSync(values.json, JSON.stringify(result, null, 2));
if (job.status !== 'SUCCEEDED') process.exitCode = 1;
