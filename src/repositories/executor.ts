import type { Prisma, PrismaClient } from '../generated/prisma/client.ts';

/** What a repository method runs on: the client, or the transaction a service opened. */
export type Executor = PrismaClient | Prisma.TransactionClient;
export type { PrismaClient };
