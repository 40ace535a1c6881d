/** Reading, listing and deleting cases; attaching reports to cases and studies. */
import { BadInputError, NotFoundError } from '../errors.ts';
import type { DiagnosticReport } from '../repositories/records.ts';
import type { CaseCursor, CaseFilter, CaseRecord, StudyRecord } from '../repositories/case.repository.ts';
import type { ReadSession, Repositories } from '../repositories/index.ts';
import { checkReport, type ReportInput } from './ingest.service.ts';
import type { ObjectJanitor } from './object-janitor.ts';

export const MAX_PAGE = 100;

export interface CasePage {
  rows: CaseRecord[];
  totalCount: number;
  hasNextPage: boolean;
  cursorOf(row: CaseRecord): string;
}

/** Opaque Relay cursors: base64 of "createdAt|id" (the listing's sort key). */
export function encodeCursor(row: { createdAt: Date; id: number }): string {
  return Buffer.from(`${row.createdAt.toISOString()}|${row.id}`).toString('base64url');
}

export function decodeCursor(cursor: string): CaseCursor {
  const [at, id] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  const createdAt = new Date(at ?? '');
  const n = Number(id);
  if (Number.isNaN(createdAt.getTime()) || !Number.isInteger(n)) throw new BadInputError('after: not a cursor this service issued');
  return { createdAt, id: n };
}

export interface AttachReportInput {
  caseId?: number | null;
  studyInstanceUid?: string | null;
  report: ReportInput;
}

export class CaseService {
  constructor(
    private readonly repos: Repositories,
    private readonly janitor: ObjectJanitor,
  ) {}

  /** Listings read on `reads` (the request's read node: the primary, or a replica with FCDN_READ_DATABASE_URL). */
  async list(first: number, after: string | null | undefined, filter: CaseFilter | null | undefined, reads: ReadSession = this.repos.reads()): Promise<CasePage> {
    if (!Number.isInteger(first) || first < 0 || first > MAX_PAGE) throw new BadInputError(`first must be an integer from 0 to ${MAX_PAGE}`);
    const cursor = after ? decodeCursor(after) : null;
    // One extra row tells whether another page follows.
    const { rows, totalCount } = await reads.run((r) => r.cases.list(first + 1, cursor, filter));
    return { rows: rows.slice(0, first), totalCount, hasNextPage: rows.length > first, cursorOf: encodeCursor };
  }

  async byExternalId(externalId: string, reads: ReadSession = this.repos.reads()): Promise<CaseRecord | null> {
    return reads.run((r) => r.cases.findByExternalId(externalId));
  }

  async study(studyInstanceUid: string, reads: ReadSession = this.repos.reads()): Promise<StudyRecord | null> {
    return reads.run((r) => r.cases.findStudyByUid(studyInstanceUid));
  }

  /**
   * Removes the case with its slices, codes and reports, then its stored images. The images go on
   * the deletion outbox in the same transaction, so if the store is down they are removed later
   * (ObjectJanitor retries until it can), never forgotten.
   */
  async delete(id: number): Promise<boolean> {
    const keys = await this.repos.transaction(async (tx) => {
      // The keys of the slices this transaction deletes, read after the case row is locked: a
      // re-ingest that commits meanwhile cannot leave its new images unscheduled (issue 13, item 9).
      const keys = await this.repos.cases.deleteReturningImageKeys(tx, id);
      if (!keys) return null;
      await this.repos.objectDeletions.schedule(keys, 0, tx);
      return keys;
    });
    if (!keys) throw new NotFoundError(`no case with id ${id}`);
    await this.janitor.discard(keys);
    return true;
  }

  async attachReport(input: AttachReportInput): Promise<DiagnosticReport> {
    if (input.caseId == null && input.studyInstanceUid == null) throw new BadInputError('give caseId, studyInstanceUid, or both');
    checkReport(input.report);
    let caseId: number | null = null;
    let studyId: number | null = null;
    if (input.caseId != null) {
      const [found] = await this.repos.cases.findByIds([input.caseId]);
      if (!found) throw new NotFoundError(`no case with id ${input.caseId}`);
      caseId = found.id;
      studyId = found.studyId;
    }
    if (input.studyInstanceUid != null) {
      const study = await this.repos.cases.findStudyByUid(input.studyInstanceUid);
      if (!study) throw new NotFoundError(`no study with StudyInstanceUID ${input.studyInstanceUid}`);
      if (studyId != null && studyId !== study.id) throw new BadInputError(`case ${caseId} does not belong to study ${input.studyInstanceUid}`);
      studyId = study.id;
    }
    const r = input.report;
    return this.repos.reports.create({ caseId, studyId, text: r.text, impression: r.impression ?? null, author: r.author ?? null, issuedAt: r.issuedAt ?? null });
  }
}
