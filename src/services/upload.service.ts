/**
 * Large uploads: slice images too big (or too many) to send inline as base64 in ingestCase.
 *
 *   1. createSliceUpload(contentType, byteLength) records an upload under a server-generated key
 *      (`uploads/<uuid>`) and returns where to PUT the bytes: a presigned S3 URL, or on the
 *      filesystem store the service's own signed `/uploads/<uuid>` URL (receive() below).
 *   2. ingestCase names the key in SliceImageInput.uploadKey (with data ""). resolve() reads the
 *      bytes through the object store, and the ingest validates them exactly as inline data.
 *   3. The ingest transaction marks the row used (take(): it expires now); after commit the
 *      object and row are removed (or, failing that, by the sweeper). A failed ingest writes
 *      nothing and leaves the upload usable until it expires.
 *   4. sweepExpired() (a periodic job, UploadSweeper) removes expired uploads' objects and rows.
 */
import crypto from 'node:crypto';
import type { Logger } from 'pino';
import type { UploadUrlSigner } from '../auth/upload-urls.ts';
import { BadInputError, ForbiddenError, NotFoundError } from '../errors.ts';
import type { Repositories, Transaction } from '../repositories/index.ts';
import { ObjectTooLargeError, type ObjectStore } from '../storage/object-store.ts';
import { PollingLoop } from './polling-loop.ts';
import { MAX_SLICES, type SliceImageInput } from './slice-input.ts';

export interface UploadSettings {
  ttlSeconds: number;
  maxBytes: number;
}

export interface SliceUpload {
  key: string;
  /** Absolute URL (S3) or a path on this service (filesystem store) that the caller resolves. */
  url: string;
  method: 'PUT';
  headers: { name: string; value: string }[];
  expiresAt: Date;
}

/** What a slice may be uploaded as; the bytes decide the format, as for inline data. */
export const UPLOAD_CONTENT_TYPES = ['image/png', 'application/dicom', 'application/octet-stream'] as const;
const KEY_RE = /^uploads\/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function isUploadKey(key: string): boolean {
  return KEY_RE.test(key);
}

/** A slice input with its bytes already fetched (from an upload). */
export type ResolvedSliceInput = SliceImageInput & { bytes?: Buffer };

export class UploadService {
  constructor(
    private readonly repos: Repositories,
    private readonly store: ObjectStore,
    private readonly signer: UploadUrlSigner,
    private readonly settings: UploadSettings,
    private readonly log: Logger,
  ) {}

  async create(contentType: string, byteLength: number, baseUrl: string, now = new Date()): Promise<SliceUpload> {
    if (!(UPLOAD_CONTENT_TYPES as readonly string[]).includes(contentType)) {
      throw new BadInputError(`contentType must be one of ${UPLOAD_CONTENT_TYPES.join(', ')}; got "${String(contentType).slice(0, 64)}"`);
    }
    if (!Number.isInteger(byteLength) || byteLength < 1 || byteLength > this.settings.maxBytes) {
      throw new BadInputError(`byteLength must be an integer from 1 to ${this.settings.maxBytes} (FCDN_MAX_UPLOAD_BYTES)`);
    }
    const key = `uploads/${crypto.randomUUID()}`;
    const expiresAt = new Date(now.getTime() + this.settings.ttlSeconds * 1000);
    await this.repos.uploads.create({ uploadKey: key, contentType, byteLength, expiresAt });
    const url = this.store.presignedPutUrl
      ? await this.store.presignedPutUrl(key, this.settings.ttlSeconds)
      : `${baseUrl}${this.signer.path(key, expiresAt)}`;
    return { key, url, method: 'PUT', headers: [{ name: 'Content-Type', value: contentType }], expiresAt };
  }

