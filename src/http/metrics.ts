/** Prometheus metrics served at GET /metrics. */
import client from 'prom-client';

export function createMetrics() {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  return {
    registry,
    searchSeconds: new client.Histogram({
      name: 'fcdn_search_duration_seconds',
      help: 'Server-side time of similarCases, inference included',
      labelNames: ['query_kind'],
      buckets: [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5],
      registers: [registry],
    }),
    graphqlErrors: new client.Counter({
      name: 'fcdn_graphql_errors_total',
      help: 'GraphQL errors returned, by extensions.code',
      labelNames: ['code'],
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
