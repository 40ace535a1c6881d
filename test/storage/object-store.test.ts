/**
 * One contract, two object stores. The same suite runs against:
 *   - FilesystemObjectStore in a fresh temp folder, always;
 *   - S3ObjectStore, always: against the server named by S3_ENDPOINT (with
 *     S3_ACCESS_KEY / S3_SECRET_KEY; a fresh random bucket unless S3_TEST_BUCKET is
 *     set) when that is set, else against an s3rver this file starts itself on a
 *     free loopback port. So `npm test` covers the S3 path with no setup, and never
 *     skips it. s3rver checks no signatures: this tests the protocol, not auth.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client } from 'minio';
import { BadInputError, NotFoundError } from '../../src/errors.ts';
import {
  createObjectStore,
  FilesystemObjectStore,
  parseEndpoint,
  S3ObjectStore,
  type ObjectStore,
} from '../../src/storage/index.ts';
import { ObjectTooLargeError } from '../../src/storage/object-store.ts';
import { loadConfig } from '../../src/config.ts';
import { startS3rver, type RunningS3rver } from '../../scripts/start-s3rver.ts';

const PNG = 'image/png';
const BAD_KEYS = [
  '',
  '../escape',
  'a/../../escape',
  '..',
  '.',
  'a/./b',
  '/etc/passwd',
  'a//b',
  'a/',
  'a\\b',
  '..\\escape',
  'C:/x',
  '.hidden',
  'a/.tmp',
  'with space',
  'a+b',
  'nul\0byte',
  'x'.repeat(513),
];

function bytes(n: number, seed = 0): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

/**
 * The contract every ObjectStore keeps. `store()` is valid once `before` hooks ran.
 * `readsDuringWrites`: also check that a get racing a put of the same key sees a
 * whole object. True for the filesystem store (temp file + rename). Not run on S3
 * here: S3 and MinIO replace objects atomically, but s3rver, the test server, writes
 * in place and aborts a read that races a write, so it cannot check that.
 */
