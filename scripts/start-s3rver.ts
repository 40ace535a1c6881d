/**
 * s3rver (npm) on loopback: a small S3 protocol server for tests and local runs.
 * It speaks enough S3 for the `minio` client (buckets, single-part puts, get, stat,
 * delete, list v2, presigned GET) but CHECKS NO SIGNATURES: its only account has
 * access key 'S3RVER' (any secret works). Use it to test the S3 code path, never as
 * a real object store.
 *
 * As a library: `const s3 = await startS3rver(); ... await s3.close();`
 * As a program (CI, local runs):
 *   node --import tsx scripts/start-s3rver.ts [--port 0] [--dir DIR] [--write-env FILE]
 * listens on 127.0.0.1 (port 0 = a free one), prints the S3_* variables to use,
 * writes them to FILE (when given) once it is listening, and runs until SIGTERM/SIGINT.
 */
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import S3rver from 's3rver';

/** The one key pair s3rver knows (it does not check the secret). */
export const S3RVER_ACCESS_KEY = 'S3RVER';
export const S3RVER_SECRET_KEY = 'S3RVER';

export interface RunningS3rver {
  endpoint: string;
  port: number;
  directory: string;
  accessKey: string;
  secretKey: string;
  close(): Promise<void>;
}

export async function startS3rver(opts: { port?: number; directory?: string } = {}): Promise<RunningS3rver> {
  const ownDir = !opts.directory;
  const directory = opts.directory ?? (await mkdtemp(path.join(os.tmpdir(), 's3rver-')));
  const server = new S3rver({ address: '127.0.0.1', port: opts.port ?? 0, directory, silent: true });
  const { port } = await server.run();
  let closed = false;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    directory,
    accessKey: S3RVER_ACCESS_KEY,
    secretKey: S3RVER_SECRET_KEY,
    async close() {
      if (closed) return;
      closed = true;
      await server.close();
      if (ownDir) await rm(directory, { recursive: true, force: true });
    },
  };
}

async function main(argv: string[]): Promise<void> {
  const arg = (name: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const s3 = await startS3rver({ port: Number(arg('--port') ?? 0), directory: arg('--dir') });
  const env = [`S3_ENDPOINT=${s3.endpoint}`, `S3_ACCESS_KEY=${s3.accessKey}`, `S3_SECRET_KEY=${s3.secretKey}`].join('\n') + '\n';
  const envFile = arg('--write-env');
  if (envFile) {
    // Written whole, then renamed, so a script polling for the file never reads half of it.
    await writeFile(`${envFile}.tmp`, env);
    await rename(`${envFile}.tmp`, envFile);
  }
  process.stdout.write(`s3rver listening (no signature checks), data in ${s3.directory}\n${env}`);
  const stop = () => {
    s3.close().then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
