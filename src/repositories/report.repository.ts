/** Diagnostic reports, linked to a case, a study, or both. */
import type { DiagnosticReport } from '../generated/prisma/client.ts';
import type { Executor, PrismaClient } from './executor.ts';

export interface NewReport {
  caseId: number | null;
  studyId: number | null;
  text: string;
  impression: string | null;
  author: string | null;
  issuedAt: Date | null;
}

export class ReportRepository {
  constructor(private readonly prisma: PrismaClient) {}

  async create(report: NewReport, db: Executor = this.prisma): Promise<DiagnosticReport> {
    return db.diagnosticReport.create({ data: report });
  }

  async findByCaseIds(caseIds: readonly number[]): Promise<DiagnosticReport[]> {
    return this.prisma.diagnosticReport.findMany({ where: { caseId: { in: [...caseIds] } }, orderBy: { id: 'asc' } });
  }

  async findByStudyIds(studyIds: readonly number[]): Promise<DiagnosticReport[]> {
    return this.prisma.diagnosticReport.findMany({ where: { studyId: { in: [...studyIds] } }, orderBy: { id: 'asc' } });
  }

  async deleteByCase(db: Executor, caseId: number): Promise<void> {
    await db.diagnosticReport.deleteMany({ where: { caseId } });
  }
}
