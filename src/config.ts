/**
 * The service's configuration, read once from the environment at start (PRODUCT.md, "Configuration"),
 * and the one home of every default: the layers below take their settings as arguments.
 * Nothing else in src/ reads process.env.
 */
import path from 'node:path';
import { ROLES, type ApiKey, type Role } from './auth/api-keys.ts';
import { DEFAULT_POSTGRES_TIMEOUTS, type PostgresTimeouts } from './db/database.ts';
import { DEFAULT_SLICE_WINDOW } from './domain/joint-distance.ts';
import { ConfigError } from './errors.ts';
import { EXECUTION_PROVIDER_SETTINGS, type ExecutionProviderSetting } from './inference/types.ts';
import type { DicomwebAuth, DicomwebSettings } from './pacs/dicomweb-client.ts';
import { PROJECT_ROOT } from './paths.ts';
import { SEARCH_METHODS, type SearchMethodSetting } from './repositories/search.repository.ts';
import { checkViewerUrlTemplate } from './services/viewer-links.ts';
import { DEFAULT_S3_TIMEOUT_MS, type S3ObjectStoreOptions } from './storage/s3-store.ts';

export { ConfigError };

/**
 * S3_*: endPoint (S3_ENDPOINT), keys, bucket, region; publicEndPoint (S3_PUBLIC_URL): the endpoint
 * as clients outside the service's network reach it (compose: http://localhost:9000, while the
 * service talks to http://minio:9000), named by presigned upload URLs; timeoutMs (S3_TIMEOUT_MS):
 * a connection to the store silent for this long is cut (the call is SERVICE_UNAVAILABLE).
 */
export type S3Config = S3ObjectStoreOptions & { timeoutMs: number };

export interface AppConfig {
  port: number;
  /** Unset: the embedded PGlite database in dataDir. */
  databaseUrl?: string;
  /**
   * FCDN_READ_DATABASE_URL (one URL or a comma-separated list): streaming replicas of DATABASE_URL
   * that searches, listings and image reads may use (src/repositories/read-session.ts); a replica
   * that goes away is probed every probeEveryMs and its reads go to the primary meanwhile.
   */
  readNodes: { urls: string[]; probeEveryMs: number };
  /** Postgres: how long to wait for a connection, and for a silent one (src/db/database.ts). */
  databaseTimeouts: PostgresTimeouts;
  dataDir: string;
  /** Unset: images are stored under dataDir/objects. */
  s3?: S3Config;
  modelPath: string;
  executionProvider: ExecutionProviderSetting;
  /** onnxruntime intra-op threads of the inference thread (FCDN_INFERENCE_THREADS). */
  inferenceThreads: number;
  /** Uploaded slices are decoded on worker threads with a deadline (src/imaging/slice-preparer.ts). */
  decoding: {
    threads: number;
    timeoutMs: number;
  };
  /** Empty: the service makes an admin key in dataDir (src/auth/api-keys.ts); it never runs open. */
  apiKeys: ApiKey[];
  /** Largest accepted HTTP body; base64 images make requests large. */
  maxRequestBytes: number;
  /** Secret for signed image and upload URLs (src/auth/url-secret.ts); required with configured API keys, else made in dataDir. */
  urlSecret?: string;
  /** Absolute base for imageUrl; default taken from the request's Host. */
  publicUrl?: string;
  /** The PACS over DICOMweb (docs/pacs.md): FCDN_DICOMWEB_*; unset when FCDN_DICOMWEB_URL is. */
  dicomweb?: DicomwebSettings;
  /** FCDN_PATIENT_KEY_SECRET: keyed hash of PatientID for importFromPacs (src/auth/patient-keys.ts). */
  patientKeySecret?: string;
  /** FCDN_VIEWER_URL_TEMPLATE: NoduleCase.viewerUrl (src/services/viewer-links.ts). */
  viewerUrlTemplate?: string;
  logLevel: string;
  /** FCDN_SEARCH_METHOD (see searchMethodSetting). */
  searchMethod: SearchMethodSetting;
  /** FCDN_SLICE_WINDOW: DL/DD use the centre slice and at most this many neighbours each side. */
  sliceWindow: number;
  /** Run the reindex worker inside the API process (the embedded default does). */
  inProcessWorker: boolean;
  /**
   * FCDN_SHUTDOWN_TIMEOUT_MS: after SIGTERM/SIGINT the service closes in order (src/main.ts); if
   * that has not finished after this long (a request waiting on a database that does not answer),
   * it logs what was still open and exits with status 1.
   */
  shutdownTimeoutMs: number;
  /** GraphQL introspection (schema queries); default on, off when NODE_ENV=production. */
  introspection: boolean;
  /** Large uploads (createSliceUpload): URL lifetime, largest object, sweep interval of expired ones. */
  uploads: {
    ttlSeconds: number;
    maxBytes: number;
    sweepIntervalMs: number;
  };
  /** The deletion outbox (src/services/object-janitor.ts). */
  objectJanitor: {
    /** Images of an ingest that has not committed after this long are removed as orphans. */
    uploadGraceMs: number;
    /** How often pending deletions are retried. */
    pollMs: number;
    batchSize: number;
  };
  /** How often the search block upkeep loop runs (src/services/search-block-upkeep.ts); not an environment setting. */
  searchBlockUpkeepMs: number;
  reindex: {
    batchSize: number;
    /** Pause between batches, to leave CPU to searches on small machines. */
    batchDelayMs: number;
    /** A RUNNING job whose worker has not reported for this long is taken over (Postgres). */
    staleAfterMs: number;
  };
}

