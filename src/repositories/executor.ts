import type { Prisma, PrismaClient } from '../generated/prisma/client.ts';

/** An open transaction (Repositories.transaction hands it to the service, which passes it back to repository methods). */
export type Transaction = Prisma.TransactionClient;
/** What a repository method runs on: the client, or the transaction a service opened. */
export type Executor = PrismaClient | Transaction;
export type { PrismaClient };
