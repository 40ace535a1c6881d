/** Patients, studies and nodule cases: the relational part, through Prisma. */
import { Prisma, type NoduleCase, type Study } from '../generated/prisma/client.ts';
import type { Executor, PrismaClient } from './executor.ts';
import { EXTERNAL_ID_LOCK } from '../db/locks.ts';

export type MalignancyClass = 'BENIGN' | 'INDETERMINATE' | 'MALIGNANT';

export interface CaseFilter {
  malignancyClass?: MalignancyClass[] | null;
  minDiameterMm?: number | null;
  maxDiameterMm?: number | null;
  patientKey?: string | null;
}

/** A case row with its patient's pseudonymous key. */
export type CaseRecord = NoduleCase & { patientKey: string };
export type StudyRecord = Study & { patientKey: string };

/** Position in the newest-first order of case listings. */
export interface CaseCursor {
  createdAt: Date;
  id: number;
}

export interface NewCase {
  externalId: string | null;
  patientId: number;
  studyId: number | null;
  seriesInstanceUid: string | null;
  malignancy: number | null;
  malignancyClass: MalignancyClass | null;
  diameterMm: number | null;
  findings: Prisma.InputJsonValue | null;
}

const withPatientKey = { patient: { select: { patientKey: true } } } as const;

function flatten<T extends { patient: { patientKey: string } }>(row: T): Omit<T, 'patient'> & { patientKey: string } {
  const { patient, ...rest } = row;
  return { ...rest, patientKey: patient.patientKey };
}

function whereFilter(filter: CaseFilter | null | undefined): Prisma.NoduleCaseWhereInput {
  if (!filter) return {};
  return {
    ...(filter.malignancyClass?.length ? { malignancyClass: { in: filter.malignancyClass } } : {}),
    ...(filter.minDiameterMm != null || filter.maxDiameterMm != null
      ? { diameterMm: { ...(filter.minDiameterMm != null ? { gte: filter.minDiameterMm } : {}), ...(filter.maxDiameterMm != null ? { lte: filter.maxDiameterMm } : {}) } }
      : {}),
    ...(filter.patientKey != null ? { patient: { patientKey: filter.patientKey } } : {}),
  };
}

export class CaseRepository {
  constructor(private readonly prisma: PrismaClient) {}

  async findByIds(ids: readonly number[]): Promise<CaseRecord[]> {
    const rows = await this.prisma.noduleCase.findMany({ where: { id: { in: [...ids] } }, include: withPatientKey });
    return rows.map(flatten);
  }

  async findByExternalId(externalId: string, db: Executor = this.prisma): Promise<CaseRecord | null> {
    const row = await db.noduleCase.findUnique({ where: { externalId }, include: withPatientKey });
    return row && flatten(row);
  }

  /** One page, newest first, after the cursor; plus the filter's total count. */
  async list(first: number, after: CaseCursor | null, filter?: CaseFilter | null): Promise<{ rows: CaseRecord[]; totalCount: number }> {
    const where = whereFilter(filter);
    const page: Prisma.NoduleCaseWhereInput = after
      ? { AND: [where, { OR: [{ createdAt: { lt: after.createdAt } }, { createdAt: after.createdAt, id: { lt: after.id } }] }] }
      : where;
    const [rows, totalCount] = await Promise.all([
      this.prisma.noduleCase.findMany({ where: page, orderBy: [{ createdAt: 'desc' }, { id: 'desc' }], take: first, include: withPatientKey }),
      this.prisma.noduleCase.count({ where }),
    ]);
    return { rows: rows.map(flatten), totalCount };
  }

  async findByStudyIds(studyIds: readonly number[]): Promise<CaseRecord[]> {
    const rows = await this.prisma.noduleCase.findMany({ where: { studyId: { in: [...studyIds] } }, orderBy: { id: 'asc' }, include: withPatientKey });
    return rows.map(flatten);
  }

