/**
 * `npx tsx scripts/analytics-examples.ts [--cases 40] [--searches 60] [--write]`
 *
 * Fills a fresh database (DATABASE_URL's server, else in-memory PGlite; fixtures/test-database.ts)
 * through the running service: phantom cases with labels and reports are ingested and searched
 * over GraphQL with the shipped model, by stored case and by new images. Then it runs the example
 * queries of docs/analytics.md against the analytics views and prints their output; with --write
 * it replaces the examples section of docs/analytics.md (between the two marker comments).
 * On Postgres it also checks the analyst-role recipe inside a transaction it rolls back.
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { SHIPPED_MODEL } from '../src/config.ts';
import { phantomSlices } from '../fixtures/phantom-cases.ts';
import { createTestDatabase } from '../fixtures/test-database.ts';
import { startTestService } from '../fixtures/test-service.ts';
import { mulberry32 } from '../fixtures/random-codes.ts';

const { values } = parseArgs({ options: { cases: { type: 'string', default: '40' }, searches: { type: 'string', default: '60' }, write: { type: 'boolean', default: false } } });
const N_CASES = Number(values.cases);
const N_SEARCHES = Number(values.searches);
const DOC = 'docs/analytics.md';
const START = '<!-- examples:start (scripts/analytics-examples.ts --write) -->';
const END = '<!-- examples:end -->';

const EXAMPLES: { title: string; sql: string }[] = [
  {
    title: 'The latest searches (ids and timings only)',
    sql: `SELECT search_id, searched_at, query_kind, query_case_id, k, model_name,
       round(took_ms::numeric, 1) AS took_ms, result_case_ids
FROM analytics.searches
ORDER BY search_id DESC
LIMIT 5;`,
  },
  {
    title: 'Searches per day and model, with latency percentiles',
    sql: `SELECT search_day, model_name, searches, case_searches, image_searches,
       round(p50_ms::numeric, 1) AS p50_ms, round(p95_ms::numeric, 1) AS p95_ms,
       round(p99_ms::numeric, 1) AS p99_ms, round(max_ms::numeric, 1) AS max_ms
FROM analytics.daily_search_stats
ORDER BY search_day, model_name;`,
  },
  {
    title: 'Latency by query kind (new images include decoding and ONNX inference)',
    sql: `SELECT query_kind, count(*) AS searches,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY took_ms)::numeric, 1) AS p50_ms,
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY took_ms)::numeric, 1) AS p95_ms
FROM analytics.searches
GROUP BY query_kind
ORDER BY query_kind;`,
  },
  {
    title: 'Models: coverage of their codes and the searches they answered',
    sql: `SELECT m.model_name, m.active, m.bits, m.coded_cases, m.coded_slices, m.searches,
       round(s.p50_ms::numeric, 1) AS p50_ms, round(s.p99_ms::numeric, 1) AS p99_ms
FROM analytics.models m
LEFT JOIN analytics.model_search_stats s USING (model_id)
ORDER BY m.model_id;`,
  },
  {
    title: 'Cases by diagnosis',
    sql: `SELECT malignancy_class, count(*) AS cases, round(avg(diameter_mm)::numeric, 1) AS mean_diameter_mm,
       sum(report_count) AS reports, bool_and(coded_by_active_model) AS all_searchable
FROM analytics.cases
GROUP BY malignancy_class
ORDER BY malignancy_class;`,
  },
  {
    title: 'A few cases with their labels, latest report and code models',
    sql: `SELECT case_id, external_id, patient_key, malignancy, malignancy_class, diameter_mm,
       slice_count, latest_impression, code_model_names
FROM analytics.cases
ORDER BY case_id
LIMIT 5;`,
  },
  {
    title: 'Reports (the author column is left out of the view)',
    sql: `SELECT report_id, case_external_id, case_malignancy_class, impression, text_length,
       left(text, 48) AS text_start
FROM analytics.reports
ORDER BY report_id
LIMIT 3;`,
  },
  {
    title: 'How often the top 5 of a stored-case search share the query\'s diagnosis',
    sql: `SELECT query_malignancy_class, count(*) AS hits,
       round(avg((case_malignancy_class = query_malignancy_class)::int), 3) AS same_class_share
FROM analytics.search_hits
WHERE query_kind = 'CASE' AND rank <= 5
GROUP BY query_malignancy_class
ORDER BY query_malignancy_class;`,
  },
  {
    title: 'The cases returned most often',
    sql: `SELECT case_id, external_id, malignancy_class, times_returned, times_rank1,
       round(mean_rank, 2) AS mean_rank
FROM analytics.case_retrieval_stats
ORDER BY times_returned DESC, case_id
LIMIT 5;`,
  },
];

/** Thrown to roll back the analyst-role check. */
class RolledBack extends Error {}

