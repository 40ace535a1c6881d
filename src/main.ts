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
  const shutdown = () => {
    service.log.info('shutting down');
    server.close();
    service.close().then(() => process.exit(0), () => process.exit(1));
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
} catch (err) {
  console.error(`fcdn: the service could not start: ${(err as Error).message}`);
  process.exit(1);
}
