/**
 * Signed image URLs. Slice.imageUrl must be a URL a viewer can put in an <img> tag, which sends
 * no Authorization header; so the API signs (slice id, expiry) with a server secret for callers
 * who were authorised to see the slice, and /images checks the signature instead of a key.
 */
import crypto from 'node:crypto';

export const IMAGE_URL_TTL_SECONDS = 3600;

export class ImageUrlSigner {
  constructor(private readonly secret: Buffer) {}

  private signature(sliceId: number, expires: number): string {
    return crypto.createHmac('sha256', this.secret).update(`${sliceId}.${expires}`).digest('base64url');
  }

  path(sliceId: number, now = Date.now()): string {
    // Expiry rounded to the hour, so the same slice gives the same URL for a while (browser cache).
    const expires = Math.ceil(now / 3_600_000) * 3600 + IMAGE_URL_TTL_SECONDS;
    return `/images/slices/${sliceId}.png?expires=${expires}&sig=${this.signature(sliceId, expires)}`;
  }

  verify(sliceId: number, expires: number, sig: string, now = Date.now()): boolean {
    if (!Number.isInteger(expires) || expires * 1000 < now) return false;
    const expected = Buffer.from(this.signature(sliceId, expires));
    const given = Buffer.from(sig);
    return expected.length === given.length && crypto.timingSafeEqual(expected, given);
  }
}
