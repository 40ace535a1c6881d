/**
 * Choosing the object store: S3 (MinIO or any S3) when an endpoint is configured,
 * else files under `<dataDir>/objects` (the embedded default).
 */
import path from 'node:path';
import { FilesystemObjectStore } from './filesystem-store.ts';
import type { ObjectStore } from './object-store.ts';
import { S3ObjectStore } from './s3-store.ts';

export { assertValidKey, assertValidPrefix, MAX_KEY_LENGTH, type ObjectStore } from './object-store.ts';
export { FilesystemObjectStore } from './filesystem-store.ts';
export { S3ObjectStore, parseEndpoint, type S3ObjectStoreOptions } from './s3-store.ts';

export const DEFAULT_S3_BUCKET = 'fcdn-slices';

export interface ObjectStoreConfig {
  /** FCDN_DATA_DIR; the filesystem store lives in `<dataDir>/objects`. */
  dataDir: string;
  /** S3_ENDPOINT; when set (non-empty), S3 is used. */
  s3Endpoint?: string;
  s3AccessKey?: string;
  s3SecretKey?: string;
  /** S3_BUCKET, default DEFAULT_S3_BUCKET. */
  s3Bucket?: string;
  /** S3_REGION, default us-east-1. */
  s3Region?: string;
}

/** The object-store part of the configuration, from the environment (PRODUCT.md 'Configuration'). */
export function objectStoreConfigFromEnv(env: NodeJS.ProcessEnv = process.env): ObjectStoreConfig {
  return {
    dataDir: env.FCDN_DATA_DIR || './data',
    s3Endpoint: env.S3_ENDPOINT || undefined,
    s3AccessKey: env.S3_ACCESS_KEY,
    s3SecretKey: env.S3_SECRET_KEY,
    s3Bucket: env.S3_BUCKET || undefined,
    s3Region: env.S3_REGION || undefined,
  };
}

export async function createObjectStore(config: ObjectStoreConfig): Promise<ObjectStore> {
  if (config.s3Endpoint) {
    if (!config.s3AccessKey || !config.s3SecretKey) {
      throw new Error('S3_ENDPOINT is set but S3_ACCESS_KEY or S3_SECRET_KEY is missing');
    }
    return S3ObjectStore.open({
      endPoint: config.s3Endpoint,
      accessKey: config.s3AccessKey,
      secretKey: config.s3SecretKey,
      bucket: config.s3Bucket || DEFAULT_S3_BUCKET,
      region: config.s3Region,
    });
  }
  return new FilesystemObjectStore(path.join(config.dataDir, 'objects'));
}
