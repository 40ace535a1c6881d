/**
 * A round trip through a running stack's HTTP API (the compose file's, in CI: scripts/ci-docker.sh),
 * as a client sees it. Phases, each a separate run:
 *   ingest   /healthz is ok on Postgres and S3; six phantom cases (generated, never patient data) are
 *            ingested, a search by case ranks them, a slice image is read back from the store; the
 *            ranking is written to --state
 *   verify   after a restart: the same search gives the same ranking (data kept), images still load
 *   reindex  an admin starts reindex(); a worker (the compose file's worker container: the API's
 *            in-process worker is off there) takes it to SUCCEEDED over every slice; search unchanged
 * Usage: node --import tsx scripts/compose-smoke.ts PHASE --url http://127.0.0.1:4000 --state FILE
 * Keys from FCDN_API_KEYS (role:key,...), as the stack was given them.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { phantomSlices } from '../fixtures/phantom-cases.ts';

const argv = process.argv.slice(2);
const phase = argv[0];
const arg = (name: string): string => {
  const i = argv.indexOf(name);
  if (i < 0 || !argv[i + 1]) throw new Error(`missing ${name}`);
  return argv[i + 1];
};
const url = arg('--url').replace(/\/$/, '');
const stateFile = arg('--state');
const keys = Object.fromEntries((process.env.FCDN_API_KEYS ?? '').split(',').filter(Boolean).map((p) => p.split(':') as [string, string]));
for (const role of ['reader', 'writer', 'admin']) assert.ok(keys[role], `FCDN_API_KEYS has no ${role} key`);

const CASES = [
  { externalId: 'compose-0', patientKey: 'PSEUDO-C1', diameterPx: 8, texture: 'solid' },
  { externalId: 'compose-1', patientKey: 'PSEUDO-C1', diameterPx: 24, texture: 'solid', lobulation: 0.3 },
  { externalId: 'compose-2', patientKey: 'PSEUDO-C2', diameterPx: 14, texture: 'ground-glass' },
  { externalId: 'compose-3', patientKey: 'PSEUDO-C2', diameterPx: 22, texture: 'part-solid', lobulation: 0.2 },
  { externalId: 'compose-4', patientKey: 'PSEUDO-C3', diameterPx: 10, texture: 'solid' },
  { externalId: 'compose-5', patientKey: 'PSEUDO-C3', diameterPx: 26, texture: 'solid', lobulation: 0.35 },
] as const;

async function gql(query: string, variables: Record<string, unknown>, role: string) {
  const res = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${keys[role]}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await res.json()) as { data?: any; errors?: unknown[] };
  assert.equal(body.errors, undefined, `${query.slice(0, 60)}...: ${JSON.stringify(body.errors)}`);
  return body.data;
}

interface State {
  caseIds: string[];
  ranking: string[];
  slices: number;
}

const SEARCH = `query ($input: SimilarCasesInput!) { similarCases(input: $input) { hits { jointDistance case { externalId slices { imageUrl } } } } }`;

/** The ranking for a search by the first case, as "externalId:joint", and one image URL per hit. */
async function ranking(caseId: string): Promise<{ ranking: string[]; imageUrls: string[] }> {
  const data = await gql(SEARCH, { input: { caseId, k: 10, excludeSamePatient: false } }, 'reader');
  const hits = data.similarCases.hits as { jointDistance: number; case: { externalId: string; slices: { imageUrl: string }[] } }[];
  return { ranking: hits.map((h) => `${h.case.externalId}:${h.jointDistance}`), imageUrls: hits.map((h) => h.case.slices[0].imageUrl) };
}

async function imagesLoad(imageUrls: string[]): Promise<void> {
  for (const u of imageUrls) {
    const res = await fetch(new URL(u, url));
    const bytes = Buffer.from(await res.arrayBuffer());
    assert.equal(res.status, 200, `GET ${u}: ${res.status}`);
    assert.equal(bytes.subarray(1, 4).toString('latin1'), 'PNG', `GET ${u} is not a PNG`);
  }
}

async function health(): Promise<Record<string, string>> {
  const res = await fetch(`${url}/healthz`);
  const body = (await res.json()) as Record<string, string>;
  assert.equal(res.status, 200, JSON.stringify(body));
  return body;
}

if (phase === 'ingest') {
  const h = await health();
  assert.equal(h.database, 'postgres', `healthz: ${JSON.stringify(h)}`);
  assert.equal(h.objectStore, 's3', `healthz: ${JSON.stringify(h)}`);
  console.log(`healthz: ${JSON.stringify(h)}`);
  const caseIds: string[] = [];
  for (const [i, c] of CASES.entries()) {
    const images = phantomSlices({ seed: 900 + i, diameterPx: c.diameterPx, texture: c.texture, lobulation: 'lobulation' in c ? c.lobulation : 0 });
    const data = await gql(`mutation ($input: IngestCaseInput!) { ingestCase(input: $input) { id } }`, { input: { externalId: c.externalId, patientKey: c.patientKey, images } }, 'writer');
    caseIds.push(data.ingestCase.id);
  }
  const r = await ranking(caseIds[0]);
  // Every other case (the query case itself is never a hit), its own patient's included here.
  assert.equal(r.ranking.length, CASES.length - 1, `search found ${r.ranking.length} of ${CASES.length - 1} other cases`);
  assert.ok(r.ranking.some((h) => h.startsWith('compose-1:')), `the same patient's other case is missing: ${r.ranking.join(' ')}`);
  const joints = r.ranking.map((h) => Number(h.split(':')[1]));
  assert.deepEqual(joints, [...joints].sort((x, y) => x - y), `not ranked by Joint distance: ${r.ranking.join(' ')}`);
  await imagesLoad(r.imageUrls);
  fs.writeFileSync(stateFile, JSON.stringify({ caseIds, ranking: r.ranking, slices: CASES.length * 3 } satisfies State));
  console.log(`ingested ${CASES.length} cases; search by compose-0: ${r.ranking.join(' ')}; ${r.imageUrls.length} images read back`);
} else if (phase === 'verify') {
  const state = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as State;
  await health();
  const r = await ranking(state.caseIds[0]);
  assert.deepEqual(r.ranking, state.ranking, 'the ranking changed across the restart');
  await imagesLoad(r.imageUrls);
  console.log(`after restart: the same ranking (${r.ranking.length} hits) and ${r.imageUrls.length} images`);
} else if (phase === 'reindex') {
  const state = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as State;
  const started = await gql(`mutation { reindex { id status total } }`, {}, 'admin');
  const id = started.reindex.id as string;
  const deadline = Date.now() + 180_000;
  let job: { status: string; total: number; done: number; failed: number; error: string | null };
  for (;;) {
    job = (await gql(`query ($id: ID!) { reindexJob(id: $id) { status total done failed error } }`, { id }, 'admin')).reindexJob;
    if (!['QUEUED', 'RUNNING'].includes(job.status) || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  assert.equal(job.status, 'SUCCEEDED', `reindex job ${id}: ${JSON.stringify(job)}`);
  assert.equal(job.done, state.slices, `reindex did ${job.done} of ${state.slices} slices`);
  assert.equal(job.failed, 0);
  const r = await ranking(state.caseIds[0]);
  assert.deepEqual(r.ranking, state.ranking, 'the ranking changed after the reindex with the same model');
  console.log(`reindex job ${id}: ${job.status}, ${job.done}/${job.total} slices; search unchanged`);
} else {
  console.error('usage: compose-smoke.ts ingest|verify|reindex --url URL --state FILE');
  process.exit(2);
}