export const SHIPPED_MODEL = path.join(PROJECT_ROOT, 'models', 'fcdn-v3.onnx');

function searchMethodSetting(env: NodeJS.ProcessEnv): SearchMethodSetting {
  const value = (env.FCDN_SEARCH_METHOD || 'auto') as SearchMethodSetting;
  if (!SEARCH_METHODS.includes(value)) throw new ConfigError(`FCDN_SEARCH_METHOD must be auto, naive or blocks, got "${value}"`);
  return value;
}

/** Offsets are limited to +-1000 (src/services/slice-input.ts), so a wider window means nothing more. */
const MAX_SLICE_WINDOW = 1000;

function sliceWindowSetting(env: NodeJS.ProcessEnv): number {
  const n = integer('FCDN_SLICE_WINDOW', env.FCDN_SLICE_WINDOW, DEFAULT_SLICE_WINDOW, 0);
  if (n > MAX_SLICE_WINDOW) throw new ConfigError(`FCDN_SLICE_WINDOW must be at most ${MAX_SLICE_WINDOW}, got "${n}"`);
  return n;
}

export function parseApiKeys(value: string | undefined): ApiKey[] {
  if (!value?.trim()) return [];
  return value.split(',').map((pair) => {
    const at = pair.indexOf(':');
    const role = pair.slice(0, at).trim() as Role;
    const key = pair.slice(at + 1).trim();
    if (at < 0 || !ROLES.includes(role) || key.length < 8) {
      throw new ConfigError(`FCDN_API_KEYS: "${pair.slice(0, 12)}..." is not a role:key pair (roles reader, writer, admin; keys of 8+ characters)`);
    }
    return { role, key };
  });
}

/**
 * FCDN_DICOMWEB_URL (the DICOMweb root), auth: FCDN_DICOMWEB_USER + FCDN_DICOMWEB_PASSWORD (basic)
 * or FCDN_DICOMWEB_TOKEN (bearer), FCDN_DICOMWEB_TIMEOUT_MS per request, FCDN_DICOMWEB_CONCURRENCY
 * requests in flight; WADO-RS answers are bounded by FCDN_MAX_UPLOAD_BYTES, as uploads are.
 */
