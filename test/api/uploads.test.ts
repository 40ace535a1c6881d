/**
 * Large uploads: a PACS client asks for an upload URL, PUTs a slice image there, and names the
 * key in ingestCase instead of sending base64. On the embedded store the URL is the service's own
 * signed /uploads URL; on S3 it is a presigned PUT URL (tested against s3rver).
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { makePhantomDicom, makePhantomPng } from '../../fixtures/phantoms.ts';
import { startS3rver, type RunningS3rver } from '../../scripts/start-s3rver.ts';
import { createTestDatabase, databaseLabel } from '../../fixtures/test-database.ts';
import { phantomSlices } from '../../fixtures/phantom-cases.ts';
import { startTestService, type TestService } from '../../fixtures/test-service.ts';

const CREATE = `mutation ($t: String!, $n: Int!) { createSliceUpload(contentType: $t, byteLength: $n) { key url method headers { name value } expiresAt } }`;
const INGEST = 'mutation ($input: IngestCaseInput!) { ingestCase(input: $input) { id externalId slices { offset imageUrl } } }';
const SEARCH = 'query ($input: SimilarCasesInput!) { similarCases(input: $input) { hits { rank } } }';

interface Upload {
  key: string;
  url: string;
  method: string;
  headers: { name: string; value: string }[];
  expiresAt: string;
}

const png = makePhantomPng({ seed: 11, size: 64, diameterPx: 14 });

async function createUpload(svc: TestService, bytes: Buffer, role: 'writer' | 'reader' = 'writer'): Promise<Upload> {
  const res = await svc.gql(CREATE, { t: 'image/png', n: bytes.length }, role);
  assert.equal(res.errors, undefined, JSON.stringify(res.errors));
  return res.data.createSliceUpload;
}

async function put(upload: Upload, body: Buffer, url = upload.url): Promise<Response> {
  const headers = Object.fromEntries(upload.headers.map((h) => [h.name, h.value]));
  return fetch(url, { method: upload.method, headers, body: new Uint8Array(body) });
}

async function count(svc: TestService, table: string): Promise<number> {
  return (await svc.db.raw.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`))[0]!.n;
}

describe(`uploads on the embedded filesystem store (${databaseLabel})`, () => {
  let svc: TestService;
  before(async () => {
    // S3_ENDPOINT '' keeps the filesystem store even in CI's S3 run; a short sweep interval for the expiry story.
    svc = await startTestService({ env: { S3_ENDPOINT: '', FCDN_UPLOAD_SWEEP_MS: '200' } });
  });
  after(async () => svc?.stop());

  test('a writer uploads a slice to the signed URL and ingests it by key; the upload is removed afterwards', async () => {
    const upload = await createUpload(svc, png);
    assert.match(upload.key, /^uploads\/[0-9a-f-]{36}$/);
    assert.ok(upload.url.startsWith(`${svc.url}/uploads/`), upload.url);
    assert.equal(upload.method, 'PUT');
    assert.ok(new Date(upload.expiresAt).getTime() > Date.now() + 3000_000, 'an hour by default');

    const res = await put(upload, png);
    assert.equal(res.status, 200, await res.text());
    assert.ok(await svc.service.store.exists(upload.key));

    // One slice by key, two inline: both kinds mix in one case.
    const inline = phantomSlices({ seed: 11, diameterPx: 14 }).filter((s) => s.offset !== 0);
    const ingest = await svc.gql(INGEST, { input: { patientKey: 'PSEUDO-U1', externalId: 'by-upload', images: [{ data: '', uploadKey: upload.key, offset: 0 }, ...inline] } }, 'writer');
    assert.equal(ingest.errors, undefined, JSON.stringify(ingest.errors));
    assert.deepEqual(ingest.data.ingestCase.slices.map((s: { offset: number }) => s.offset).sort(), [-1, 0, 1]);

    // The case's centre slice is the uploaded image, stored under the case's own key.
    const centre = ingest.data.ingestCase.slices.find((s: { offset: number }) => s.offset === 0);
    const image = await fetch(centre.imageUrl);
    assert.equal(image.status, 200);
    const inlineCase = await svc.gql(INGEST, { input: { patientKey: 'PSEUDO-U1', externalId: 'inline-twin', images: [{ data: png.toString('base64') }] } }, 'writer');
    const twin = await fetch(inlineCase.data.ingestCase.slices[0].imageUrl);
    assert.deepEqual(Buffer.from(await image.arrayBuffer()), Buffer.from(await twin.arrayBuffer()), 'same stored image as the same bytes sent inline');

    assert.equal(await svc.service.store.exists(upload.key), false, 'upload object removed');
    assert.equal(await count(svc, 'slice_uploads'), 0, 'upload row removed');

    // An upload makes one case: the key is spent.
    const again = await svc.gql(INGEST, { input: { patientKey: 'PSEUDO-U1', externalId: 'again', images: [{ data: '', uploadKey: upload.key }] } }, 'writer');
    assert.equal(again.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
    assert.match(again.errors![0]!.message, /does not exist, has expired or was already used/);
  });

  test('a DICOM instance goes up the same way; its header fills the study as inline DICOM does', async () => {
    const dicom = makePhantomDicom({ seed: 21, diameterPx: 12, studyInstanceUid: '1.2.826.0.1.77', seriesInstanceUid: '1.2.826.0.1.77.1' });
    const res = await svc.gql(CREATE, { t: 'application/dicom', n: dicom.length }, 'writer');
    const upload: Upload = res.data.createSliceUpload;
    assert.equal((await put(upload, dicom)).status, 200);
    const ingest = await svc.gql(
      'mutation ($input: IngestCaseInput!) { ingestCase(input: $input) { id study { studyInstanceUid } slices { offset } } }',
      { input: { patientKey: 'PSEUDO-UD', externalId: 'dicom-upload', images: [{ data: '', uploadKey: upload.key, centerX: 64, centerY: 64 }] } },
      'writer',
    );
    assert.equal(ingest.errors, undefined, JSON.stringify(ingest.errors));
    assert.equal(ingest.data.ingestCase.study.studyInstanceUid, '1.2.826.0.1.77', 'the study comes from the uploaded header');
    assert.equal(await svc.service.store.exists(upload.key), false);
  });

  test('the upload URL checks its signature, expiry and the declared length', async () => {
    const upload = await createUpload(svc, png);
    const forged = upload.url.replace(/sig=[^&]+/, 'sig=AAAA');
    assert.equal((await put(upload, png, forged)).status, 403);
    const otherKey = upload.url.replace(/uploads\/[0-9a-f-]{36}/, 'uploads/00000000-0000-4000-8000-000000000000');
    assert.equal((await put(upload, png, otherKey)).status, 403, 'a signature is for one key');
    const later = upload.url.replace(/expires=(\d+)/, (_, e) => `expires=${Number(e) + 3600}`);
    assert.equal((await put(upload, png, later)).status, 403, 'the expiry is signed');

    const short = await put(upload, png.subarray(0, png.length - 1));
    assert.equal(short.status, 400);
    assert.match((await short.json()).error, /declared/);
    const big = await put(upload, Buffer.concat([png, Buffer.alloc(10)]));
    assert.equal(big.status, 400);
    assert.equal(await svc.service.store.exists(upload.key), false, 'nothing stored from refused bodies');
  });

  test('createSliceUpload needs a writer and sensible arguments', async () => {
    const reader = await svc.gql(CREATE, { t: 'image/png', n: 100 }, 'reader');
    assert.equal(reader.errors?.[0]?.extensions?.code, 'FORBIDDEN');
    const anonymous = await svc.gql(CREATE, { t: 'image/png', n: 100 }, null);
    assert.equal(anonymous.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED');
    for (const [t, n, message] of [
      ['text/html', 100, /contentType must be one of/],
      ['image/png', 0, /byteLength must be an integer from 1/],
      ['image/png', 2 ** 30, /FCDN_MAX_UPLOAD_BYTES/],
    ] as const) {
      const res = await svc.gql(CREATE, { t, n }, 'writer');
      assert.equal(res.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT', t);
      assert.match(res.errors![0]!.message, message);
    }
  });

  test('exactly one of data or uploadKey; keys must be ones the server issued, uploaded and live', async () => {
    const upload = await createUpload(svc, png);
    const before = { cases: await count(svc, 'nodule_cases'), uploads: await count(svc, 'slice_uploads') };
    const cases: [unknown, RegExp][] = [
      [{ data: png.toString('base64'), uploadKey: upload.key }, /either data or uploadKey, not both/],
      [{ data: '', uploadKey: '../../etc/passwd' }, /is not a key createSliceUpload issued/],
      [{ data: '', uploadKey: 'cases/00000000-0000-4000-8000-000000000000/s0.png' }, /is not a key createSliceUpload issued/],
      [{ data: '', uploadKey: 'uploads/00000000-0000-4000-8000-000000000000' }, /does not exist, has expired/],
      [{ data: '', uploadKey: upload.key }, /nothing was uploaded to .* yet/],
      [{ data: '' }, /data is empty/],
    ];
    for (const [image, message] of cases) {
      const res = await svc.gql(INGEST, { input: { patientKey: 'PSEUDO-U2', externalId: 'never', images: [image] } }, 'writer');
      assert.equal(res.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT', JSON.stringify(image));
      assert.match(res.errors![0]!.message, message);
    }
    const search = await svc.gql(SEARCH, { input: { images: [{ data: '', uploadKey: upload.key }] } }, 'reader');
    assert.equal(search.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
    assert.match(search.errors![0]!.message, /uploadKey is accepted by ingestCase only/);
    assert.deepEqual({ cases: await count(svc, 'nodule_cases'), uploads: await count(svc, 'slice_uploads') }, before);
  });

  test('an ingest that fails on an uploaded image writes nothing and leaves the upload in place', async () => {
    const corrupt = Buffer.from(png);
    corrupt[corrupt.length - 20] ^= 0xff; // breaks a CRC
    const upload = await createUpload(svc, corrupt);
    assert.equal((await put(upload, corrupt)).status, 200);
    const cases = await count(svc, 'nodule_cases');
    const objects = (await svc.service.store.list('cases/')).length;
    const res = await svc.gql(INGEST, { input: { patientKey: 'PSEUDO-U3', externalId: 'corrupt', images: [{ data: '', uploadKey: upload.key }] } }, 'writer');
    assert.equal(res.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
    assert.match(res.errors![0]!.message, /images\[0\] \(offset 0\): PNG image refused/, 'validated exactly as inline data');
    assert.equal(await count(svc, 'nodule_cases'), cases);
    assert.equal((await svc.service.store.list('cases/')).length, objects);
    assert.ok(await svc.service.store.exists(upload.key), 'the upload stays until it expires');
  });

  test('uploads that never become a case are removed by the sweeper once expired; bodies over the limit are refused', async () => {
    const limit = png.length + 8;
    const shortLived = await startTestService({ env: { S3_ENDPOINT: '', FCDN_UPLOAD_TTL_SECONDS: '4', FCDN_UPLOAD_SWEEP_MS: '200', FCDN_MAX_UPLOAD_BYTES: String(limit) } });
    try {
      const upload = await createUpload(shortLived, png);
      const tooBig = await put(upload, Buffer.alloc(limit + 1));
      assert.equal(tooBig.status, 413, 'bodies over FCDN_MAX_UPLOAD_BYTES are refused before they are read');
      const chunked = await fetch(upload.url, {
        method: 'PUT',
        body: new ReadableStream({ start: (c) => (c.enqueue(new Uint8Array(limit + 1)), c.close()) }),
        duplex: 'half',
      } as RequestInit);
      assert.equal(chunked.status, 413, 'and so are those without a Content-Length that grow past it');
      assert.equal((await put(upload, png)).status, 200);
      assert.equal(await count(shortLived, 'slice_uploads'), 1);
      // 4 s of life: long enough for the PUTs above on a loaded machine, short for the sweep.
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline && ((await count(shortLived, 'slice_uploads')) > 0 || (await shortLived.service.store.exists(upload.key)))) {
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.equal(await count(shortLived, 'slice_uploads'), 0, 'row swept');
      assert.equal(await shortLived.service.store.exists(upload.key), false, 'object swept');
      const late = await put(upload, png);
      assert.equal(late.status, 403, 'the URL has expired too');
      const res = await shortLived.gql(INGEST, { input: { patientKey: 'PSEUDO-U4', images: [{ data: '', uploadKey: upload.key }] } }, 'writer');
      assert.match(res.errors![0]!.message, /does not exist, has expired/);
    } finally {
      await shortLived.stop();
    }
  });
});

describe(`uploads on S3 (s3rver, ${databaseLabel})`, () => {
  let s3: RunningS3rver;
  let svc: TestService;
  before(async () => {
    s3 = await startS3rver();
    svc = await startTestService({ env: { S3_ENDPOINT: s3.endpoint, S3_ACCESS_KEY: s3.accessKey, S3_SECRET_KEY: s3.secretKey, S3_BUCKET: 'fcdn-uploads-test' } });
  });
  after(async () => {
    await svc?.stop();
    await s3?.close();
  });

  test('createSliceUpload returns a presigned PUT URL of the bucket; ingest by key removes the upload object', async () => {
    const upload = await createUpload(svc, png);
    const url = new URL(upload.url);
    assert.equal(url.origin, s3.endpoint);
    assert.equal(url.pathname, `/fcdn-uploads-test/${upload.key}`);
    assert.ok(url.searchParams.get('X-Amz-Signature'), 'presigned');
    const res = await put(upload, png);
    assert.equal(res.status, 200, await res.text());
    assert.ok(await svc.service.store.exists(upload.key));

    const ingest = await svc.gql(INGEST, { input: { patientKey: 'PSEUDO-S3', externalId: 's3-upload', images: [{ data: '', uploadKey: upload.key }] } }, 'writer');
    assert.equal(ingest.errors, undefined, JSON.stringify(ingest.errors));
    assert.equal((await fetch(ingest.data.ingestCase.slices[0].imageUrl)).status, 200);
    assert.equal(await svc.service.store.exists(upload.key), false);
    assert.equal(await count(svc, 'slice_uploads'), 0);
  });
});

describe(`uploads on S3 behind a public endpoint (S3_PUBLIC_URL, s3rver, ${databaseLabel})`, () => {
  // As in compose: the service reaches the store as http://minio:9000, clients as http://localhost:9000.
  // Here the public endpoint is a TCP relay on another port in front of the same s3rver.
  let s3: RunningS3rver;
  let svc: TestService;
  let relay: net.Server;
  let publicUrl: string;
  let relayed = 0;
  before(async () => {
    s3 = await startS3rver();
    relay = net.createServer((client) => {
      relayed++;
      const upstream = net.connect(s3.port, '127.0.0.1');
      client.pipe(upstream).pipe(client);
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    publicUrl = `http://127.0.0.1:${(relay.address() as net.AddressInfo).port}`;
    svc = await startTestService({ env: { S3_ENDPOINT: s3.endpoint, S3_PUBLIC_URL: publicUrl, S3_ACCESS_KEY: s3.accessKey, S3_SECRET_KEY: s3.secretKey, S3_BUCKET: 'fcdn-public-test' } });
  });
  after(async () => {
    await svc?.stop();
    await new Promise((resolve) => relay?.close(resolve));
    await s3?.close();
  });

  test('the presigned PUT URL names the public endpoint; the upload through it is ingested by key', async () => {
    const upload = await createUpload(svc, png);
    const url = new URL(upload.url);
    assert.equal(url.origin, publicUrl, 'the public endpoint, not the one the service uses');
    assert.notEqual(url.origin, s3.endpoint);
    assert.equal(url.pathname, `/fcdn-public-test/${upload.key}`);
    assert.ok(url.searchParams.get('X-Amz-Signature'), 'presigned');
    assert.equal(url.searchParams.get('X-Amz-Credential')?.split('/')[2], 'us-east-1', 'signed for the configured region');
    assert.equal(relayed, 0, 'presigning made no request to the public endpoint');

    const res = await put(upload, png);
    assert.equal(res.status, 200, await res.text());
    assert.ok(relayed >= 1, 'the client went through the public endpoint');
    assert.ok(await svc.service.store.exists(upload.key));

    const before = relayed;
    const ingest = await svc.gql(INGEST, { input: { patientKey: 'PSEUDO-S3P', externalId: 's3-public-upload', images: [{ data: '', uploadKey: upload.key }] } }, 'writer');
    assert.equal(ingest.errors, undefined, JSON.stringify(ingest.errors));
    assert.equal((await fetch(ingest.data.ingestCase.slices[0].imageUrl)).status, 200);
    assert.equal(await svc.service.store.exists(upload.key), false);
    assert.equal(relayed, before, 'the service itself talks to S3_ENDPOINT');
  });

  test('a malformed S3_PUBLIC_URL stops the start with a message naming it', async () => {
    const db = await createTestDatabase();
    try {
      await assert.rejects(
        startTestService({ db, env: { S3_ENDPOINT: s3.endpoint, S3_PUBLIC_URL: 'localhost:9000', S3_ACCESS_KEY: s3.accessKey, S3_SECRET_KEY: s3.secretKey, S3_BUCKET: 'fcdn-public-test' } }),
        /S3_PUBLIC_URL localhost:9000: protocol must be http or https/,
      );
    } finally {
      await db.close();
    }
  });
});
