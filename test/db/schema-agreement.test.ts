/**
 * migrations/*.sql are the schema; prisma/schema.prisma mirrors them for the Prisma client.
 * This test fails when they disagree on a table, a column, its type family or its nullability,
 * and checks that the migrator is idempotent and refuses an edited migration.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, test } from 'node:test';
import { migrate, readMigrations } from '../../src/db/migrator.ts';
import { createTestDatabase, type TestDatabase } from '../../fixtures/test-database.ts';

interface Column {
  type: string;
  nullable: boolean;
}

const PRISMA_TO_PG: Record<string, string> = {
  Int: 'integer',
  BigInt: 'bigint',
  String: 'text',
  Float: 'double precision',
  Boolean: 'boolean',
  DateTime: 'timestamp with time zone',
  Json: 'jsonb',
  'Int[]': 'ARRAY',
  'Unsupported("bit(64)")': 'bit',
};

/** Tables and scalar columns as prisma/schema.prisma declares them. */
function prismaTables(): Map<string, Map<string, Column>> {
  const text = fs.readFileSync('prisma/schema.prisma', 'utf8');
  const models = [...text.matchAll(/^model (\w+) \{([\s\S]*?)^\}/gm)];
  const modelNames = new Set(models.map((m) => m[1]));
  const tables = new Map<string, Map<string, Column>>();
  for (const [, , body] of models) {
    const table = /@@map\("(\w+)"\)/.exec(body!)?.[1];
    assert.ok(table, 'every model maps to a table');
    const columns = new Map<string, Column>();
    for (const line of body!.split('\n')) {
      const m = /^\s+(\w+)\s+(Unsupported\("[^"]+"\)|[\w]+(?:\[\])?)(\?)?(.*)$/.exec(line);
      if (!m || line.trim().startsWith('@@')) continue;
      const [, field, type, optional, rest] = m;
      if (modelNames.has(type!.replace('[]', ''))) continue; // a relation, not a column
      const column = /@map\("(\w+)"\)/.exec(rest!)?.[1] ?? field!;
      columns.set(column, { type: PRISMA_TO_PG[type!] ?? `unknown ${type}`, nullable: Boolean(optional) });
    }
    tables.set(table!, columns);
  }
  return tables;
}

let db: TestDatabase;
before(async () => (db = await createTestDatabase()));
after(async () => db?.close());

test('prisma/schema.prisma mirrors the tables and columns the migrations create', async () => {
  const rows = await db.raw.query<{ table_name: string; column_name: string; data_type: string; is_nullable: string }>(
    `SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns
     WHERE table_schema = 'public' AND table_name <> 'schema_migrations' ORDER BY table_name, ordinal_position`,
  );
  const migrated = new Map<string, Map<string, Column>>();
  for (const r of rows) {
    if (!migrated.has(r.table_name)) migrated.set(r.table_name, new Map());
    migrated.get(r.table_name)!.set(r.column_name, { type: r.data_type, nullable: r.is_nullable === 'YES' });
  }
  const prisma = prismaTables();
  assert.deepEqual([...prisma.keys()].sort(), [...migrated.keys()].sort(), 'the same tables');
  for (const [table, columns] of migrated) {
    assert.deepEqual(Object.fromEntries([...prisma.get(table)!].sort()), Object.fromEntries([...columns].sort()), `columns of ${table}`);
  }
});

test('the migrator applies each file once, and refuses a migration edited after it was applied', async () => {
  assert.deepEqual(await migrate(db.raw), [], 'nothing left to apply');
  const edited = readMigrations().map((m, i) => (i === 0 ? { ...m, checksum: 'edited' } : m));
  await assert.rejects(migrate(db.raw, edited), /was changed after it was applied/);
});