function contract(store: () => ObjectStore, opts: { readsDuringWrites: boolean }): void {
  it('put then get returns the same bytes (all byte values, 1 MiB, empty)', async () => {
    const s = store();
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    await s.put('rt/all-bytes.bin', all, 'application/octet-stream');
    assert.deepEqual(await s.get('rt/all-bytes.bin'), all);
    const big = randomBytes(1024 * 1024);
    await s.put('rt/big.bin', big, 'application/octet-stream');
    assert.ok((await s.get('rt/big.bin')).equals(big));
    await s.put('rt/empty.bin', Buffer.alloc(0), 'application/octet-stream');
    assert.equal((await s.get('rt/empty.bin')).length, 0);
  });

  it('put replaces an existing object', async () => {
    const s = store();
    await s.put('replace/x.png', bytes(100, 1), PNG);
    await s.put('replace/x.png', bytes(50, 2), PNG);
    assert.deepEqual(await s.get('replace/x.png'), bytes(50, 2));
    assert.deepEqual(await s.list('replace/'), ['replace/x.png']);
  });

  it('get of a missing key throws NotFoundError (code NOT_FOUND)', async () => {
    const s = store();
    await assert.rejects(s.get('missing/nothing.png'), (err: unknown) => {
      assert.ok(err instanceof NotFoundError, `expected NotFoundError, got ${String(err)}`);
      assert.equal(err.code, 'NOT_FOUND');
      assert.match(err.message, /missing\/nothing\.png/);
      return true;
    });
    // A "folder" (a prefix of stored keys) is not an object either.
    await s.put('missing/dir/inner.png', bytes(3), PNG);
    await assert.rejects(s.get('missing/dir'), NotFoundError);
    assert.equal(await s.exists('missing/dir'), false);
  });

  it('get with maxBytes: an object up to the bound is returned, a larger one refused (ObjectTooLargeError with its size) (issue 13, item 5)', async () => {
    const s = store();
    const body = bytes(4096, 5);
    await s.put('bounded/one', body, PNG);
    assert.deepEqual(await s.get('bounded/one', { maxBytes: 4096 }), body);
    await assert.rejects(s.get('bounded/one', { maxBytes: 4095 }), (err: unknown) => err instanceof ObjectTooLargeError && err.size === 4096 && err.maxBytes === 4095);
    await assert.rejects(s.get('bounded/missing', { maxBytes: 10 }), NotFoundError);
  });

  it('exists tells stored from missing', async () => {
    const s = store();
    assert.equal(await s.exists('ex/a.png'), false);
    await s.put('ex/a.png', bytes(10), PNG);
    assert.equal(await s.exists('ex/a.png'), true);
    assert.equal(await s.exists('ex/a.pn'), false);
  });

  it('delete removes the object and is idempotent', async () => {
    const s = store();
    await s.put('del/case-1/slice-0.png', bytes(10), PNG);
    await s.put('del/case-1/slice-1.png', bytes(11), PNG);
    await s.delete('del/case-1/slice-0.png');
    assert.equal(await s.exists('del/case-1/slice-0.png'), false);
    await assert.rejects(s.get('del/case-1/slice-0.png'), NotFoundError);
    await s.delete('del/case-1/slice-0.png'); // again: no error
    await s.delete('del/never/existed.png'); // never stored: no error
    assert.deepEqual(await s.list('del/'), ['del/case-1/slice-1.png']);
    await s.delete('del/case-1/slice-1.png');
    assert.deepEqual(await s.list('del/'), []);
    // The key can be written again after its folder was emptied.
    await s.put('del/case-1/slice-0.png', bytes(12), PNG);
    assert.deepEqual(await s.get('del/case-1/slice-0.png'), bytes(12));
  });

  it('list returns exactly the keys with the prefix, sorted', async () => {
    const s = store();
    const keys = [
      'ls/cases/b/slice-1.png',
      'ls/cases/a/slice-0.png',
      'ls/cases/a1/slice_0.png',
      'ls/cases/a/nested/deep/x=1.png',
      'ls/cases/a/slice-1.png',
      'ls/other/z.png',
      'ls/casesX.png',
    ];
    for (const k of keys) await s.put(k, Buffer.from(k), PNG);
    assert.deepEqual(await s.list('ls/cases/a/'), [
      'ls/cases/a/nested/deep/x=1.png',
      'ls/cases/a/slice-0.png',
      'ls/cases/a/slice-1.png',
    ]);
    // A plain string prefix: partial segments match too.
    assert.deepEqual(await s.list('ls/cases/a'), [
      'ls/cases/a/nested/deep/x=1.png',
      'ls/cases/a/slice-0.png',
      'ls/cases/a/slice-1.png',
      'ls/cases/a1/slice_0.png',
    ]);
    assert.deepEqual(await s.list('ls/cases'), [...keys].filter((k) => k.startsWith('ls/cases')).sort());
    assert.deepEqual(await s.list('ls/'), [...keys].sort());
    assert.deepEqual(await s.list('ls/cases/a/slice-1.png'), ['ls/cases/a/slice-1.png']);
    assert.deepEqual(await s.list('ls/none/'), []);
    assert.deepEqual(await s.list('nothing-here'), []);
    const everything = await s.list('');
    for (const k of keys) assert.ok(everything.includes(k), `list('') lacks ${k}`);
    assert.deepEqual(everything, [...everything].sort());
  });

  it('rejects unsafe or malformed keys with BadInputError and writes nothing', async () => {
    const s = store();
    const before = await s.list('');
    for (const key of BAD_KEYS) {
      const label = JSON.stringify(key).slice(0, 40);
      await assert.rejects(s.put(key, bytes(4), PNG), BadInputError, `put ${label}`);
      await assert.rejects(s.get(key), BadInputError, `get ${label}`);
      await assert.rejects(s.exists(key), BadInputError, `exists ${label}`);
      await assert.rejects(s.delete(key), BadInputError, `delete ${label}`);
    }
    for (const prefix of ['../', 'a/../', '/abs', 'a//', 'a\\b', 'sp ace']) {
      await assert.rejects(s.list(prefix), BadInputError, `list ${JSON.stringify(prefix)}`);
    }
    assert.deepEqual(await s.list(''), before);
  });

  const raceTitle = opts.readsDuringWrites
    ? 'concurrent puts of one key leave one whole version; readers never see a mix'
    : 'concurrent puts of one key leave one whole version';
  it(raceTitle, async () => {
    const s = store();
    const a = Buffer.alloc(256 * 1024, 0xaa);
    const b = Buffer.alloc(256 * 1024, 0xbb);
    await s.put('race/x.bin', a, 'application/octet-stream');
    const reads: Promise<Buffer>[] = [];
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 8; i++) {
      writes.push(s.put('race/x.bin', i % 2 ? a : b, 'application/octet-stream'));
      if (opts.readsDuringWrites) reads.push(s.get('race/x.bin'));
    }
    await Promise.all(writes);
    for (const got of [...(await Promise.all(reads)), await s.get('race/x.bin')]) {
      assert.ok(got.equals(a) || got.equals(b), 'a read saw a partial or mixed object');
    }
    assert.deepEqual(await s.list('race/'), ['race/x.bin']);
  });
}