  /**
   * PUT /uploads/<uuid>, before its body is read (issue 13, item 4): the signature, that the
   * upload is still open, and a Content-Length (when sent) equal to the declared length. So an
   * unsigned or mismatched request is refused without buffering up to FCDN_MAX_UPLOAD_BYTES.
   */
  async admit(key: string, expires: number, sig: string, contentLength: number | null, now = new Date()): Promise<void> {
    if (!isUploadKey(key) || !this.signer.verify(key, expires, sig, now.getTime())) {
      throw new ForbiddenError('the upload URL is invalid or has expired; ask createSliceUpload for a new one');
    }
    const [upload] = await this.repos.uploads.findLive([key], now);
    if (!upload) throw new NotFoundError(`upload ${key} does not exist or has expired`);
    if (contentLength !== null && contentLength !== upload.byteLength) {
      throw new BadInputError(`the body has ${contentLength} bytes (Content-Length); createSliceUpload declared ${upload.byteLength}`);
    }
  }

  /**
   * PUT /uploads/<uuid> on the filesystem store: checks the signature, that the upload is still
   * open and that the body has the declared length, then stores it.
   */
  async receive(key: string, expires: number, sig: string, body: Buffer, now = new Date()): Promise<void> {
    if (!isUploadKey(key) || !this.signer.verify(key, expires, sig, now.getTime())) {
      throw new ForbiddenError('the upload URL is invalid or has expired; ask createSliceUpload for a new one');
    }
    const [upload] = await this.repos.uploads.findLive([key], now);
    if (!upload) throw new NotFoundError(`upload ${key} does not exist or has expired`);
    if (body.length !== upload.byteLength) {
      throw new BadInputError(`the body has ${body.length} bytes; createSliceUpload declared ${upload.byteLength}`);
    }
    await this.store.put(key, body, upload.contentType);
  }

  /** Largest body /uploads accepts (the HTTP layer limits reads to it). */
  get maxBytes(): number {
    return this.settings.maxBytes;
  }

  /**
   * Fetches the bytes of every image given by uploadKey. Rule: each image has exactly one of a
   * non-empty `data` or an `uploadKey` (the contract makes data a String!, so send "" with a key).
   */
  async resolve(images: readonly SliceImageInput[], now = new Date()): Promise<{ images: ResolvedSliceInput[]; uploadKeys: string[] }> {
    // Too many slices: leave it to prepareSliceInputs to say so, before fetching anything.
    if (images.length > MAX_SLICES) return { images: [...images], uploadKeys: [] };
    const keys = images.map((image, i) => {
      const key = image.uploadKey ?? null;
      const hasData = Boolean(image.data);
      if (key === null) return null;
      const what = `images[${i}] (offset ${image.offset ?? 0})`;
      if (hasData) throw new BadInputError(`${what}: give either data or uploadKey, not both (send data: "" with an uploadKey)`);
      if (!isUploadKey(key)) throw new BadInputError(`${what}: uploadKey "${key.slice(0, 80)}" is not a key createSliceUpload issued`);
      return key;
    });
    const wanted = keys.filter((k): k is string => k !== null);
    if (wanted.length === 0) return { images: [...images], uploadKeys: [] };
    if (new Set(wanted).size !== wanted.length) throw new BadInputError('images: the same uploadKey is used for two slices');
    const live = new Map((await this.repos.uploads.findLive(wanted, now)).map((u) => [u.uploadKey, u]));
    const resolved = await Promise.all(
      images.map(async (image, i) => {
        const key = keys[i];
        if (!key) return image;
        const what = `images[${i}] (offset ${image.offset ?? 0})`;
        const upload = live.get(key);
        if (!upload) throw new BadInputError(`${what}: upload ${key} does not exist, has expired or was already used; request a new one with createSliceUpload`);
        let bytes: Buffer;
        try {
          // Bounded by the declared length (issue 13, item 5): a presigned PUT binds none, and a
          // larger object is refused on its size, not read into memory first.
          bytes = await this.store.get(key, { maxBytes: upload.byteLength });
        } catch (err) {
          if (err instanceof NotFoundError) throw new BadInputError(`${what}: nothing was uploaded to ${key} yet; PUT the image to the upload URL first`);
          if (err instanceof ObjectTooLargeError) throw new BadInputError(`${what}: upload ${key} holds ${err.size} bytes; createSliceUpload declared ${upload.byteLength}`);
          throw err;
        }
        if (bytes.length !== upload.byteLength) {
          throw new BadInputError(`${what}: upload ${key} holds ${bytes.length} bytes; createSliceUpload declared ${upload.byteLength}`);
        }
        return { ...image, bytes };
      }),
    );
    return { images: resolved, uploadKeys: wanted };
  }

