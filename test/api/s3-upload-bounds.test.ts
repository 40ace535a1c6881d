/**
 * Issue 13, item 5: presigned S3 uploads were unbounded and outlived their row.
 *  - The presigned PUT binds no Content-Length, so a client can store far more than it declared;
 *    resolve() read the whole object into memory before comparing its size with the declared one.
 *    Now the store is asked for the size first (HEAD), an object larger than declared is refused
 *    without being read, and a read stops once past the bound.
 *  - A presigned URL stays valid after its upload was taken by an ingest (or expired and was
 *    swept): a PUT then leaves an object under uploads/ that no row names and no sweeper found.
 *    Now the upload sweeper also removes uploads/ objects without a row.
 * Against s3rver on loopback (S3 protocol; s3rver checks no signatures).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { makePhantomPng } from '../../fixtures/phantoms.ts';
import { databaseLabel } from '../../fixtures/test-database.ts';
import { startS3rver, type RunningS3rver } from '../../scripts/start-s3rver.ts';
import type { ObjectStore } from '../../src/storage/object-store.ts';
import { startTestService, type TestService } from '../../fixtures/test-service.ts';

const CREATE = 'mutation ($t: String!, $n: Int!) { createSliceUpload(contentType: $t, byteLength: $n) { key url method headers { name value } } }';
const INGEST = 'mutation ($input: IngestCaseInput!) { ingestCase(input: $input) { id } }';
const png = makePhantomPng({ seed: 12, size: 64, diameterPx: 14 });

let s3: RunningS3rver;
let svc: TestService;
/** Largest buffer the service got back from a GET of an uploads/ object. */
let largestUploadRead = 0;

function measuring(store: ObjectStore): ObjectStore {
  return {
    kind: store.kind,
    put: (k, b, t) => store.put(k, b, t),
    delete: (k) => store.delete(k),
    exists: (k) => store.exists(k),
    list: (p) => store.list(p),
    presignedPutUrl: store.presignedPutUrl?.bind(store),
    presignedGetUrl: store.presignedGetUrl?.bind(store),
    async get(key, ...rest) {
      const body = await store.get(key, ...rest);
      if (key.startsWith('uploads/')) largestUploadRead = Math.max(largestUploadRead, body.length);
      return body;
    },
  };
}

before(async () => {
  s3 = await startS3rver();
  svc = await startTestService({
    env: { S3_ENDPOINT: s3.endpoint, S3_ACCESS_KEY: s3.accessKey, S3_SECRET_KEY: s3.secretKey, S3_BUCKET: 'fcdn-upload-bounds', FCDN_UPLOAD_SWEEP_MS: '200' },
    overrides: { wrapStore: measuring },
  });
});
after(async () => {
  await svc?.stop();
  await s3?.close();
});

async function createUpload(bytes: number): Promise<{ key: string; url: string; headers: { name: string; value: string }[] }> {
  const res = await svc.gql(CREATE, { t: 'image/png', n: bytes }, 'writer');
  assert.equal(res.errors, undefined, JSON.stringify(res.errors));
  return res.data.createSliceUpload;
}

async function put(upload: { url: string; headers: { name: string; value: string }[] }, body: Buffer): Promise<void> {
  const res = await fetch(upload.url, { method: 'PUT', headers: Object.fromEntries(upload.headers.map((h) => [h.name, h.value])), body: new Uint8Array(body) });
  assert.equal(res.status, 200, await res.text());
}

test(`an uploaded object larger than declared is refused without being read (s3rver, ${databaseLabel})`, async () => {
  const upload = await createUpload(png.length);
  // The presigned PUT binds no length: S3 stores what the client sends.
  const big = Buffer.concat([png, Buffer.alloc(20 * 1024 * 1024, 7)]);
  await put(upload, big);
  largestUploadRead = 0;
  const res = await svc.gql(INGEST, { input: { patientKey: 'PSEUDO-B1', externalId: 'bound-1', images: [{ data: '', uploadKey: upload.key }] } }, 'writer');
  assert.equal(res.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT', JSON.stringify(res.errors));
  assert.match(res.errors![0]!.message, new RegExp(`holds ${big.length} bytes; createSliceUpload declared ${png.length}`));
  assert.ok(largestUploadRead <= png.length, `the service read ${largestUploadRead} bytes of an upload declared as ${png.length}`);

  // The declared size still goes through.
  const ok = await createUpload(png.length);
  await put(ok, png);
  const ingest = await svc.gql(INGEST, { input: { patientKey: 'PSEUDO-B2', externalId: 'bound-2', images: [{ data: '', uploadKey: ok.key }] } }, 'writer');
  assert.equal(ingest.errors, undefined, JSON.stringify(ingest.errors));
});

test(`an object PUT to an upload URL after its upload was used is swept; a live upload's is kept (s3rver, ${databaseLabel})`, async () => {
  const used = await createUpload(png.length);
  await put(used, png);
  const ingest = await svc.gql(INGEST, { input: { patientKey: 'PSEUDO-B3', externalId: 'bound-3', images: [{ data: '', uploadKey: used.key }] } }, 'writer');
  assert.equal(ingest.errors, undefined, JSON.stringify(ingest.errors));
  assert.equal(await svc.service.store.exists(used.key), false, 'the ingest removed its upload object');
  // The presigned URL is still valid: a second PUT stores an object no row names.
  await put(used, png);
  const live = await createUpload(png.length);
  await put(live, png);

  const deadline = Date.now() + 15_000;
  while (await svc.service.store.exists(used.key)) {
    if (Date.now() > deadline) assert.fail(`the object ${used.key}, PUT after its upload was used, is still in the bucket after 15 s of sweeps every 200 ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(await svc.service.store.exists(live.key), 'the sweeper removed the object of a live upload');
});