describe('FilesystemObjectStore', () => {
  let dir: string;
  let store: FilesystemObjectStore;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'fcdn-objects-'));
    store = new FilesystemObjectStore(path.join(dir, 'objects'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('has kind filesystem and no presigned URLs', () => {
    assert.equal(store.kind, 'filesystem');
    assert.equal((store as ObjectStore).presignedGetUrl, undefined);
  });

  contract(() => store, { readsDuringWrites: true });

  it('stores key a/b/c as the file <root>/a/b/c and leaves no temp files', async () => {
    await store.put('layout/case-7/slice-0.png', bytes(7), PNG);
    const file = path.join(dir, 'objects', 'layout', 'case-7', 'slice-0.png');
    assert.ok((await stat(file)).isFile());
    const all = await readdir(path.join(dir, 'objects'), { recursive: true });
    assert.deepEqual(all.filter((f) => path.basename(f).startsWith('.')), [], 'temp files left behind');
  });

  it('prunes folders emptied by delete, and writes nothing outside its root', async () => {
    await store.put('prune/a/b/c.png', bytes(3), PNG);
    await store.delete('prune/a/b/c.png');
    await assert.rejects(stat(path.join(dir, 'objects', 'prune')), { code: 'ENOENT' });
    assert.deepEqual(await readdir(dir), ['objects']);
  });

  it('list ignores temp files of writes in flight', async () => {
    const { writeFile, mkdir } = await import('node:fs/promises');
    await mkdir(path.join(dir, 'objects', 'tmpcheck'), { recursive: true });
    await writeFile(path.join(dir, 'objects', 'tmpcheck', '.x.png.abc.tmp'), 'partial');
    await store.put('tmpcheck/x.png', bytes(2), PNG);
    assert.deepEqual(await store.list('tmpcheck/'), ['tmpcheck/x.png']);
  });

  it('list on a store whose root does not exist yet is empty', async () => {
    const fresh = new FilesystemObjectStore(path.join(dir, 'not-yet'));
    assert.deepEqual(await fresh.list(''), []);
    assert.equal(await fresh.exists('a.png'), false);
    await fresh.delete('a.png');
  });
});

describe('S3ObjectStore', () => {
  let own: RunningS3rver | undefined;
  let endpoint: string;
  let accessKey: string;
  let secretKey: string;
  let bucket: string;
  let madeBucket = false;
  let store: S3ObjectStore;

  before(async () => {
    if (process.env.S3_ENDPOINT) {
      endpoint = process.env.S3_ENDPOINT;
      accessKey = process.env.S3_ACCESS_KEY ?? 'S3RVER';
      secretKey = process.env.S3_SECRET_KEY ?? 'S3RVER';
    } else {
      own = await startS3rver();
      ({ endpoint, accessKey, secretKey } = own);
    }
    madeBucket = !process.env.S3_TEST_BUCKET;
    bucket = process.env.S3_TEST_BUCKET || `fcdn-test-${randomBytes(4).toString('hex')}`;
    console.log(`S3 contract against ${endpoint} (${own ? 'own s3rver' : 'S3_ENDPOINT'}), bucket ${bucket}`);
    store = await S3ObjectStore.open({ endPoint: endpoint, accessKey, secretKey, bucket });
  });

  after(async () => {
    if (store && madeBucket) {
      // Best-effort clean-up of the test bucket on an external server.
      const client = new Client({ ...parseEndpoint(endpoint), accessKey, secretKey, region: 'us-east-1', pathStyle: true });
      for (const key of await store.list('').catch(() => [])) await store.delete(key).catch(() => {});
      await client.removeBucket(bucket).catch(() => {});
    }
    await own?.close();
  });

  it('has kind s3 and created its bucket at open (idempotently)', async () => {
    assert.equal(store.kind, 's3');
    const client = new Client({ ...parseEndpoint(endpoint), accessKey, secretKey, region: 'us-east-1', pathStyle: true });
    assert.equal(await client.bucketExists(bucket), true);
    const again = await S3ObjectStore.open({ endPoint: endpoint, accessKey, secretKey, bucket });
    assert.deepEqual(await again.list(''), await store.list(''));
  });

  contract(() => store, { readsDuringWrites: false });

  it('keeps the content type and serves presigned GET URLs', async () => {
    const body = bytes(1234, 9);
    await store.put('presign/case-1/slice-0.png', body, PNG);
    const url = await store.presignedGetUrl('presign/case-1/slice-0.png', 60);
    assert.match(url, /X-Amz-Signature=/);
    const res = await fetch(url);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), PNG);
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(body));
    await assert.rejects(store.presignedGetUrl('presign/case-1/slice-0.png', 0), BadInputError);
    await assert.rejects(store.presignedGetUrl('presign/case-1/slice-0.png', 8 * 24 * 3600), BadInputError);
    await assert.rejects(store.presignedGetUrl('../x', 60), BadInputError);
  });
});

