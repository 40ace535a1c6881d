/** Prometheus metrics served at GET /metrics. */
import client from 'prom-client';
import type { PoolStats } from '../db/database.ts';

export interface MetricSources {
  poolStats?: () => PoolStats;
  /** Slices waiting for a decoding thread, by kind (SlicePreparer.waiting). */
  decodeWaiting?: () => { requests: number; background: number };
}

export function createMetrics(opts: MetricSources = {}) {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  const { poolStats, decodeWaiting } = opts;
  if (decodeWaiting) {
    new client.Gauge({
      name: 'fcdn_slice_decode_waiting',
      help: 'Slices waiting for a decoding thread: of requests (searches, ingests), and of background work (reindex), which waits behind every request',
      labelNames: ['kind'],
      registers: [registry],
      collect() {
        const w = decodeWaiting();
        this.set({ kind: 'request' }, w.requests);
        this.set({ kind: 'background' }, w.background);
      },
    });
  }
  if (poolStats) {
    new client.Gauge({
      name: 'fcdn_db_pool_connections',
      help: 'Postgres pool connections: total open, idle, and requests waiting for one (a leak shows as total stuck at the pool size with idle 0)',
      labelNames: ['state'],
      registers: [registry],
      collect() {
        const s = poolStats();
        this.set({ state: 'total' }, s.total);
        this.set({ state: 'idle' }, s.idle);
        this.set({ state: 'waiting' }, s.waiting);
      },
    });
  }
  return {
    registry,
    searchSeconds: new client.Histogram({
      name: 'fcdn_search_duration_seconds',
      help: 'Server-side time of similarCases, inference included (query_kind CASE, IMAGES, or PACS: the PACS fetch included)',
      labelNames: ['query_kind'],
      buckets: [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5],
      registers: [registry],
    }),
    searchStageSeconds: new client.Histogram({
      name: 'fcdn_search_stage_seconds',
      help: 'Where the time of similarCases goes: fetch (slices from the PACS over DICOMweb), decode, encode (the model), search (SQL)',
      labelNames: ['stage'],
      buckets: [0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10],
      registers: [registry],
    }),
    graphqlErrors: new client.Counter({
      name: 'fcdn_graphql_errors_total',
      help: 'GraphQL errors returned, by extensions.code',
      labelNames: ['code'],
      registers: [registry],
    }),
    inferenceSeconds: new client.Histogram({
      name: 'fcdn_inference_duration_seconds',
      help: 'ONNX Runtime time of one encoder run (a batch of patches: search queries, ingests, reindex)',
      buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2],
      registers: [registry],
    }),
    inferencePatches: new client.Counter({
      name: 'fcdn_inference_patches_total',
      help: 'Patches encoded by the model',
      registers: [registry],
    }),
    ingestCases: new client.Counter({
      name: 'fcdn_ingest_cases_total',
      help: 'ingestCase calls by outcome: stored, rejected (bad input) or failed',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    ingestSlices: new client.Counter({
      name: 'fcdn_ingest_slices_total',
      help: 'Slices stored by successful ingests',
      registers: [registry],
    }),
    decodeAbandoned: new client.Counter({
      name: 'fcdn_slice_decode_abandoned_total',
      help: 'Uploaded slices whose decoding was stopped (past FCDN_DECODE_TIMEOUT_MS, or out of memory) and refused',
      labelNames: ['reason'],
      registers: [registry],
    }),
    readNodeUp: new client.Gauge({
      name: 'fcdn_read_node_up',
      help: 'Read replicas (FCDN_READ_DATABASE_URL): 1 while reads go to it, 0 while it is left out after a lost or refused connection (its reads go to the primary)',
      labelNames: ['node'],
      registers: [registry],
    }),
    readNodeFallbacks: new client.Counter({
      name: 'fcdn_read_node_fallbacks_total',
      help: 'Times a read replica went away and its reads fell back to the primary',
      labelNames: ['node'],
      registers: [registry],
    }),
    reads: new client.Counter({
      name: 'fcdn_db_reads_total',
      help: 'Steps of read-only work (a search snapshot, a listing or loader batch, an image lookup) by the node that ran them: primary or a replica',
      labelNames: ['node'],
      registers: [registry],
    }),
    reindexDone: new client.Gauge({
      name: 'fcdn_reindex_slices_done',
      help: 'Slices re-encoded by the running reindex job',
      labelNames: ['job_id'],
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