function dicomwebSetting(env: NodeJS.ProcessEnv, maxInstanceBytes: number): DicomwebSettings | undefined {
  const url = env.FCDN_DICOMWEB_URL?.trim();
  if (!url) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`FCDN_DICOMWEB_URL is not an absolute URL: "${url.slice(0, 100)}"`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new ConfigError('FCDN_DICOMWEB_URL must be an http(s) URL');
  if (parsed.username || parsed.password) throw new ConfigError('FCDN_DICOMWEB_URL must not carry credentials; use FCDN_DICOMWEB_USER and FCDN_DICOMWEB_PASSWORD');
  const user = env.FCDN_DICOMWEB_USER || undefined;
  const password = env.FCDN_DICOMWEB_PASSWORD || undefined;
  const token = env.FCDN_DICOMWEB_TOKEN || undefined;
  if (token && (user || password)) throw new ConfigError('give either FCDN_DICOMWEB_TOKEN (bearer) or FCDN_DICOMWEB_USER/FCDN_DICOMWEB_PASSWORD (basic), not both');
  if (Boolean(user) !== Boolean(password)) throw new ConfigError('FCDN_DICOMWEB_USER and FCDN_DICOMWEB_PASSWORD go together (HTTP basic auth)');
  const auth: DicomwebAuth = token ? { kind: 'bearer', token } : user ? { kind: 'basic', username: user, password: password! } : { kind: 'none' };
  return {
    url,
    auth,
    timeoutMs: integer('FCDN_DICOMWEB_TIMEOUT_MS', env.FCDN_DICOMWEB_TIMEOUT_MS, 10_000),
    concurrency: integer('FCDN_DICOMWEB_CONCURRENCY', env.FCDN_DICOMWEB_CONCURRENCY, 4),
    maxInstanceBytes,
  };
}

function readDatabaseUrls(env: NodeJS.ProcessEnv): string[] {
  const urls = (env.FCDN_READ_DATABASE_URL ?? '').split(',').map((u) => u.trim()).filter(Boolean);
  if (urls.length > 0 && !env.DATABASE_URL) throw new ConfigError('FCDN_READ_DATABASE_URL needs DATABASE_URL (read replicas of a Postgres primary; the embedded PGlite has none)');
  for (const url of urls) {
    let protocol = '';
    try {
      protocol = new URL(url).protocol;
    } catch {
      /* reported below */
    }
    if (protocol !== 'postgres:' && protocol !== 'postgresql:') throw new ConfigError(`FCDN_READ_DATABASE_URL: "${url.replace(/\/\/[^@/]*@/, '//')}" is not a postgres:// URL`);
  }
  return urls;
}

function integer(name: string, value: string | undefined, fallback: number, min = 1): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new ConfigError(`${name} must be an integer of at least ${min}, got "${value}"`);
  return n;
}

