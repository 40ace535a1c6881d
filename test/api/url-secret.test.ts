/**
 * Issue 13, item 7: the secret that signs image (and upload) URLs is not derived from the API
 * keys. Before, it was sha256("image-urls:" + the sorted keys), so one leaked signed URL let anyone
 * test guesses of the keys offline, the admin key included. Now:
 *  - FCDN_URL_SECRET, when set (at least 32 characters), signs;
 *  - with FCDN_API_KEYS configured and no FCDN_URL_SECRET the service refuses to start: such a
 *    deployment may run several replicas, which must all sign with the same secret;
 *  - with no keys configured (the embedded default, one data folder) a random secret is made in
 *    the data folder beside the generated admin key, and kept across restarts.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { phantomSlices } from '../../fixtures/phantom-cases.ts';
import { createTestDatabase, databaseLabel } from '../../fixtures/test-database.ts';
import { KEYS, startTestService, type TestService } from '../../fixtures/test-service.ts';

const keyDerived = (keys: string[]) => crypto.createHash('sha256').update(`image-urls:${[...keys].sort().join(',')}`).digest('hex');

/** Ingests one slice and returns its image URL's (sliceId, expires, sig). */
async function signedUrl(svc: TestService, role: 'admin' | null = 'admin', bearer?: string) {
  const body = JSON.stringify({
    query: 'mutation ($i: IngestCaseInput!) { ingestCase(input: $i) { slices { imageUrl } } }',
    variables: { i: { patientKey: 'P-url', images: phantomSlices({ seed: 5, diameterPx: 8, slices: 1 }) } },
  });
  const res = bearer
    ? await fetch(`${svc.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${bearer}` }, body }).then((r) => r.json() as Promise<any>)
    : await svc.gql(JSON.parse(body).query, JSON.parse(body).variables, role);
  assert.equal(res.errors, undefined, JSON.stringify(res.errors));
  const url = new URL(res.data.ingestCase.slices[0].imageUrl);
  return { sliceId: Number(/\/images\/slices\/(\d+)\.png$/.exec(url.pathname)![1]), expires: url.searchParams.get('expires')!, sig: url.searchParams.get('sig')! };
}

const hmac = (secret: string, u: { sliceId: number; expires: string }) => crypto.createHmac('sha256', Buffer.from(secret)).update(`${u.sliceId}.${u.expires}`).digest('base64url');

test(`configured API keys without FCDN_URL_SECRET: the service refuses to start (${databaseLabel})`, async () => {
  const db = await createTestDatabase();
  let svc: TestService | undefined;
  try {
    await assert.rejects(
      (async () => (svc = await startTestService({ db, env: { FCDN_URL_SECRET: '' } })))(),
      /FCDN_URL_SECRET/,
    );
  } finally {
    await svc?.stop({ dropDatabase: false });
    await db.close();
  }
});

test(`embedded keys: a random URL secret in the data folder, kept across restarts, not derived from the key (${databaseLabel})`, async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcdn-url-secret-'));
  const db = await createTestDatabase();
  try {
    let svc = await startTestService({ db, dataDir, env: { FCDN_API_KEYS: '', FCDN_URL_SECRET: '' } });
    const adminKey = svc.service.adminKey!;
    const first = await signedUrl(svc, null, adminKey);
    assert.notEqual(first.sig, hmac(keyDerived([adminKey]), first), 'the signature is made with a secret derived from the admin key');
    const file = path.join(dataDir, 'url-secret');
    assert.ok(fs.existsSync(file), 'the secret is kept in the data folder');
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    const secret = fs.readFileSync(file, 'utf8').trim();
    assert.ok(secret.length >= 43, 'at least 256 random bits');
    assert.equal(first.sig, hmac(secret, first));
    await svc.stop({ dropDatabase: false });

    svc = await startTestService({ db, dataDir, env: { FCDN_API_KEYS: '', FCDN_URL_SECRET: '' } });
    const again = await signedUrl(svc, null, adminKey);
    assert.equal(again.sig, hmac(secret, again), 'the same secret after a restart');
    await svc.stop({ dropDatabase: false });
  } finally {
    await db.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});

test(`FCDN_URL_SECRET signs when set; a short one is refused (${databaseLabel})`, async () => {
  const db = await createTestDatabase();
  let svc: TestService | undefined;
  try {
    await assert.rejects(
      (async () => (svc = await startTestService({ db, env: { FCDN_URL_SECRET: 'too-short' } })))(),
      /FCDN_URL_SECRET .*at least 32/,
    );
    const secret = crypto.randomBytes(32).toString('hex');
    svc = await startTestService({ db, env: { FCDN_URL_SECRET: secret } });
    const u = await signedUrl(svc);
    assert.equal(u.sig, hmac(secret, u));
    assert.notEqual(u.sig, hmac(keyDerived(Object.values(KEYS)), u));
  } finally {
    await svc?.stop({ dropDatabase: false });
    await db.close();
  }
});
