/**
 * centres.csv (the DICOM folder importer's list, one row per nodule) through the row reader it
 * shares with the PACS list: a bad row goes on the problems list with its reason and the rest are
 * imported; a file without the columns it needs is refused as a whole.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { readCentresCsv } from '../../src/cli/import-sources.ts';

function csvIn(dir: string, lines: string[]): string {
  const file = path.join(dir, 'centres.csv');
  fs.writeFileSync(file, lines.join('\n'));
  return file;
}

test('centres.csv: good rows become cases, each bad row a problem with its reason', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'centres-'));
  try {
    const file = csvIn(dir, [
      'case_id,patient_key,series_dir,center_instance,center_file,center_x,center_y,malignancy,diameter_mm',
      'c1,PSEUDO-1,s1,12,,40,41,4,9.5',
      'c2,PSEUDO-2,s2,,mid.dcm,,,,',
      ',PSEUDO-3,s3,1,,,,,',
      'c1,PSEUDO-4,s4,1,,,,,',
      'c5,,s5,1,,,,,',
      'c6,PSEUDO-6,s6,,,,,,',
      'c7,PSEUDO-7,s7,1.5,,,,,',
      'c8,PSEUDO-8,../outside,1,,,,,',
    ]);
    const plan = await readCentresCsv(dir, file, 1);
    assert.deepEqual(plan.cases.map((c) => c.externalId), ['c1', 'c2']);
    assert.deepEqual(plan.cases[0]!.series, { dir: path.join(dir, 's1'), centreInstance: 12, centreFile: undefined, centerX: 40, centerY: 41 });
    assert.equal(plan.cases[0]!.malignancy, 4);
    assert.equal(plan.cases[1]!.series!.centreFile, 'mid.dcm');
    assert.deepEqual(plan.problems.map((p) => p.id), ['line 4', 'c1', 'c5', 'c6', 'c7', 'c8']);
    const reasons = plan.problems.map((p) => p.reason);
    assert.match(reasons[0]!, /case_id is empty/);
    assert.match(reasons[1]!, /appears twice/);
    assert.match(reasons[2]!, /patient_key is empty/);
    assert.match(reasons[3]!, /give center_instance or center_file/);
    assert.match(reasons[4]!, /not an integer/);
    assert.match(reasons[5]!, /leaves the import folder/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('centres.csv without a centre column, or without series_dir, is refused as a whole', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'centres-'));
  try {
    await assert.rejects(readCentresCsv(dir, csvIn(dir, ['case_id,patient_key,series_dir', 'c1,P,s1']), 1), /needs a center_instance or a center_file column/);
    await assert.rejects(readCentresCsv(dir, csvIn(dir, ['case_id,patient_key,center_instance', 'c1,P,1']), 1), /no "series_dir" column/);
    await assert.rejects(readCentresCsv(dir, csvIn(dir, ['case_id,patient_key,series_dir,center_instance', 'c1,P,s1,1']), 40), /--context must be 0 to/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
