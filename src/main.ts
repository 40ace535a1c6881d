/** `npm start`: the API (and, by default, an in-process reindex worker). */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startService } from './app.ts';
import { loadConfig } from './config.ts';

const config = loadConfig();
try {
  const service = await startService(config);
  service.preparer.warmUp();
  const server = http.createServer(service.handler);
  server.on('error', async (err) => {
    console.error(`fcdn: cannot listen on port ${config.port}: ${err.message}`);
    await service.close().catch(() => {});
    process.exit(1);
  });
  server.listen(config.port, () => {
    const { port } = server.address() as AddressInfo;
    service.log.info({ port, database: service.db.kind }, `listening on http://localhost:${port}/graphql`);
    if (service.adminKey) console.log(`\nAdmin API key (also in ${config.dataDir}/admin-api-key):\n  Authorization: Bearer ${service.adminKey}\n`);
  });
  // Requests in flight, for the log line of a shutdown that overruns its bound.
  const inFlight = new Map<http.ServerResponse, { what: string; since: number }>();
  // Prepended: the app's router rewrites req.url while it dispatches.
  server.prependListener('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    inFlight.set(res, { what: `${req.method} ${(req.url ?? '').split('?')[0]}`, since: Date.now() });
    res.once('close', () => {
      inFlight.delete(res);
      // Shutting down: a keep-alive connection whose last response is done must not hold the drain.
      if (shuttingDown) setImmediate(() => server.closeIdleConnections());
    });
  });
  let shuttingDown = false;
  let draining = false;
  let started = 0;
  const closingStep = () => (draining ? 'the HTTP server (waiting for the requests in flight to finish)' : service.closingStep());
  const shutdown = (signal: NodeJS.Signals) => {
    if (shuttingDown) {
      // A second signal: the operator does not want to wait for the bound.
      service.log.warn({ signal }, `${signal} again while shutting down: exiting now with status 1. Still open: ${stillOpen(closingStep(), inFlight, started).join('; ')}`);
      process.exit(1);
    }
    shuttingDown = true;
    started = Date.now();
    service.log.info({ signal, timeoutMs: config.shutdownTimeoutMs }, 'shutting down');
    // The bound (FCDN_SHUTDOWN_TIMEOUT_MS): whatever still waits (a database that does not
    // answer, a request that does not end) does not keep the process alive past it.
    setTimeout(() => {
      const open = stillOpen(closingStep(), inFlight, started);
      service.log.error({ signal, timeoutMs: config.shutdownTimeoutMs, stillOpen: open }, `shutdown did not finish within ${config.shutdownTimeoutMs} ms (FCDN_SHUTDOWN_TIMEOUT_MS); exiting with status 1. Still open: ${open.join('; ')}`);
      process.exit(1);
    }, config.shutdownTimeoutMs).unref();
    // First the requests in flight finish (an ingest gets its answer), then the service closes.
    draining = true;
    const drained = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    drained.then(() => {
      draining = false;
      return service.close();
    }).then(
      () => {
        service.log.info({ ms: Date.now() - started }, 'shut down');
        process.exit(0);
      },
      (err) => {
        service.log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  // process.on, not once: a second signal is ours too (it exits at once, with the log line) rather
  // than the default action mid-close. (Apollo's own signal handler is off: src/http/graphql.ts.)
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
} catch (err) {
  console.error(`fcdn: the service could not start: ${(err as Error).message}`);
  process.exit(1);
}

/** What a shutdown past its bound was still waiting for, in words. */
function stillOpen(step: string | null, inFlight: Map<http.ServerResponse, { what: string; since: number }>, now0: number): string[] {
  const open: string[] = [];
  open.push(step ? `closing ${step}` : 'closing had not started its next step');
  const now = Date.now();
  const requests = [...inFlight.values()].map(({ what, since }) => `${what} for ${((now - since) / 1000).toFixed(1)} s`);
  if (requests.length) open.push(`${requests.length} HTTP request${requests.length === 1 ? '' : 's'} in flight (${requests.join(', ')})`);
  else open.push('no HTTP request in flight');
  open.push(`${((now - now0) / 1000).toFixed(1)} s since the signal`);
  return open;
}
