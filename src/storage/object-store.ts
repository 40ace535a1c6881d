/**
 * The object store of slice images: a flat key -> bytes map with '/'-separated keys
 * (for example `cases/<caseId>/<sliceId>.png`). Two implementations share one
 * contract (test/storage/object-store.test.ts runs the same suite against both):
 *   - FilesystemObjectStore: files under a root folder (the embedded default,
 *     `<FCDN_DATA_DIR>/objects`);
 *   - S3ObjectStore: a bucket on MinIO or any S3 (when `S3_ENDPOINT` is set).
 */
import { BadInputError } from '../errors.ts';

export interface ObjectStore {
  readonly kind: 's3' | 'filesystem';
  /** Stores `body` under `key`, replacing what was there. Readers see the old or the new bytes, never a mix. */
  put(key: string, body: Buffer, contentType: string): Promise<void>;
  /** The bytes under `key`; NotFoundError when there is no such object. */
  get(key: string, options?: GetOptions): Promise<Buffer>;
  /** Removes `key`; removing a missing key is not an error (idempotent). */
  delete(key: string): Promise<void>;
  exists(key: string): Promise<boolean>;
  /** Every key that starts with `prefix` (a plain string prefix, '' for all), sorted ascending. */
  list(prefix: string): Promise<string[]>;
  /** A URL that serves the object without credentials for `expirySeconds` (S3 only). */
  presignedGetUrl?(key: string, expirySeconds: number): Promise<string>;
  /** A URL to which a client PUTs the object without credentials, for `expirySeconds` (S3 only). */
  presignedPutUrl?(key: string, expirySeconds: number): Promise<string>;
}

export interface GetOptions {
  /**
   * An object larger than this is refused (ObjectTooLargeError) without being read whole: its size
   * is asked first (S3 HEAD, a file's stat), and a read stops once past the bound (an object
   * replaced meanwhile). For objects a client wrote (presigned uploads bind no length).
   */
  maxBytes?: number;
}

/** get() with maxBytes met a larger object; `size` is its size as far as it is known. */
export class ObjectTooLargeError extends BadInputError {
  constructor(
    readonly key: string,
    readonly size: number,
    readonly maxBytes: number,
  ) {
    super(`object ${key} holds ${size} bytes, more than the ${maxBytes} expected`);
  }
}

/** Longest key accepted (S3's own limit is 1024 bytes). */
export const MAX_KEY_LENGTH = 512;

// A key is one or more segments separated by single '/'. A segment starts with a
// letter or digit and goes on with letters, digits and . _ - =. So there is no
// '..' or '.' segment, no absolute path, no backslash, no empty segment, no
// hidden file (the filesystem store keeps its temp files as dot-files), and keys
// mean the same on every filesystem and on S3 ('+' is left out: some S3 servers,
// s3rver among them, read it in a path as a space).
const SEGMENT = '[A-Za-z0-9][A-Za-z0-9._=-]*';
const KEY_RE = new RegExp(`^${SEGMENT}(?:/${SEGMENT})*$`);
// A list prefix is a key, a key followed by '/', or a partial segment: the same
// characters, but any segment may be partial or empty at the end.
const PREFIX_RE = /^[A-Za-z0-9._=/-]*$/;

/** Throws BadInputError unless `key` is a valid object key (see KEY_RE). */
export function assertValidKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0) {
    throw new BadInputError('object key must be a non-empty string');
  }
  if (key.length > MAX_KEY_LENGTH) {
    throw new BadInputError(`object key is longer than ${MAX_KEY_LENGTH} characters`);
  }
  if (!KEY_RE.test(key)) {
    throw new BadInputError(
      `invalid object key ${JSON.stringify(key)}: use '/'-separated segments of letters, digits and . _ - = ` +
        `(each starting with a letter or digit; no '..', no leading '/', no backslash)`,
    );
  }
}

/** Throws BadInputError unless `prefix` is a valid list prefix ('' lists everything). */
export function assertValidPrefix(prefix: string): void {
  if (typeof prefix !== 'string' || prefix.length > MAX_KEY_LENGTH || !PREFIX_RE.test(prefix)) {
    throw new BadInputError(`invalid object key prefix ${JSON.stringify(prefix)}`);
  }
  const segments = prefix.split('/');
  if (prefix.startsWith('/') || segments.some((s, i) => s === '..' || s === '.' || (s === '' && i < segments.length - 1))) {
    throw new BadInputError(`invalid object key prefix ${JSON.stringify(prefix)}: no '.', '..' or empty segments, no leading '/'`);
  }
}
