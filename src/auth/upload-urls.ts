/**
 * Signed upload URLs for the filesystem object store (S3 has its own presigned PUT URLs). The
 * signature covers (upload key, expiry) with the same server secret as the image URLs, under its
 * own label so that an image signature can never pass as an upload one.
 */
import crypto from 'node:crypto';

export class UploadUrlSigner {
  constructor(private readonly secret: Buffer) {}

  private signature(key: string, expires: number): string {
    return crypto.createHmac('sha256', this.secret).update(`upload:${key}.${expires}`).digest('base64url');
  }

  /** `/<key>?expires=<unix seconds>&sig=...`; keys are `uploads/<uuid>`, so this is `/uploads/<uuid>?...`. */
  path(key: string, expiresAt: Date): string {
    const expires = Math.floor(expiresAt.getTime() / 1000);
    return `/${key}?expires=${expires}&sig=${this.signature(key, expires)}`;
  }

  verify(key: string, expires: number, sig: string, now = Date.now()): boolean {
    if (!Number.isInteger(expires) || expires * 1000 <= now) return false;
    const expected = Buffer.from(this.signature(key, expires));
    const given = Buffer.from(sig);
    return expected.length === given.length && crypto.timingSafeEqual(expected, given);
  }
}
