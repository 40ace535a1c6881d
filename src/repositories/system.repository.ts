/** What the database is, rather than what it holds: liveness and the extensions the search uses. */
import type { RawSql } from '../db/database.ts';

export interface ExtensionVersion {
  /** Installed in this database (null: not installed). */
  installed: string | null;
  /** The version its control file on the server offers (null: the server does not have it). */
  available: string | null;
}

export interface DatabaseExtensions {
  /** pgvector: bit(64) codes and their Hamming operators (every migration needs it). */
  vector: ExtensionVersion;
  /** The compiled block scan of FCDN_SEARCH_METHOD=blocks (pg/fcdn_search; never on PGlite). */
  fcdnSearch: ExtensionVersion;
}

const EXTENSIONS_SQL = `
SELECT n AS name,
       (SELECT extversion FROM pg_extension WHERE extname = n) AS installed,
       (SELECT default_version FROM pg_available_extensions WHERE name = n) AS available
FROM unnest(ARRAY['vector', 'fcdn_search']) AS n`;

export class SystemRepository {
  constructor(private readonly raw: RawSql) {}

  /** Throws when the database does not answer. */
  async ping(): Promise<void> {
    await this.raw.query('SELECT 1');
  }

  async extensions(): Promise<DatabaseExtensions> {
    const rows = await this.raw.query<{ name: string; installed: string | null; available: string | null }>(EXTENSIONS_SQL);
    const of = (name: string): ExtensionVersion => {
      const row = rows.find((r) => r.name === name);
      return { installed: row?.installed ?? null, available: row?.available ?? null };
    };
    return { vector: of('vector'), fcdnSearch: of('fcdn_search') };
  }
}
