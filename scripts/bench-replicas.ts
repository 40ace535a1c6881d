/**
 * `npm run bench:replicas -- [--slices 30000] [--seconds 10] [--concurrency 4] [--rounds 2] [--json FILE] [--no-doc]`
 *
 * Search throughput with 1 and 2 read nodes, in one run (docs/scaling.md). A private PostgreSQL
 * primary and two standbys made with `pg_basebackup -R` on loopback
 * (fixtures/replicated-postgres.ts); N synthetic slices (3 per case, learned-like codes) seeded
 * and their blocks built on the primary, both standbys waited for (replay LSN at the primary's
 * WAL LSN). Then, for each layout (the primary alone; FCDN_READ_DATABASE_URL = standby 1;
 * = standby 1,standby 2), a core built as the service builds it runs searches by stored case
 * (k = 10, random cases) from `--concurrency` closed loops for `--seconds`, after a warm-up;
 * the layouts alternate for `--rounds` rounds so that the machine's drift hits them alike.
 * Reports searches/s and latency per layout and the 2-vs-1 ratio; writes
 * docs/benchmarks/replicas.md (and the JSON). The load generator runs on the same cores.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { loadConfig } from '../src/config.ts';
import { buildCore, type Core } from '../src/core.ts';
import { PROJECT_ROOT } from '../src/paths.ts';
import { startReplicatedPostgres, waitForReplay } from '../fixtures/replicated-postgres.ts';
import { seedSyntheticArchive } from '../fixtures/seed-cases.ts';
import { createTestDatabase } from '../fixtures/test-database.ts';

const { values } = parseArgs({
  options: {
    slices: { type: 'string', default: '30000' },
    seconds: { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '4' },
    rounds: { type: 'string', default: '2' },
    json: { type: 'string' },
    'no-doc': { type: 'boolean', default: false },
  },
});
const SLICES = Number(values.slices);
const SECONDS = Number(values.seconds);
const CONCURRENCY = Number(values.concurrency);
const ROUNDS = Number(values.rounds);
for (const [name, v] of Object.entries({ slices: SLICES, seconds: SECONDS, concurrency: CONCURRENCY, rounds: ROUNDS })) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer`);
}
const log = (m: string) => console.log(`[bench:replicas ${new Date().toISOString().slice(11, 19)}] ${m}`);
const round = (x: number) => Math.round(x * 100) / 100;
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.max(0, Math.ceil(p * xs.length) - 1))] ?? NaN;
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcdn-bench-replicas-'));

log(`starting a primary and 2 standbys (pg_basebackup -R) on loopback`);
const cluster = await startReplicatedPostgres({ standbys: 2 });
const db = await createTestDatabase({ serverUrl: cluster.primary.url() });
const dbName = new URL(db.url!).pathname.slice(1);
const standbyUrls = cluster.standbys.map((s) => s.url(dbName));
const quiet = pino({ level: 'warn' });
const config = (reads: string[]) =>
  loadConfig({ DATABASE_URL: db.url!, FCDN_READ_DATABASE_URL: reads.join(','), FCDN_DATA_DIR: dataDir, FCDN_EXECUTION_PROVIDER: 'cpu', LOG_LEVEL: 'warn' });

const layouts: { name: string; reads: string[] }[] = [
  { name: 'primary only', reads: [] },
  { name: '1 read node', reads: standbyUrls.slice(0, 1) },
  { name: '2 read nodes', reads: standbyUrls },
];
const cores = new Map<string, Core>();
try {
  // ---- 1. the archive on the primary, replayed by both standbys ----------------------------------
  const seeder = await buildCore(config([]), { database: db, log: quiet, urlSecret: 'ephemeral' });
  cores.set('primary only', seeder);
  const modelId = seeder.model!.id;
  let t = performance.now();
  const caseIds = await seedSyntheticArchive(db.raw, modelId, SLICES, 'REPL');
  log(`seeded ${SLICES} slices (${caseIds.length} cases) in ${round((performance.now() - t) / 1000)} s`);
  t = performance.now();
  const built = await seeder.repos.search.blocks.rebuild(modelId);
  await db.raw.exec('VACUUM ANALYZE');
  log(`blocks built on the primary (${built?.cases} cases) in ${round((performance.now() - t) / 1000)} s`);
  for (const url of standbyUrls) log(`standby ${new URL(url).port} replayed the primary's WAL LSN after ${await waitForReplay(db.url!, url, 600_000)} ms`);
  for (const l of layouts.slice(1)) cores.set(l.name, await buildCore(config(l.reads), { database: db, log: quiet, urlSecret: 'ephemeral', registerModel: false }));

  // ---- 2. closed-loop searches, layouts alternating ---------------------------------------------
  const runFor = async (core: Core, seconds: number) => {
    const latencies: number[] = [];
    let errors = 0;
    const end = performance.now() + seconds * 1000;
    let seed = 1;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (performance.now() < end) {
          seed = (seed * 1103515245 + 12345) % 2 ** 31;
          const caseId = caseIds[seed % caseIds.length]!;
          const started = performance.now();
          try {
            await core.services.search.similarCases({ caseId, k: 10 });
            latencies.push(performance.now() - started);
          } catch (err) {
            if (errors++ === 0) log(`search failed: ${(err as Error).message}`);
          }
        }
      }),
    );
    return { latencies, errors };
  };
  const totals = new Map(layouts.map((l) => [l.name, { searches: 0, seconds: 0, errors: 0, latencies: [] as number[], perRound: [] as number[] }]));
  for (const l of layouts) {
    // Warm-up: every pooled backend copies the blocks into its own cache on its first search.
    await runFor(cores.get(l.name)!, 3);
  }
  for (let r = 1; r <= ROUNDS; r++) {
    for (const l of r % 2 ? layouts : [...layouts].reverse()) {
      const { latencies, errors } = await runFor(cores.get(l.name)!, SECONDS);
      const tot = totals.get(l.name)!;
      tot.searches += latencies.length;
      tot.seconds += SECONDS;
      tot.errors += errors;
      tot.latencies.push(...latencies);
      tot.perRound.push(round(latencies.length / SECONDS));
      log(`round ${r}, ${l.name}: ${round(latencies.length / SECONDS)} searches/s, p50 ${round(pct(latencies, 0.5))} ms, ${errors} errors`);
    }
  }

  // ---- 3. report ------------------------------------------------------------------------------------------
  const rows = layouts.map((l) => {
    const tot = totals.get(l.name)!;
    return { layout: l.name, searches_per_s: round(tot.searches / tot.seconds), per_round: tot.perRound, p50_ms: round(pct(tot.latencies, 0.5)), p95_ms: round(pct(tot.latencies, 0.95)), errors: tot.errors };
  });
  const perS = (name: string) => rows.find((r) => r.layout === name)!.searches_per_s;
  const result = {
    slices: SLICES,
    cases: caseIds.length,
    seconds_per_round: SECONDS,
    rounds: ROUNDS,
    concurrency: CONCURRENCY,
    rows,
    ratio_2_vs_1: round(perS('2 read nodes') / perS('1 read node')),
    cores: os.cpus().length,
    cpu: os.cpus()[0]?.model,
    load_average: os.loadavg().map(round),
  };
  log(JSON.stringify(result));
  const command = `npm run bench:replicas -- --slices ${SLICES} --seconds ${SECONDS} --concurrency ${CONCURRENCY} --rounds ${ROUNDS}`;
  const md = `# Read replicas: search throughput with 1 and 2 read nodes

\`${command}\` — ${new Date().toISOString().slice(0, 16)} UTC, ${result.cores} x ${result.cpu}, load average after the run ${result.load_average.join(' ')}.
**All of it on the same ${result.cores} CPU cores, shared with other engineers' work:** the primary, both standbys (PostgreSQL
15, streaming replication on loopback, made with \`pg_basebackup -R\`), and the load generator (this process: the
service's own \`buildCore\` and \`SearchService\`, no HTTP). ${SLICES.toLocaleString('en')} synthetic slices
(${caseIds.length.toLocaleString('en')} cases), blocks built on the primary and replayed by both standbys; searches by stored
case, k = 10, ${CONCURRENCY} closed loops, ${SECONDS} s per layout and round, ${ROUNDS} rounds, layouts alternating.

| layout | searches/s | per round | p50 ms | p95 ms | errors |
|---|---:|---|---:|---:|---:|
${rows.map((r) => `| ${r.layout} | ${r.searches_per_s} | ${r.per_round.join(', ')} | ${r.p50_ms} | ${r.p95_ms} | ${r.errors} |`).join('\n')}

**2 read nodes vs 1: ${result.ratio_2_vs_1}x.** On one machine a second standby adds no CPU: the figure shows what
routing over two nodes costs or gains here, not the scaling of separate machines (docs/scaling.md).
`;
  console.log(md);
  if (!values['no-doc']) fs.writeFileSync(path.join(PROJECT_ROOT, 'docs/benchmarks/replicas.md'), md);
  if (values.json) fs.writeFileSync(values.json, JSON.stringify(result, null, 2));
} finally {
  for (const core of [...cores.values()].reverse()) await core.close().catch(() => {});
  await db.close().catch(() => {});
  cluster.destroy();
  fs.rmSync(dataDir, { recursive: true, force: true });
}
