/** The search log analysts query: ids and timings only, no images and no patient keys. */
import type { Prisma } from '../generated/prisma/client.ts';
import type { PrismaClient } from './executor.ts';

/** What the query was: a stored case, slices sent with the request, or slices fetched from the PACS. */
export type SearchKind = 'CASE' | 'IMAGES' | 'PACS';

export interface SearchLogEntry {
  tookMs: number;
  k: number;
  modelId: number;
  queryKind: SearchKind;
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
