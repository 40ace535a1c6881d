/**
 * Pseudonymous patient keys for cases imported from the PACS without an explicit patientKey:
 * a keyed hash (HMAC-SHA256) of the DICOM PatientID with a server secret. The PatientID itself is
 * never stored or logged; without the secret the key cannot be tested against guessed IDs (a
 * plain hash of a medical record number could be reversed by enumeration).
 *
 * The secret: `FCDN_PATIENT_KEY_SECRET` (at least 32 characters, the same on every replica, so
 * that one patient gets one key); required when FCDN_API_KEYS is configured or the database is a
 * shared Postgres (DATABASE_URL: an API, a bulk import from another data folder, a replica must all
 * derive the same key, or one patient gets several and excludeSamePatient stops working); else (the
 * embedded default) made in the data folder as `patient-key-secret` beside the admin key and URL
 * secret, and kept across restarts. Changing it gives every patient new keys: keep it as long as the data.
 */
import crypto from 'node:crypto';
import { dataFolderSecret, MIN_SECRET_LENGTH, type ServerSecret } from './url-secret.ts';
import { ConfigError } from '../errors.ts';

export function patientKeySecret(opts: { configured?: string; keysConfigured: boolean; sharedDatabase: boolean; dataDir: string }): ServerSecret {
  if (opts.configured !== undefined) {
    if (opts.configured.length < MIN_SECRET_LENGTH) throw new ConfigError(`FCDN_PATIENT_KEY_SECRET must be at least ${MIN_SECRET_LENGTH} characters (for example the output of: openssl rand -hex 32)`);
    return { secret: opts.configured, source: 'environment' };
  }
  if (opts.keysConfigured || opts.sharedDatabase) {
    throw new ConfigError(
      `FCDN_PATIENT_KEY_SECRET must be set when FCDN_DICOMWEB_URL is configured with ${opts.keysConfigured ? 'FCDN_API_KEYS' : 'a Postgres DATABASE_URL'}: ` +
        'importFromPacs derives pseudonymous patient keys with it, and every process using the database needs the same value ' +
        '(for example the output of: openssl rand -hex 32).',
    );
  }
  return dataFolderSecret(opts.dataDir, 'patient-key-secret');
}

export class PatientKeyHasher {
  constructor(private readonly secret: string) {}

  /** `pk-` and 32 hex digits (128 bits) of HMAC-SHA256(secret, PatientID). */
  keyOf(patientId: string): string {
    return `pk-${crypto.createHmac('sha256', this.secret).update(patientId.trim(), 'utf8').digest('hex').slice(0, 32)}`;
  }
}