  /**
   * Inside the ingest transaction: marks the uploads used, so that one upload makes at most one
   * case (a second, concurrent ingest with the same key fails and rolls back).
   */
  async take(tx: Transaction, keys: readonly string[], now = new Date()): Promise<void> {
    if (keys.length === 0) return;
    const taken = new Set(await this.repos.uploads.take(tx, keys, now));
    const lost = keys.find((k) => !taken.has(k));
    if (lost) throw new BadInputError(`upload ${lost} expired or was used by another ingest meanwhile; request a new one with createSliceUpload`);
  }

  /**
   * After the ingest committed: the upload objects are no longer needed (the case has its own
   * copies). take() expired their rows, so if a removal fails here the sweeper retries it.
   */
  async discard(keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return;
    try {
      await Promise.all(keys.map((k) => this.store.delete(k)));
      await this.repos.uploads.deleteExpired(keys, new Date());
    } catch (err) {
      this.log.warn({ err, keys }, 'could not remove used uploads yet; the upload sweeper will');
    }
  }

  /**
   * Removes objects under uploads/ that no upload row names (issue 13, item 5): a presigned URL
   * stays valid after its upload was used by an ingest or swept, and a PUT through it then stores
   * an object nothing else would find. A row is written before its URL is handed out, so an
   * object whose row is missing can no longer become a case. Returns how many were removed.
   */
  async sweepOrphans(batch = 500): Promise<number> {
    const keys = (await this.store.list('uploads/')).filter(isUploadKey);
    let removed = 0;
    for (let i = 0; i < keys.length; i += batch) {
      const page = keys.slice(i, i + batch);
      const known = await this.repos.uploads.existing(page);
      const orphans = page.filter((k) => !known.has(k));
      await Promise.all(orphans.map((k) => this.store.delete(k)));
      removed += orphans.length;
    }
    return removed;
  }

  /** Removes expired uploads (objects first, then rows); returns how many. */
  async sweepExpired(now = new Date(), batch = 500): Promise<number> {
    let removed = 0;
    for (;;) {
      const expired = await this.repos.uploads.findExpired(now, batch);
      if (expired.length === 0) return removed;
      const keys = expired.map((u) => u.uploadKey);
      await Promise.all(keys.map((k) => this.store.delete(k)));
      removed += await this.repos.uploads.deleteExpired(keys, now);
      if (expired.length < batch) return removed;
    }
  }
}

/** Runs sweepExpired every interval until stopped (in the API process and in `npm run worker`). */
export class UploadSweeper {
  private readonly loop: PollingLoop;
  private running: Promise<void> | null = null;

  constructor(
    private readonly uploads: UploadService,
    intervalMs: number,
    private readonly log: Logger,
  ) {
    this.loop = new PollingLoop('upload sweeper', intervalMs, async () => (await this.sweepNow(), false), log);
  }

  start(): void {
    this.loop.start();
  }

  async sweepNow(): Promise<number> {
    if (this.running) {
      await this.running;
      return 0;
    }
    let removed = 0;
    this.running = (async () => {
      try {
        removed = await this.uploads.sweepExpired();
        if (removed > 0) this.log.info({ removed }, 'removed expired uploads');
        const orphans = await this.uploads.sweepOrphans();
        if (orphans > 0) this.log.info({ removed: orphans }, 'removed upload objects that no upload names (PUT after their upload was used or expired)');
        removed += orphans;
      } catch (err) {
        this.log.warn({ err }, 'upload sweep failed; retrying at the next interval');
      }
    })();
    await this.running;
    this.running = null;
    return removed;
  }

  async stop(): Promise<void> {
    await this.loop.stop();
    await this.running;
  }
}
