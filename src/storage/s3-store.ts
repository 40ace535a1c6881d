/**
 * Object store on MinIO or any S3, through the `minio` client. Path-style
 * addressing (what MinIO expects), one bucket, created at open when missing.
 * Puts are single-part: slice images are far below the client's part size
 * (MAX_SINGLE_PUT_BYTES), and a larger body is refused rather than uploaded in parts.
 *
 * Tested against s3rver (npm) on loopback, which speaks enough S3 for this client
 * but checks no signatures (its only account is access key 'S3RVER'): the tests
 * cover the protocol, not authentication. See docs/deploy.md.
 */
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import type { Readable } from 'node:stream';
import { Client } from 'minio';
import { BadInputError, NotFoundError, UnavailableError } from '../errors.ts';
import { assertValidKey, assertValidPrefix, ObjectTooLargeError, type GetOptions, type ObjectStore } from './object-store.ts';

export interface S3ObjectStoreOptions {
  /** Endpoint URL, e.g. `http://minio:9000` or `https://s3.eu-central-1.amazonaws.com`. */
  endPoint: string;
  accessKey: string;
  secretKey: string;
  bucket: string;
  /** Default us-east-1 (what MinIO uses unless configured otherwise). */
  region?: string;
  /**
   * The endpoint as clients reach it, when it differs from endPoint (a compose network's
   * `http://minio:9000` is `http://localhost:9000` outside). Presigned URLs are signed for this
   * host: S3 checks the Host header a client sends against the signed one.
   */
  publicEndPoint?: string;
  /** A connection silent for this long is cut and the call fails as unavailable (default 10 s). */
  timeoutMs?: number;
}

export const DEFAULT_S3_TIMEOUT_MS = 10_000;

/** minio's default part size; bodies up to it go up in one PUT. */
export const MAX_SINGLE_PUT_BYTES = 64 * 1024 * 1024;
/** S3's limit for presigned URLs: 7 days. */
export const MAX_PRESIGN_SECONDS = 7 * 24 * 3600;

const NOT_FOUND_CODES = new Set(['NoSuchKey', 'NotFound', 'NoSuchObject']);

export class S3ObjectStore implements ObjectStore {
  readonly kind = 's3' as const;
  readonly bucket: string;
  readonly endPoint: string;
  /** The endpoint presigned URLs name (publicEndPoint, else endPoint). */
  readonly publicEndPoint: string;
  private readonly client: Client;
  /** Signs presigned URLs for the public endpoint; it makes no requests (the region is given). */
  private readonly presigner: Client;

  private constructor(client: Client, bucket: string, endPoint: string, presigner: Client, publicEndPoint: string) {
    this.client = client;
    this.bucket = bucket;
    this.endPoint = endPoint;
    this.presigner = presigner;
    this.publicEndPoint = publicEndPoint;
  }

  /** Connects and makes sure the bucket exists (creating it when missing). */
  static async open(opts: S3ObjectStoreOptions): Promise<S3ObjectStore> {
    const region = opts.region || 'us-east-1';
    const endpoint = parseEndpoint(opts.endPoint);
    const transportAgent = silentConnectionCutter(endpoint.useSSL, opts.timeoutMs ?? DEFAULT_S3_TIMEOUT_MS);
    const client = new Client({ ...endpoint, accessKey: opts.accessKey, secretKey: opts.secretKey, region, pathStyle: true, transportAgent });
    // Presigning is local computation when the client knows the region: the public host need not be reachable from here.
    const presigner = opts.publicEndPoint
      ? new Client({ ...parseEndpoint(opts.publicEndPoint, 'S3_PUBLIC_URL'), accessKey: opts.accessKey, secretKey: opts.secretKey, region, pathStyle: true })
      : client;
    const store = new S3ObjectStore(client, opts.bucket, opts.endPoint, presigner, opts.publicEndPoint ?? opts.endPoint);
    if (!(await client.bucketExists(opts.bucket))) {
      try {
        await client.makeBucket(opts.bucket, region);
      } catch (err) {
        // Another replica may have created it in the meantime.
        if (!(await client.bucketExists(opts.bucket))) throw err;
      }
    }
    return store;
  }

  async put(key: string, body: Buffer, contentType: string): Promise<void> {
    assertValidKey(key);
    if (body.length > MAX_SINGLE_PUT_BYTES) {
      throw new BadInputError(`object ${key} is ${body.length} bytes; at most ${MAX_SINGLE_PUT_BYTES} are stored`);
    }
    await reachable(this.client.putObject(this.bucket, key, body, body.length, { 'Content-Type': contentType }));
  }

