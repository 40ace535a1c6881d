/**
 * The secret that signs image URLs (`Slice.imageUrl`) and the embedded store's upload URLs.
 * It is never derived from the API keys: a leaked signed URL would then let anyone test guesses
 * of the keys offline, the admin key included (issue 13, item 7).
 *
 *  - `FCDN_URL_SECRET` set: it signs (at least 32 characters; the same value on every replica).
 *  - `FCDN_API_KEYS` configured and no `FCDN_URL_SECRET`: the start is refused. Keys from the
 *    environment are what a deployment of several replicas shares, so the secret must come from
 *    there too; a secret made per data folder would differ between replicas and their URLs would
 *    fail on each other.
 *  - neither (the embedded default): a random secret is made in the data folder beside the
 *    generated admin key (`url-secret`, mode 0600) and kept across restarts.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../errors.ts';

export const MIN_SECRET_LENGTH = 32;
export const MIN_URL_SECRET_LENGTH = MIN_SECRET_LENGTH;

/** A server secret (URL signing, patient keys): from the environment, or made once in the data folder. */
export interface ServerSecret {
  secret: string;
  source: 'environment' | 'data folder';
  /** The file, when it came from the data folder; created: made by this call. */
  file?: string;
  created?: boolean;
}
export type UrlSecret = ServerSecret;

export function urlSigningSecret(opts: { configured?: string; keysConfigured: boolean; dataDir: string }): UrlSecret {
  if (opts.configured !== undefined) {
    if (opts.configured.length < MIN_URL_SECRET_LENGTH) {
      throw new ConfigError(`FCDN_URL_SECRET must be at least ${MIN_URL_SECRET_LENGTH} characters (for example the output of: openssl rand -hex 32)`);
    }
    return { secret: opts.configured, source: 'environment' };
  }
  if (opts.keysConfigured) {
    throw new ConfigError(
      'FCDN_URL_SECRET must be set when FCDN_API_KEYS is configured: it signs image and upload URLs, and every replica needs ' +
        'the same value (for example the output of: openssl rand -hex 32). It is no longer derived from the API keys.',
    );
  }
  return dataFolderSecret(opts.dataDir, 'url-secret');
}

/** The secret in dataDir/name (mode 0600), made there at the first start; every process of the folder shares it. */
export function dataFolderSecret(dataDir: string, name: string): ServerSecret {
  const file = path.join(dataDir, name);
  const read = (): ServerSecret | null => {
    if (!fs.existsSync(file)) return null;
    const secret = fs.readFileSync(file, 'utf8').trim();
    if (secret.length < MIN_URL_SECRET_LENGTH) throw new ConfigError(`${file} holds a secret shorter than ${MIN_URL_SECRET_LENGTH} characters; remove it and restart to make a new one`);
    return { secret, source: 'data folder', file, created: false };
  };
  const existing = read();
  if (existing) return existing;
  fs.mkdirSync(dataDir, { recursive: true });
  const secret = crypto.randomBytes(32).toString('base64url');
  // Written whole under a private name, then linked into place: a process starting at the same
  // moment sees either no file or the complete secret, never an empty one.
  const draft = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}`;
  fs.writeFileSync(draft, `${secret}\n`, { mode: 0o600, flag: 'wx' });
  try {
    fs.linkSync(draft, file);
  } catch (err) {
    // Another process of the same data folder made it first: use theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return read()!;
    throw err;
  } finally {
    fs.rmSync(draft, { force: true });
  }
  return { secret, source: 'data folder', file, created: true };
}