function boolean(name: string, value: string | undefined, fallback: boolean): boolean {
  if (value === undefined || value === '') return fallback;
  if (value === 'true' || value === 'false') return value === 'true';
  throw new ConfigError(`${name} must be true or false, got "${value}"`);
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): AppConfig {
  const provider = (env.FCDN_EXECUTION_PROVIDER ?? 'auto') as ExecutionProviderSetting;
  if (!(EXECUTION_PROVIDER_SETTINGS as readonly string[]).includes(provider)) {
    throw new ConfigError(`FCDN_EXECUTION_PROVIDER must be one of ${EXECUTION_PROVIDER_SETTINGS.join(', ')}, got "${provider}"`);
  }
  const s3: S3Config | undefined = env.S3_ENDPOINT
    ? {
        endPoint: env.S3_ENDPOINT,
        accessKey: env.S3_ACCESS_KEY ?? '',
        secretKey: env.S3_SECRET_KEY ?? '',
        bucket: env.S3_BUCKET ?? 'fcdn-slices',
        region: env.S3_REGION,
        publicEndPoint: env.S3_PUBLIC_URL || undefined,
        timeoutMs: integer('S3_TIMEOUT_MS', env.S3_TIMEOUT_MS, DEFAULT_S3_TIMEOUT_MS),
      }
    : undefined;
  const maxUploadBytes = integer('FCDN_MAX_UPLOAD_BYTES', env.FCDN_MAX_UPLOAD_BYTES, 64 * 1024 * 1024);
  return {
    port: integer('PORT', env.PORT, 4000, 0),
    databaseUrl: env.DATABASE_URL || undefined,
    readNodes: { urls: readDatabaseUrls(env), probeEveryMs: 2_000 },
    databaseTimeouts: {
      connectMs: integer('FCDN_DB_CONNECT_TIMEOUT_MS', env.FCDN_DB_CONNECT_TIMEOUT_MS, DEFAULT_POSTGRES_TIMEOUTS.connectMs),
      silenceMs: integer('FCDN_DB_SILENCE_TIMEOUT_MS', env.FCDN_DB_SILENCE_TIMEOUT_MS, DEFAULT_POSTGRES_TIMEOUTS.silenceMs, 0),
    },
    dataDir: path.resolve(env.FCDN_DATA_DIR ?? './data'),
    s3,
    modelPath: path.resolve(env.FCDN_MODEL ?? SHIPPED_MODEL),
    executionProvider: provider,
    inferenceThreads: integer('FCDN_INFERENCE_THREADS', env.FCDN_INFERENCE_THREADS, 1, 1),
    decoding: {
      threads: integer('FCDN_DECODE_THREADS', env.FCDN_DECODE_THREADS, 2),
      timeoutMs: integer('FCDN_DECODE_TIMEOUT_MS', env.FCDN_DECODE_TIMEOUT_MS, 3000),
    },
    apiKeys: parseApiKeys(env.FCDN_API_KEYS),
    maxRequestBytes: integer('FCDN_MAX_REQUEST_BYTES', env.FCDN_MAX_REQUEST_BYTES, 32 * 1024 * 1024),
    urlSecret: env.FCDN_URL_SECRET || undefined,
    publicUrl: env.FCDN_PUBLIC_URL || undefined,
    dicomweb: dicomwebSetting(env, maxUploadBytes),
    patientKeySecret: env.FCDN_PATIENT_KEY_SECRET || undefined,
    viewerUrlTemplate: env.FCDN_VIEWER_URL_TEMPLATE ? checkViewerUrlTemplate(env.FCDN_VIEWER_URL_TEMPLATE) : undefined,
    logLevel: env.LOG_LEVEL ?? 'info',
    searchMethod: searchMethodSetting(env),
    sliceWindow: sliceWindowSetting(env),
    inProcessWorker: (env.FCDN_IN_PROCESS_WORKER ?? 'true') !== 'false',
    shutdownTimeoutMs: integer('FCDN_SHUTDOWN_TIMEOUT_MS', env.FCDN_SHUTDOWN_TIMEOUT_MS, 10_000),
    introspection: boolean('FCDN_INTROSPECTION', env.FCDN_INTROSPECTION, env.NODE_ENV !== 'production'),
    uploads: {
      ttlSeconds: integer('FCDN_UPLOAD_TTL_SECONDS', env.FCDN_UPLOAD_TTL_SECONDS, 3600),
      maxBytes: maxUploadBytes,
      sweepIntervalMs: integer('FCDN_UPLOAD_SWEEP_MS', env.FCDN_UPLOAD_SWEEP_MS, 60_000),
    },
    objectJanitor: {
      uploadGraceMs: integer('FCDN_ORPHAN_GRACE_MS', env.FCDN_ORPHAN_GRACE_MS, 600_000),
      pollMs: integer('FCDN_JANITOR_POLL_MS', env.FCDN_JANITOR_POLL_MS, 5_000),
      batchSize: 100,
    },
    searchBlockUpkeepMs: 5_000,
    reindex: {
      batchSize: integer('FCDN_REINDEX_BATCH_SIZE', env.FCDN_REINDEX_BATCH_SIZE, 64),
      batchDelayMs: integer('FCDN_REINDEX_BATCH_DELAY_MS', env.FCDN_REINDEX_BATCH_DELAY_MS, 0, 0),
      staleAfterMs: integer('FCDN_REINDEX_STALE_MS', env.FCDN_REINDEX_STALE_MS, 30_000),
    },
  };
}
