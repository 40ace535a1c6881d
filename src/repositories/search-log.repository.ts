/** The search log analysts query: ids and timings only, no images and no patient keys. */
import type { Prisma } from '../generated/prisma/client.ts';
import type { PrismaClient } from './executor.ts';

export interface SearchLogEntry {
  tookMs: number;
  k: number;
  modelId: number;
  queryKind: 'CASE' | 'IMAGES';
  queryCaseId: number | null;
  querySlices: number;
  weights: Prisma.InputJsonValue;
  resultCaseIds: number[];
}

export class SearchLogRepository {
  constructor(private readonly prisma: PrismaClient) {}

  async record(entry: SearchLogEntry): Promise<void> {
    await this.prisma.searchLog.create({ data: entry });
  }
}
