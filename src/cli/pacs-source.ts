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
import fs from 'node:fs/promises';
import { parseCsv } from './csv.ts';
import { checkPacsNodule } from '../pacs/pacs-nodule.ts';
import { diameterOf, malignancyOf, optionalNumber, type ImportCase, type ImportPlan, type ImportProblem } from './import-sources.ts';

const REQUIRED = ['case_id', 'study_instance_uid', 'series_instance_uid', 'sop_instance_uid', 'center_x', 'center_y'];

export async function readPacsCsv(csvFile: string): Promise<ImportPlan> {
  const { header, rows } = parseCsv(await fs.readFile(csvFile, 'utf8'));
  for (const required of REQUIRED) {
    if (!header.includes(required)) throw new Error(`${csvFile}: no "${required}" column (columns: ${header.join(', ')})`);
  }
  const cases: ImportCase[] = [];
  const problems: ImportProblem[] = [];
  const seen = new Set<string>();
  for (const row of rows) {
    const v = row.values;
    const id = v.case_id || `line ${row.line}`;
    try {
      if (!v.case_id) throw new Error('case_id is empty');
      if (seen.has(v.case_id)) throw new Error('case_id appears twice');
      seen.add(v.case_id);
      const pacs = {
        studyInstanceUid: v.study_instance_uid ?? '',
        seriesInstanceUid: v.series_instance_uid ?? '',
        sopInstanceUid: v.sop_instance_uid ?? '',
        centerX: optionalNumber(v.center_x, 'center_x', () => true) ?? Number.NaN,
        centerY: optionalNumber(v.center_y, 'center_y', () => true) ?? Number.NaN,
        neighbours: optionalNumber(v.neighbours, 'neighbours', () => true) ?? 1,
      };
      checkPacsNodule(pacs, 'row');
      const c: ImportCase = {
        externalId: v.case_id,
        // Empty: derived from the PACS PatientID at import (PacsService).
        patientKey: v.patient_key ?? '',
        malignancy: malignancyOf(v.malignancy),
        diameterMm: diameterOf(v.diameter_mm),
        findings: null,
        slices: [],
        pacs,
      };
      cases.push(c);
    } catch (err) {
      problems.push({ id, reason: (err as Error).message });
    }
  }
  return { cases, problems };
}

/** The resume hash of a PACS row: everything that makes the case, no fetch needed. */
export function pacsCaseHash(c: ImportCase): string {
  return crypto.createHash('sha256').update(JSON.stringify(['pacs', c.pacs, c.patientKey, c.malignancy, c.diameterMm, c.findings])).digest('hex');
}
