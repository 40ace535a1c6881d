/** The rows repositories return, as services and resolvers see them (Prisma's generated types, named here once). */
export type { DiagnosticReport, ModelVersion, ReindexJob, Slice } from '../generated/prisma/client.ts';
