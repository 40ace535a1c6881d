/**
 * API keys and roles (reader < writer < admin). Keys come from FCDN_API_KEYS; with none
 * configured, an admin key is made once in the data folder and printed at start, so the service
 * never runs open. Keys are compared in constant time over their SHA-256 digests and never logged.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ForbiddenError, UnauthenticatedError } from '../errors.ts';

export type Role = 'reader' | 'writer' | 'admin';
export const ROLES: readonly Role[] = ['reader', 'writer', 'admin'];

/** One configured key (FCDN_API_KEYS: `role:key` pairs). */
export interface ApiKey {
  role: Role;
  key: string;
}

const RANK: Record<Role, number> = { reader: 1, writer: 2, admin: 3 };

export interface Caller {
  role: Role;
}

function digest(key: string): Buffer {
  return crypto.createHash('sha256').update(key).digest();
}

export class ApiKeyRing {
  private readonly entries: { role: Role; digest: Buffer }[];

  constructor(keys: readonly ApiKey[]) {
    if (keys.length === 0) throw new Error('at least one API key is needed');
    this.entries = keys.map((k) => ({ role: k.role, digest: digest(k.key) }));
  }

  /** The caller behind an Authorization header; every stored key is compared, match or not. */
  authenticate(authorization: string | undefined): Caller {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    if (!match) throw new UnauthenticatedError('send an API key as "Authorization: Bearer <key>"');
    const presented = digest(match[1]!);
    let role: Role | null = null;
    for (const entry of this.entries) {
      if (crypto.timingSafeEqual(entry.digest, presented) && (!role || RANK[entry.role] > RANK[role])) role = entry.role;
    }
    if (!role) throw new UnauthenticatedError('the API key is not valid');
    return { role };
  }
}

export function requireRole(caller: Caller, needed: Role): void {
  if (RANK[caller.role] < RANK[needed]) throw new ForbiddenError(`this operation needs the ${needed} role; your key has ${caller.role}`);
}

/** The admin key of an installation without configured keys: made once, kept in the data folder. */
export function embeddedAdminKey(dataDir: string): { key: string; file: string; created: boolean } {
  const file = path.join(dataDir, 'admin-api-key');
  if (fs.existsSync(file)) return { key: fs.readFileSync(file, 'utf8').trim(), file, created: false };
  fs.mkdirSync(dataDir, { recursive: true });
  const key = `fcdn_admin_${crypto.randomBytes(24).toString('base64url')}`;
  fs.writeFileSync(file, `${key}\n`, { mode: 0o600, flag: 'wx' });
  return { key, file, created: true };
}