const log = (m: string) => console.error(`[analytics-examples ${new Date().toISOString().slice(11, 19)}] ${m}`);

function cell(v: unknown): string {
  if (v == null) return '';
  if (v instanceof Date) {
    // A date column arrives as midnight UTC; a timestamptz is shown as psql shows it in UTC.
    const iso = v.toISOString();
    return iso.endsWith('T00:00:00.000Z') ? iso.slice(0, 10) : `${iso.slice(0, 10)} ${iso.slice(11, 23)}+00`;
  }
  if (Array.isArray(v)) return `{${v.map(cell).join(',')}}`;
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** psql's aligned format, so the output reads as an analyst would see it. */
function table(rows: Record<string, unknown>[], columns: string[]): string {
  const body = rows.map((r) => columns.map((c) => cell(r[c])));
  const widths = columns.map((c, i) => Math.max(c.length, ...body.map((r) => r[i]!.length)));
  const line = (cells: string[]) => ' ' + cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ').trimEnd();
  return [line(columns), '-' + widths.map((w) => '-'.repeat(w)).join('-+-') + '-', ...body.map(line), `(${rows.length} row${rows.length === 1 ? '' : 's'})`].join('\n');
}

const db = await createTestDatabase();
const svc = await startTestService({ db, env: { FCDN_MODEL: SHIPPED_MODEL } });
try {
  const rand = mulberry32(2026);
  const textures = ['solid', 'part-solid', 'ground-glass'] as const;
  const ids: string[] = [];
  log(`ingesting ${N_CASES} phantom cases (${db.kind}, model ${SHIPPED_MODEL})`);
  for (let i = 0; i < N_CASES; i++) {
    const malignancy = 1 + Math.floor(rand() * 5);
    const diameterPx = 6 + malignancy * 3 + Math.floor(rand() * 6);
    const texture = textures[Math.floor(rand() * textures.length)]!;
    const mm = Math.round(diameterPx * 0.8 * 10) / 10;
    const res = await svc.gql(
      `mutation ($input: IngestCaseInput!) { ingestCase(input: $input) { id } }`,
      {
        input: {
          externalId: `demo-${String(i).padStart(3, '0')}`,
          patientKey: `PSEUDO-${String(Math.floor(i / 2)).padStart(3, '0')}`,
          studyInstanceUid: `1.2.826.0.1.3680043.10.900.${Math.floor(i / 2)}`,
          images: phantomSlices({ seed: 1000 + i, diameterPx, texture, lobulation: malignancy >= 4 ? 0.3 : 0 }),
          malignancy,
          diameterMm: mm,
          report: {
            text: `${texture} nodule of ${mm} mm${malignancy >= 4 ? ' with lobulated margins' : ', smooth margins'}. Phantom case ${i}.`,
            impression: malignancy >= 4 ? 'suspicious' : malignancy === 3 ? 'indeterminate' : 'likely benign',
          },
        },
      },
      'writer',
    );
    if (res.errors) throw new Error(JSON.stringify(res.errors));
    ids.push(res.data.ingestCase.id);
  }

  log(`running ${N_SEARCHES} searches over GraphQL (2 of 3 by stored case, 1 of 3 by new images)`);
  const SEARCH = `query ($input: SimilarCasesInput!) { similarCases(input: $input) { tookMs hits { case { id } } } }`;
  for (let i = 0; i < N_SEARCHES; i++) {
    const input =
      i % 3 === 2
        ? { images: phantomSlices({ seed: 5000 + i, diameterPx: 8 + Math.floor(rand() * 18), slices: 1 + 2 * Math.floor(rand() * 2) }), k: 10 }
        : { caseId: ids[Math.floor(rand() * ids.length)], k: i % 2 ? 5 : 10 };
    const res = await svc.gql(SEARCH, { input }, 'reader');
    if (res.errors) throw new Error(JSON.stringify(res.errors));
  }
  for (let i = 0; i < 100; i++) {
    const [row] = await db.raw.query<{ n: number }>('SELECT count(*)::integer AS n FROM search_log');
    if (row!.n >= N_SEARCHES) break;
    await new Promise((r) => setTimeout(r, 50));
  }

  const out: string[] = [];
  for (const ex of EXAMPLES) {
    const rows = await db.raw.query<Record<string, unknown>>(ex.sql);
    const columns = rows.length ? Object.keys(rows[0]!) : [];
    out.push(`### ${ex.title}\n\n\`\`\`sql\n${ex.sql}\n\`\`\`\n\n\`\`\`\n${table(rows, columns)}\n\`\`\``);
  }

  if (db.kind === 'postgres') {
    // The analyst-role recipe of docs/analytics.md, in a transaction that is rolled back (no role is left behind).
    const report: string[] = [];
    await db.raw
      .transaction(async (tx) => {
        await tx.exec(`CREATE ROLE fcdn_analyst_check NOLOGIN;
          GRANT USAGE ON SCHEMA analytics TO fcdn_analyst_check;
          GRANT SELECT ON ALL TABLES IN SCHEMA analytics TO fcdn_analyst_check;
          SET LOCAL ROLE fcdn_analyst_check`);
        const [n] = await tx.query<{ n: number }>('SELECT count(*)::integer AS n FROM analytics.searches');
        report.push(`as fcdn_analyst_check: SELECT count(*) FROM analytics.searches -> ${n!.n}`);
        await tx.exec('SAVEPOINT s');
        try {
          await tx.query('SELECT count(*) FROM public.patients');
          report.push('as fcdn_analyst_check: SELECT count(*) FROM public.patients -> allowed (unexpected)');
        } catch (err) {
          report.push(`as fcdn_analyst_check: SELECT count(*) FROM public.patients -> ERROR: ${(err as Error).message}`);
          await tx.exec('ROLLBACK TO SAVEPOINT s');
        }
        throw new RolledBack();
      })
      .catch((err) => {
        if (!(err instanceof RolledBack)) throw err;
      });
    out.push(`### The analyst role (checked on Postgres, rolled back)\n\n\`\`\`\n${report.join('\n')}\n\`\`\``);
  }

  const examples = out.join('\n\n');
  const header = `Output of \`${['npx tsx scripts/analytics-examples.ts', `--cases ${N_CASES}`, `--searches ${N_SEARCHES}`, '--write'].join(' ')}\` on ${db.kind === 'postgres' ? `PostgreSQL ${(await db.raw.query<{ v: string }>("SELECT current_setting('server_version') AS v"))[0]!.v} (a fresh database on the server of DATABASE_URL)` : 'PGlite (in memory)'}, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC: ${N_CASES} phantom cases of ${Math.ceil(N_CASES / 2)} patients ingested and ${N_SEARCHES} searches sent over GraphQL with the shipped model on this machine's CPU.`;
  console.log(`${header}\n\n${examples}`);
  if (values.write) {
    const doc = fs.readFileSync(DOC, 'utf8');
    const a = doc.indexOf(START);
    const b = doc.indexOf(END);
    if (a < 0 || b < a) throw new Error(`${DOC} has no ${START} ... ${END} section`);
    fs.writeFileSync(DOC, `${doc.slice(0, a + START.length)}\n${header}\n\n${examples}\n${doc.slice(b)}`);
    log(`wrote ${DOC}`);
  }
} finally {
  await svc.stop();
}
