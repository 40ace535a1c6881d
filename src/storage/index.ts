/**
 * Choosing the object store: S3 (MinIO or any S3) when an endpoint is configured,
 * else files under `<dataDir>/objects` (the embedded default).
 */
import path from 'node:path';
import { FilesystemObjectStore } from './filesystem-store.ts';
import type { ObjectStore } from './object-store.ts';
import { S3ObjectStore, type S3ObjectStoreOptions } from './s3-store.ts';

export { assertValidKey, assertValidPrefix, MAX_KEY_LENGTH, type ObjectStore } from './object-store.ts';
export { FilesystemObjectStore } from './filesystem-store.ts';
export { S3ObjectStore, parseEndpoint, type S3ObjectStoreOptions } from './s3-store.ts';

/** The object store the configuration names (src/config.ts: FCDN_DATA_DIR, S3_*). */
export async function createObjectStore(config: { dataDir: string; s3?: S3ObjectStoreOptions }): Promise<ObjectStore> {
  if (config.s3) {
    if (!config.s3.accessKey || !config.s3.secretKey) {
      throw new Error('S3_ENDPOINT is set but S3_ACCESS_KEY or S3_SECRET_KEY is missing');
    }
    return S3ObjectStore.open(config.s3);
  }
  return new FilesystemObjectStore(path.join(config.dataDir, 'objects'));
}
