/**
 * Ingest of a nodule case: all or nothing. Every slice is decoded and encoded before anything is
 * written; images are stored first under fresh keys, then one database transaction writes the
 * case, its slices, their codes and the report. If the transaction fails, the new images are
 * removed again; if it succeeds and replaced an older version of the case (same externalId), the
 * older images are removed.
 */
import crypto from 'node:crypto';
import type { Logger } from 'pino';
import { BadInputError, UnavailableError } from '../errors.ts';
import type { PreparedSlice } from '../imaging/types.ts';
import type { MalignancyClass } from '../repositories/case.repository.ts';
import type { Repositories, Transaction } from '../repositories/index.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import type { ModelService } from './model.service.ts';
import type { PrepareSlice } from './ports.ts';
import { prepareSliceInputs, type SliceImageInput } from './slice-input.ts';
import type { ObjectJanitor } from './object-janitor.ts';
import type { UploadService } from './upload.service.ts';

export interface ReportInput {
  text: string;
  impression?: string | null;
  author?: string | null;
  issuedAt?: Date | null;
}

export interface IngestCaseInput {
  externalId?: string | null;
  patientKey: string;
  studyInstanceUid?: string | null;
  seriesInstanceUid?: string | null;
  images: SliceImageInput[];
  malignancy?: number | null;
  malignancyClass?: MalignancyClass | null;
  diameterMm?: number | null;
  findings?: unknown;
  report?: ReportInput | null;
}

/** For metrics: how an ingestCase call ended, and how many slices it stored. */
export type IngestOutcome = 'stored' | 'rejected' | 'failed';
export type OnIngest = (outcome: IngestOutcome, slices: number) => void;

/** Another process switched the active model while we encoded; encoding again fixes it. */
class ActiveModelChanged extends Error {}

const UID = /^[0-9]+(\.[0-9]+)*$/;
const MAX_TEXT = 100_000;

export function classOfMalignancy(malignancy: number): MalignancyClass {
  return malignancy < 3 ? 'BENIGN' : malignancy === 3 ? 'INDETERMINATE' : 'MALIGNANT';
}

export function checkReport(report: ReportInput, what = 'report'): void {
  if (!report.text?.trim()) throw new BadInputError(`${what}.text must not be empty`);
  if (report.text.length > MAX_TEXT) throw new BadInputError(`${what}.text is longer than ${MAX_TEXT} characters`);
  if (report.issuedAt && Number.isNaN(report.issuedAt.getTime())) throw new BadInputError(`${what}.issuedAt is not a valid date`);
}

function checkCaseFields(input: IngestCaseInput): void {
  const key = input.patientKey?.trim();
  if (!key) throw new BadInputError('patientKey must not be empty');
  if (key.length > 128) throw new BadInputError('patientKey is longer than 128 characters; use a pseudonymous key');
  if (input.externalId != null && (input.externalId.length === 0 || input.externalId.length > 256)) {
    throw new BadInputError('externalId must be 1 to 256 characters');
  }
  for (const [name, uid] of [['studyInstanceUid', input.studyInstanceUid], ['seriesInstanceUid', input.seriesInstanceUid]] as const) {
    if (uid != null && (uid.length > 64 || !UID.test(uid))) throw new BadInputError(`${name} "${uid.slice(0, 70)}" is not a DICOM UID (digits and dots, at most 64 characters)`);
  }
  if (input.malignancy != null && (!Number.isInteger(input.malignancy) || input.malignancy < 1 || input.malignancy > 5)) {
    throw new BadInputError('malignancy must be an integer rating from 1 to 5');
  }
  if (input.diameterMm != null && (!Number.isFinite(input.diameterMm) || input.diameterMm < 0 || input.diameterMm > 500)) {
    throw new BadInputError('diameterMm must be a number of millimetres between 0 and 500');
  }
  if (input.report) checkReport(input.report);
}

export class IngestService {
  constructor(
    private readonly repos: Repositories,
    private readonly models: ModelService,
    private readonly store: ObjectStore,
    private readonly prepare: PrepareSlice,
    private readonly log: Logger,
    private readonly uploads: UploadService,
    private readonly janitor: ObjectJanitor,
    private readonly onIngest: OnIngest = () => {},
  ) {}

  /** Returns the id of the stored case. */
  async ingestCase(input: IngestCaseInput): Promise<number> {
    try {
      const caseId = await this.ingestChecked(input);
      this.onIngest('stored', input.images?.length ?? 0);
      return caseId;
    } catch (err) {
      this.onIngest(err instanceof BadInputError ? 'rejected' : 'failed', 0);
      throw err;
    }
  }

  private async ingestChecked(input: IngestCaseInput): Promise<number> {
    checkCaseFields(input);
    // Slices sent as uploadKey: fetched once here; the upload rows are taken in the transaction.
    const { images, uploadKeys } = await this.uploads.resolve(input.images ?? []);
    for (let attempt = 0; ; attempt++) {
      try {
        const caseId = await this.ingestOnce({ ...input, images }, uploadKeys);
        await this.uploads.discard(uploadKeys);
        return caseId;
      } catch (err) {
        if (!(err instanceof ActiveModelChanged) || attempt >= 2) throw err;
      }
    }
  }

