/** The small parts of the PACS path: viewer links, pseudonymous patient keys, the bulk CSV. */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { PatientKeyHasher, patientKeySecret } from '../../src/auth/patient-keys.ts';
import { pacsCaseHash, readPacsCsv } from '../../src/cli/pacs-source.ts';
import { ConfigError } from '../../src/errors.ts';
import { checkViewerUrlTemplate, ViewerLinks } from '../../src/services/viewer-links.ts';

test('viewer links: placeholders filled and URL-encoded; no link when a named UID is missing; bad templates refused at start', () => {
  const links = new ViewerLinks('https://viewer.example/viewer?StudyInstanceUIDs={studyInstanceUid}&initialSopInstanceUid={sopInstanceUid}');
  assert.equal(links.forCase({ studyInstanceUid: '1.2.3', sopInstanceUid: '1.2.3.4' }), 'https://viewer.example/viewer?StudyInstanceUIDs=1.2.3&initialSopInstanceUid=1.2.3.4');
  assert.equal(links.forCase({ studyInstanceUid: '1.2.3' }), null);
  assert.equal(links.names('sopInstanceUid'), true);
  assert.equal(links.names('seriesInstanceUid'), false);
  assert.equal(new ViewerLinks('https://v.example/?s={studyInstanceUid}').forCase({ studyInstanceUid: 'a&b=c' }), 'https://v.example/?s=a%26b%3Dc');
  assert.equal(new ViewerLinks(undefined).forCase({ studyInstanceUid: '1.2' }), null);
  assert.equal(checkViewerUrlTemplate('http://ohif.local/viewer?StudyInstanceUIDs={studyInstanceUid}'), 'http://ohif.local/viewer?StudyInstanceUIDs={studyInstanceUid}');
  for (const bad of ['https://v.example/?s={patientId}&t={studyInstanceUid}', 'https://v.example/?s=1', 'viewer?StudyInstanceUIDs={studyInstanceUid}', 'javascript:alert(1)//{studyInstanceUid}']) {
    assert.throws(() => checkViewerUrlTemplate(bad), ConfigError, bad);
  }
});

test('patient keys: HMAC-SHA256 of PatientID with the server secret; the secret from the environment, required with API keys, else kept in the data folder', () => {
  const secret = 'x'.repeat(40);
  const key = new PatientKeyHasher(secret).keyOf('MRN-123');
  assert.equal(key, `pk-${crypto.createHmac('sha256', secret).update('MRN-123').digest('hex').slice(0, 32)}`);
  assert.notEqual(new PatientKeyHasher('y'.repeat(40)).keyOf('MRN-123'), key, 'another secret, another key');
  assert.equal(new PatientKeyHasher(secret).keyOf(' MRN-123 '), key, 'padding is not part of the ID');

  assert.equal(patientKeySecret({ configured: secret, keysConfigured: true, sharedDatabase: true, dataDir: '/nonexistent' }).secret, secret);
  assert.throws(() => patientKeySecret({ configured: 'short', keysConfigured: false, sharedDatabase: false, dataDir: '/nonexistent' }), /at least 32 characters/);
  assert.throws(() => patientKeySecret({ keysConfigured: true, sharedDatabase: false, dataDir: '/nonexistent' }), /FCDN_PATIENT_KEY_SECRET must be set .*FCDN_API_KEYS/);
  // A shared Postgres: every process (API, a bulk import from another data folder) must derive the same keys.
  assert.throws(() => patientKeySecret({ keysConfigured: false, sharedDatabase: true, dataDir: '/nonexistent' }), /FCDN_PATIENT_KEY_SECRET must be set .*DATABASE_URL/);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcdn-pk-'));
  try {
    const made = patientKeySecret({ keysConfigured: false, sharedDatabase: false, dataDir: dir });
    assert.equal(made.created, true);
    assert.equal(fs.statSync(path.join(dir, 'patient-key-secret')).mode & 0o777, 0o600);
    assert.equal(patientKeySecret({ keysConfigured: false, sharedDatabase: false, dataDir: dir }).secret, made.secret, 'kept across restarts');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('bulk PACS CSV: rows become cases, bad rows become problems; the resume hash covers the whole row', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcdn-pacs-csv-'));
  try {
    const file = path.join(dir, 'nodules.csv');
    fs.writeFileSync(file, [
      'case_id,study_instance_uid,series_instance_uid,sop_instance_uid,center_x,center_y,neighbours,patient_key,malignancy,diameter_mm',
      'n1,1.2.3,1.2.3.4,1.2.3.4.5,40,41,2,,4,9.5',
      'n2,1.2.3,1.2.3.4,1.2.3.4.6,10.5,11,,PSEUDO-9,,',
      'n3,1.2.x,1.2.3.4,1.2.3.4.7,1,1,,,,',
      'n4,1.2.3,1.2.3.4,1.2.3.4.8,1,1,5,,,',
      'n1,1.2.3,1.2.3.4,1.2.3.4.9,1,1,,,,',
      'n5,1.2.3,1.2.3.4,1.2.3.4.9,,1,,,,',
    ].join('\n'));
    const plan = await readPacsCsv(file);
    assert.deepEqual(plan.cases.map((c) => c.externalId), ['n1', 'n2']);
    assert.deepEqual(plan.cases[0]!.pacs, { studyInstanceUid: '1.2.3', seriesInstanceUid: '1.2.3.4', sopInstanceUid: '1.2.3.4.5', centerX: 40, centerY: 41, neighbours: 2 });
    assert.equal(plan.cases[0]!.patientKey, '');
    assert.equal(plan.cases[0]!.malignancy, 4);
    assert.equal(plan.cases[1]!.patientKey, 'PSEUDO-9');
    assert.equal(plan.cases[1]!.pacs!.neighbours, 1);
    assert.deepEqual(plan.problems.map((p) => p.id), ['n3', 'n4', 'n1', 'n5']);
    assert.match(plan.problems[0]!.reason, /not a DICOM UID/);
    assert.match(plan.problems[1]!.reason, /neighbours must be an integer from 0 to 2/);
    assert.match(plan.problems[2]!.reason, /appears twice/);
    assert.match(plan.problems[3]!.reason, /centerX must be a finite number/);
    const h = pacsCaseHash(plan.cases[0]!);
    assert.equal(pacsCaseHash({ ...plan.cases[0]! }), h);
    assert.notEqual(pacsCaseHash({ ...plan.cases[0]!, pacs: { ...plan.cases[0]!.pacs!, centerX: 40.5 } }), h);
    assert.notEqual(pacsCaseHash({ ...plan.cases[0]!, malignancy: 5 }), h);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
