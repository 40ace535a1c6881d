/**
 * `npm run import -- --pacs nodules.csv`: nodules named by UIDs and a point, fetched from the
 * configured PACS over DICOMweb (FCDN_DICOMWEB_URL) and imported as importFromPacs does. Columns:
 *
 *   case_id, study_instance_uid, series_instance_uid, sop_instance_uid, center_x, center_y   (required)
 *   neighbours (0-2, default 1), patient_key (default: keyed hash of the PACS PatientID),
 *   malignancy (1-5), diameter_mm
 *
 * Resume: a row is a case's whole description (UIDs name immutable instances), so its hash is
 * taken from the row itself: a stored case with the same hash is skipped without any fetch.
 */
import crypto from 'node:crypto';
import { checkPacsNodule } from '../pacs/pacs-nodule.ts';
import { diameterOf, malignancyOf, optionalNumber, readCaseRows, type ImportCase, type ImportPlan } from './import-sources.ts';

const REQUIRED = ['case_id', 'study_instance_uid', 'series_instance_uid', 'sop_instance_uid', 'center_x', 'center_y'];

export function readPacsCsv(csvFile: string): Promise<ImportPlan> {
  return readCaseRows(csvFile, REQUIRED, (v) => {
    const pacs = {
      studyInstanceUid: v.study_instance_uid ?? '',
      seriesInstanceUid: v.series_instance_uid ?? '',
      sopInstanceUid: v.sop_instance_uid ?? '',
      centerX: optionalNumber(v.center_x, 'center_x', () => true) ?? Number.NaN,
      centerY: optionalNumber(v.center_y, 'center_y', () => true) ?? Number.NaN,
      neighbours: optionalNumber(v.neighbours, 'neighbours', () => true) ?? 1,
    };
    checkPacsNodule(pacs, 'row');
    return {
      externalId: v.case_id!,
      // Empty: derived from the PACS PatientID at import (PacsService).
      patientKey: v.patient_key ?? '',
      malignancy: malignancyOf(v.malignancy),
      diameterMm: diameterOf(v.diameter_mm),
      findings: null,
      slices: [],
      pacs,
    };
  });
}

/** The resume hash of a PACS row: everything that makes the case, no fetch needed. */
export function pacsCaseHash(c: ImportCase): string {
  return crypto.createHash('sha256').update(JSON.stringify(['pacs', c.pacs, c.patientKey, c.malignancy, c.diameterMm, c.findings])).digest('hex');
}