  private async ingestOnce(input: IngestCaseInput, uploadKeys: readonly string[]): Promise<number> {
    const { version, encoder } = await this.models.active();
    const slices = await prepareSliceInputs(input.images, encoder.card, this.prepare);
    const codes = await encoder.encode(slices.map((s) => s.patch));
    const dicom = slices.find((s) => s.offset === 0)?.dicom ?? slices.find((s) => s.dicom)?.dicom;
    const studyUid = input.studyInstanceUid ?? dicom?.studyInstanceUid ?? null;

    const prefix = `cases/${crypto.randomUUID()}`;
    const keys = slices.map((s) => `${prefix}/s${s.offset}.png`);
    let oldKeys: string[] = [];
    // On the outbox before the first byte is stored: a process killed from here to the commit
    // leaves nothing behind once the grace period is over (ObjectJanitor).
    await this.repos.objectDeletions.schedule(keys, this.janitor.options.uploadGraceMs);
    try {
      // Every put settles before a failure is thrown: the discard below must not run while some
      // are still in flight, or they land after it and stay (issue 13, item 6).
      const puts = await Promise.allSettled(slices.map((s, i) => this.store.put(keys[i]!, s.storedPng, 'image/png')));
      const failedPut = puts.find((p): p is PromiseRejectedResult => p.status === 'rejected');
      if (failedPut) throw failedPut.reason;
      // All or nothing, its images already stored and still on the outbox: safe to run again when
      // the database aborted it to break a deadlock (issue 13, item 2).
      const caseId = await this.repos.transaction(
        async (tx) => {
          oldKeys = [];
          // Lock the active model row: a reindex that activates another model waits for us, and
          // if one did so while we encoded, we encode again rather than store stale codes.
          if ((await this.repos.models.lockActiveForIngest(tx)) !== version.id) throw new ActiveModelChanged();
          if ((await this.repos.objectDeletions.withdraw(tx, keys)) !== keys.length) {
            throw new UnavailableError('the images of this ingest were stored too long before it could commit and have been removed; nothing was stored, retry');
          }
          await this.uploads.take(tx, uploadKeys);

          const patientId = await this.repos.cases.upsertPatient(tx, input.patientKey.trim());
          const studyId = studyUid ? await this.studyFor(tx, studyUid, patientId) : null;
          const fields = {
            externalId: input.externalId ?? null,
            patientId,
            studyId,
            seriesInstanceUid: input.seriesInstanceUid ?? dicom?.seriesInstanceUid ?? null,
            malignancy: input.malignancy ?? null,
            malignancyClass: input.malignancyClass ?? (input.malignancy != null ? classOfMalignancy(input.malignancy) : null),
            diameterMm: input.diameterMm ?? null,
            findings: (input.findings ?? null) as never,
          };
          // The case row is locked before its old slices are touched: deleteCase locks it first too,
          // so the two wait for each other instead of deadlocking (issue 13, item 9).
          const existing = input.externalId ? await this.repos.cases.lockByExternalId(tx, input.externalId) : null;
          // An externalId names one nodule of one patient: a re-ingest under another patient key
          // is refused rather than moving the case (a mistyped key would rewrite another patient's).
          if (existing && existing.patientId !== patientId) {
            throw new BadInputError(
              `externalId "${input.externalId}" is stored under another patient key; a case keeps its patient. Use another externalId, or deleteCase the stored one first`,
            );
          }
          let caseId: number;
          if (existing != null) {
            caseId = existing.id;
            oldKeys = (await this.repos.slices.findByCaseIds([caseId], tx)).map((s) => s.imageKey);
            await this.repos.slices.deleteByCase(tx, caseId);
            await this.repos.objectDeletions.schedule(oldKeys, 0, tx);
            await this.repos.reports.deleteByCase(tx, caseId);
            await this.repos.cases.replace(tx, caseId, fields);
          } else {
            caseId = await this.repos.cases.create(tx, fields);
          }
          const sliceIds = await this.repos.slices.createMany(
            tx,
            caseId,
            slices.map((s, i) => ({ offset: s.offset, sopInstanceUid: s.dicom?.sopInstanceUid ?? null, imageKey: keys[i]! })),
          );
          await this.repos.codes.upsert(
            tx,
            version.id,
            slices.map((s: PreparedSlice, i) => ({ sliceId: sliceIds[i]!, caseId, offset: s.offset, ...codes[i]! })),
          );
          if (input.report) {
            await this.repos.reports.create(
              {
                caseId,
                studyId,
                text: input.report.text,
                impression: input.report.impression ?? null,
                author: input.report.author ?? null,
                issuedAt: input.report.issuedAt ?? null,
              },
              tx,
            );
          }
          return caseId;
        },
        { timeout: 60_000, maxWait: 30_000, retryOnDeadlock: true },
      );
      await this.janitor.discard(oldKeys);
      return caseId;
    } catch (err) {
      await this.janitor.discard(keys);
      throw err;
    }
  }

  private async studyFor(tx: Transaction, studyInstanceUid: string, patientId: number): Promise<number> {
    const study = await this.repos.cases.findStudyByUid(studyInstanceUid, tx);
    if (!study) return this.repos.cases.createStudy(tx, studyInstanceUid, patientId);
    if (study.patientId !== patientId) {
      throw new BadInputError(`study ${studyInstanceUid} belongs to another patient key; a study has one patient`);
    }
    return study.id;
  }
}