  /**
   * One statement (INSERT ... ON CONFLICT), not Prisma's upsert, which reads then inserts: two
   * concurrent ingests of a new patient key would both insert, and one would fail.
   */
  async upsertPatient(db: Executor, patientKey: string): Promise<number> {
    const [row] = await db.$queryRawUnsafe<{ id: number }[]>(
      `INSERT INTO patients (patient_key) VALUES ($1)
       ON CONFLICT (patient_key) DO UPDATE SET patient_key = EXCLUDED.patient_key RETURNING id`,
      patientKey,
    );
    return row!.id;
  }

  async findPatientId(patientKey: string): Promise<number | null> {
    const row = await this.prisma.patient.findUnique({ where: { patientKey }, select: { id: true } });
    return row?.id ?? null;
  }

  async findStudyByUid(studyInstanceUid: string, db: Executor = this.prisma): Promise<StudyRecord | null> {
    const row = await db.study.findUnique({ where: { studyInstanceUid }, include: withPatientKey });
    return row && flatten(row);
  }

  async findStudiesByIds(ids: readonly number[]): Promise<StudyRecord[]> {
    const rows = await this.prisma.study.findMany({ where: { id: { in: [...ids] } }, include: withPatientKey });
    return rows.map(flatten);
  }

  async createStudy(db: Executor, studyInstanceUid: string, patientId: number): Promise<number> {
    const row = await db.study.create({ data: { studyInstanceUid, patientId }, select: { id: true } });
    return row.id;
  }

  async create(db: Executor, data: NewCase): Promise<number> {
    const row = await db.noduleCase.create({ data: { ...data, findings: data.findings ?? Prisma.DbNull }, select: { id: true } });
    return row.id;
  }

  /** Replaces a case's fields in place (re-ingest under the same externalId keeps the id). */
  async replace(db: Executor, id: number, data: NewCase): Promise<void> {
    await db.noduleCase.update({ where: { id }, data: { ...data, findings: data.findings ?? Prisma.DbNull, createdAt: new Date() } });
  }

  async delete(db: Executor, id: number): Promise<boolean> {
    const { count } = await db.noduleCase.deleteMany({ where: { id } });
    return count > 0;
  }

  /**
   * Locks the case row (FOR UPDATE) of this externalId for the caller's transaction; its id and
   * patient, or null when there is none. A re-ingest takes it before it touches the old slices, so
   * that it and deleteCase lock in one order, case row first (issue 13, item 9). An advisory lock
   * on the externalId comes first: two ingests of one new externalId (with no row to lock yet)
   * wait for each other, so the second sees the first's case instead of failing on the unique key.
   */
  async lockByExternalId(tx: Executor, externalId: string): Promise<{ id: number; patientId: number } | null> {
    await tx.$queryRawUnsafe('SELECT pg_advisory_xact_lock($1::int, hashtext($2))::text', EXTERNAL_ID_LOCK, externalId);
    const rows = await tx.$queryRawUnsafe<{ id: number; patientId: number }[]>('SELECT id, patient_id AS "patientId" FROM nodule_cases WHERE external_id = $1 FOR UPDATE', externalId);
    return rows[0] ?? null;
  }

  /**
   * Deletes the case in the caller's transaction and returns the image keys of the slices it
   * had, or null when there is no such case. The case row is locked first, and the keys are those
   * of the slices actually deleted (DELETE ... RETURNING, after the lock), so a re-ingest that
   * committed while we waited cannot leave its new images unaccounted for (issue 13, item 9).
   */
  async deleteReturningImageKeys(tx: Executor, id: number): Promise<string[] | null> {
    const locked = await tx.$queryRawUnsafe<{ id: number }[]>('SELECT id FROM nodule_cases WHERE id = $1 FOR UPDATE', id);
    if (locked.length === 0) return null;
    const slices = await tx.$queryRawUnsafe<{ key: string }[]>('DELETE FROM slices WHERE case_id = $1 RETURNING image_key AS key', id);
    await tx.$executeRawUnsafe('DELETE FROM nodule_cases WHERE id = $1', id);
    return slices.map((s) => s.key);
  }
}
