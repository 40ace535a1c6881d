/**
 * Pending large uploads (migrations/0004_uploads.sql). Plain SQL: the table is small and its
 * queries are few, and taking a row out is a DELETE ... RETURNING inside the ingest transaction.
 */
import type { Executor, PrismaClient } from './executor.ts';

export interface UploadRecord {
  uploadKey: string;
  contentType: string;
  byteLength: number;
  expiresAt: Date;
}

interface UploadRow {
  upload_key: string;
  content_type: string;
  byte_length: number;
  expires_at: Date;
}

const toRecord = (r: UploadRow): UploadRecord => ({
  uploadKey: r.upload_key,
  contentType: r.content_type,
  byteLength: Number(r.byte_length),
  expiresAt: new Date(r.expires_at),
});

export class UploadRepository {
  constructor(private readonly prisma: PrismaClient) {}

  async create(upload: UploadRecord): Promise<void> {
    await this.prisma.$executeRawUnsafe(
      'INSERT INTO slice_uploads (upload_key, content_type, byte_length, expires_at) VALUES ($1, $2, $3, $4)',
      upload.uploadKey,
      upload.contentType,
      upload.byteLength,
      upload.expiresAt,
    );
  }

  /** The uploads of these keys that have not expired at `now`. */
  async findLive(keys: readonly string[], now: Date, db: Executor = this.prisma): Promise<UploadRecord[]> {
    if (keys.length === 0) return [];
    const rows = await db.$queryRawUnsafe<UploadRow[]>(
      'SELECT upload_key, content_type, byte_length, expires_at FROM slice_uploads WHERE upload_key = ANY($1::text[]) AND expires_at > $2',
      [...keys],
      now,
    );
    return rows.map(toRecord);
  }

  /**
   * Marks the still-live uploads of these keys used by expiring them now; returns the keys it
   * marked. The rows stay until their objects are removed (by the ingest, or else the sweeper).
   */
  async take(db: Executor, keys: readonly string[], now: Date): Promise<string[]> {
    if (keys.length === 0) return [];
    const rows = await db.$queryRawUnsafe<{ upload_key: string }[]>(
      'UPDATE slice_uploads SET expires_at = $2 WHERE upload_key = ANY($1::text[]) AND expires_at > $2 RETURNING upload_key',
      [...keys],
      now,
    );
    return rows.map((r) => r.upload_key);
  }

  /** Which of these keys have an upload row (live or expired). */
  async existing(keys: readonly string[]): Promise<Set<string>> {
    if (keys.length === 0) return new Set();
    const rows = await this.prisma.$queryRawUnsafe<{ upload_key: string }[]>('SELECT upload_key FROM slice_uploads WHERE upload_key = ANY($1::text[])', [...keys]);
    return new Set(rows.map((r) => r.upload_key));
  }

  /** Up to `limit` uploads that expired before `now`, oldest first. */
  async findExpired(now: Date, limit: number): Promise<UploadRecord[]> {
    const rows = await this.prisma.$queryRawUnsafe<UploadRow[]>(
      'SELECT upload_key, content_type, byte_length, expires_at FROM slice_uploads WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2',
      now,
      limit,
    );
    return rows.map(toRecord);
  }

  /** Deletes these rows if they are (still) expired at `now`. */
  async deleteExpired(keys: readonly string[], now: Date): Promise<number> {
    if (keys.length === 0) return 0;
    return this.prisma.$executeRawUnsafe('DELETE FROM slice_uploads WHERE upload_key = ANY($1::text[]) AND expires_at <= $2', [...keys], now);
  }
}
