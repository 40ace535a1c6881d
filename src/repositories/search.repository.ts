/** Runs the Joint-distance search (the SQL and its explanation: ./search-sql.ts). */
import type { JointWeights } from '../domain/joint-distance.ts';
import type { CaseFilter } from './case.repository.ts';
import type { PrismaClient } from './executor.ts';
import { JOINT_DISTANCE_SEARCH_SQL } from './search-sql.ts';

export interface QueryCodes {
  /** Layer-4 and layer-25 codes of every query slice; layer-17 code of the centre slice. */
  shallow: string[];
  middle: string;
  deep: string[];
}

export interface JointSearch {
  modelId: number;
  query: QueryCodes;
  weights: JointWeights;
  k: number;
  excludeCaseId?: number | null;
  excludePatientIds?: number[] | null;
  filter?: CaseFilter | null;
}

export interface RankedCase {
  caseId: number;
  shallowDistance: number;
  middleDistance: number;
  deepDistance: number;
  jointDistance: number;
}

export class SearchRepository {
  constructor(private readonly prisma: PrismaClient) {}

  async jointDistanceSearch(s: JointSearch): Promise<RankedCase[]> {
    const f = s.filter ?? {};
    const rows = await this.prisma.$queryRawUnsafe<{ caseId: number; dl: number; dm: number; dd: number; joint: number }[]>(
      JOINT_DISTANCE_SEARCH_SQL,
      s.query.shallow,
      s.query.middle,
      s.query.deep,
      s.modelId,
      s.weights.shallow,
      s.weights.middle,
      s.weights.deep,
      s.k,
      s.excludeCaseId ?? null,
      s.excludePatientIds?.length ? s.excludePatientIds : null,
      f.malignancyClass?.length ? f.malignancyClass : null,
      f.minDiameterMm ?? null,
      f.maxDiameterMm ?? null,
      f.patientKey ?? null,
    );
    return rows.map((r) => ({
      caseId: Number(r.caseId),
      shallowDistance: Number(r.dl),
      middleDistance: Number(r.dm),
      deepDistance: Number(r.dd),
      jointDistance: Number(r.joint),
    }));
  }
}