  async get(key: string, options: GetOptions = {}): Promise<Buffer> {
    assertValidKey(key);
    const max = options.maxBytes;
    let stream: Readable;
    try {
      if (max !== undefined) {
        // The size before the body (issue 13, item 5): a presigned PUT may have stored far more than declared.
        const { size } = await reachable(this.client.statObject(this.bucket, key));
        if (size > max) throw new ObjectTooLargeError(key, size, max);
      }
      stream = await reachable(this.client.getObject(this.bucket, key));
    } catch (err) {
      if (isNotFound(err)) throw new NotFoundError(`no object ${key}`);
      throw err;
    }
    return reachable((async () => {
      const chunks: Buffer[] = [];
      let read = 0;
      for await (const chunk of stream) {
        read += (chunk as Buffer).length;
        // Replaced by a larger object between the HEAD and the GET: stop reading.
        if (max !== undefined && read > max) {
          stream.destroy();
          throw new ObjectTooLargeError(key, read, max);
        }
        chunks.push(chunk as Buffer);
      }
      return Buffer.concat(chunks);
    })());
  }

  async delete(key: string): Promise<void> {
    assertValidKey(key);
    try {
      await reachable(this.client.removeObject(this.bucket, key)); // S3 DELETE of a missing key succeeds
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  async exists(key: string): Promise<boolean> {
    assertValidKey(key);
    try {
      await reachable(this.client.statObject(this.bucket, key));
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  async list(prefix: string): Promise<string[]> {
    assertValidPrefix(prefix);
    return reachable((async () => {
      const keys: string[] = [];
      for await (const item of this.client.listObjectsV2(this.bucket, prefix, true)) {
        if (item.name) keys.push(item.name);
      }
      return keys.sort();
    })());
  }

  async presignedGetUrl(key: string, expirySeconds: number): Promise<string> {
    assertValidKey(key);
    if (!Number.isInteger(expirySeconds) || expirySeconds < 1 || expirySeconds > MAX_PRESIGN_SECONDS) {
      throw new BadInputError(`expirySeconds must be an integer from 1 to ${MAX_PRESIGN_SECONDS}`);
    }
    return this.presigner.presignedGetObject(this.bucket, key, expirySeconds);
  }

  async presignedPutUrl(key: string, expirySeconds: number): Promise<string> {
    assertValidKey(key);
    if (!Number.isInteger(expirySeconds) || expirySeconds < 1 || expirySeconds > MAX_PRESIGN_SECONDS) {
      throw new BadInputError(`expirySeconds must be an integer from 1 to ${MAX_PRESIGN_SECONDS}`);
    }
    return this.presigner.presignedPutObject(this.bucket, key, expirySeconds);
  }
}

/** `http(s)://host[:port]` -> minio client options. No path, query or credentials in the URL. */
export function parseEndpoint(endPoint: string, name = 'S3 endpoint'): { endPoint: string; port: number; useSSL: boolean } {
  let url: URL;
  try {
    url = new URL(endPoint);
  } catch {
    throw new Error(`${name} ${JSON.stringify(endPoint)} is not a URL (expected http(s)://host[:port])`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`${name} ${endPoint}: protocol must be http or https`);
  }
  if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.username || url.password) {
    throw new Error(`${name} ${endPoint}: give only http(s)://host[:port] (no path, query or credentials)`);
  }
  const useSSL = url.protocol === 'https:';
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1'); // IPv6 literal without brackets
  return { endPoint: host, port: url.port ? Number(url.port) : useSSL ? 443 : 80, useSSL };
}

/**
 * A keep-alive agent whose sockets are destroyed (ETIMEDOUT) after `timeoutMs` without traffic.
 * The minio client has no request timeout of its own: a store that accepts connections and never
 * answers would otherwise hold an ingest, and the socket, forever.
 */
function silentConnectionCutter(useSSL: boolean, timeoutMs: number): http.Agent {
  const Base = useSSL ? https.Agent : http.Agent;
  const agent = new Base({ keepAlive: true, timeout: timeoutMs });
  const create = agent.createConnection.bind(agent) as (...args: unknown[]) => net.Socket;
  agent.createConnection = ((...args: unknown[]) => {
    const socket = create(...args);
    socket.setTimeout(timeoutMs);
    socket.on('timeout', () => {
      socket.destroy(Object.assign(new Error(`the object store sent nothing for ${timeoutMs} ms`), { code: 'ETIMEDOUT' }));
    });
    return socket;
  }) as typeof agent.createConnection;
  return agent;
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_SOCKET']);

/** A store that cannot be reached is a SERVICE_UNAVAILABLE for the caller, not an internal error. */
async function reachable<T>(op: Promise<T>): Promise<T> {
  try {
    return await op;
  } catch (err) {
    const code = (err as { code?: string } | null)?.code ?? (err as { cause?: { code?: string } } | null)?.cause?.code ?? '';
    if (NETWORK_CODES.has(code)) {
      const why = code === 'ETIMEDOUT' ? 'did not answer in time' : 'is unreachable right now';
      throw new UnavailableError(`the object store ${why} (${code}); retry shortly`, { cause: err });
    }
    throw err;
  }
}

function isNotFound(err: unknown): boolean {
  return NOT_FOUND_CODES.has((err as { code?: string } | null)?.code ?? '');
}
