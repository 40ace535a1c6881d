// Prisma CLI config: only `prisma generate` is used (migrations are plain SQL, see src/db/migrator.ts).
export default { schema: 'prisma/schema.prisma' };