describe('createObjectStore / configuration', () => {
  it('without S3_ENDPOINT: filesystem under <FCDN_DATA_DIR>/objects', async () => {
    const cfg = loadConfig({ FCDN_DATA_DIR: '/tmp/fcdn-data-x' });
    assert.equal(cfg.s3, undefined);
    const s = await createObjectStore(cfg);
    assert.equal(s.kind, 'filesystem');
    assert.equal((s as FilesystemObjectStore).rootDir, path.resolve('/tmp/fcdn-data-x/objects'));
    assert.equal(loadConfig({}).dataDir, path.resolve('./data'));
    assert.equal(loadConfig({ S3_ENDPOINT: '' }).s3, undefined);
  });

  it('with S3_ENDPOINT: S3, bucket from S3_BUCKET; keys required', async () => {
    const s3 = await startS3rver();
    try {
      const s = await createObjectStore(
        loadConfig({ S3_ENDPOINT: s3.endpoint, S3_ACCESS_KEY: s3.accessKey, S3_SECRET_KEY: s3.secretKey, S3_BUCKET: 'cfg-bucket' }),
      );
      assert.equal(s.kind, 's3');
      assert.equal((s as S3ObjectStore).bucket, 'cfg-bucket');
      await s.put('a/b.png', bytes(5), PNG);
      assert.deepEqual(await s.get('a/b.png'), bytes(5));
      await assert.rejects(createObjectStore(loadConfig({ S3_ENDPOINT: s3.endpoint })), /S3_ACCESS_KEY or S3_SECRET_KEY/);
    } finally {
      await s3.close();
    }
  });

  it('with S3_PUBLIC_URL: presigned URLs name the public endpoint, signed without a request to it; the store itself uses S3_ENDPOINT', async () => {
    const s3 = await startS3rver();
    try {
      const env = { S3_ENDPOINT: s3.endpoint, S3_ACCESS_KEY: s3.accessKey, S3_SECRET_KEY: s3.secretKey, S3_BUCKET: 'cfg-public' };
      assert.equal(loadConfig(env).s3!.publicEndPoint, undefined, 'unset: presigned URLs name S3_ENDPOINT');
      // A host that resolves nowhere: presigning must not need to reach it.
      const cfg = loadConfig({ ...env, S3_PUBLIC_URL: 'http://fcdn-public.invalid:9000' });
      assert.equal(cfg.s3!.publicEndPoint, 'http://fcdn-public.invalid:9000');
      const s = (await createObjectStore(cfg)) as S3ObjectStore;
      assert.equal(s.publicEndPoint, 'http://fcdn-public.invalid:9000');
      await s.put('pub/a.png', bytes(7), PNG);
      assert.deepEqual(await s.get('pub/a.png'), bytes(7), 'reads and writes go to S3_ENDPOINT');
      for (const url of [await s.presignedPutUrl('uploads/x', 60), await s.presignedGetUrl('pub/a.png', 60)]) {
        const u = new URL(url);
        assert.equal(u.origin, 'http://fcdn-public.invalid:9000');
        assert.ok(u.pathname.startsWith('/cfg-public/'), u.pathname);
        assert.ok(u.searchParams.get('X-Amz-Signature'));
      }
      const plain = (await createObjectStore(loadConfig(env))) as S3ObjectStore;
      assert.equal(new URL(await plain.presignedPutUrl('uploads/x', 60)).origin, s3.endpoint);
      await assert.rejects(createObjectStore(loadConfig({ ...env, S3_PUBLIC_URL: 'http://localhost:9000/bucket' })), /S3_PUBLIC_URL http:\/\/localhost:9000\/bucket: give only/);
    } finally {
      await s3.close();
    }
  });

  it('parses endpoints and refuses malformed ones', () => {
    assert.deepEqual(parseEndpoint('http://minio:9000'), { endPoint: 'minio', port: 9000, useSSL: false });
    assert.deepEqual(parseEndpoint('https://s3.example.org'), { endPoint: 's3.example.org', port: 443, useSSL: true });
    assert.deepEqual(parseEndpoint('http://127.0.0.1:9000/'), { endPoint: '127.0.0.1', port: 9000, useSSL: false });
    assert.throws(() => parseEndpoint('minio:9000'), /protocol must be http or https/);
    assert.throws(() => parseEndpoint('not a url'), /not a URL/);
    assert.throws(() => parseEndpoint('http://minio:9000/bucket'), /no path/);
    assert.throws(() => parseEndpoint('http://u:p@minio:9000'), /credentials/);
  });
});
