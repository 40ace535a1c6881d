/**
 * The DICOMweb client and the nodule fetch against a real PACS: Debian's Orthanc with its
 * DICOMweb plugin on loopback (fixtures/orthanc.ts), holding synthetic CT series.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { DicomwebClient, multipartParts, type DicomwebSettings, type SeriesInstance } from '../../src/pacs/dicomweb-client.ts';
import { fetchPacsNodule, orderInstances as orderByPosition } from '../../src/pacs/pacs-nodule.ts';
import { BadInputError, NotFoundError, UnavailableError } from '../../src/errors.ts';
import { ctSeries, type CtSeries } from '../../fixtures/ct-series.ts';
import { startOrthanc, type Orthanc } from '../../fixtures/orthanc.ts';

const SYNTAXES = ['1.2.840.10008.1.2.1', '1.2.840.10008.1.2.4.70', '1.2.840.10008.1.2', '1.2.840.10008.1.2.4.80', '1.2.840.10008.1.2.5'];

let pacs: Orthanc;
let series: CtSeries;
let mr: CtSeries;

const settings = (over: Partial<DicomwebSettings> = {}): DicomwebSettings => ({
  url: pacs.dicomwebUrl,
  auth: { kind: 'none' },
  timeoutMs: 5000,
  concurrency: 4,
  maxInstanceBytes: 64 * 1024 * 1024,
  ...over,
});

before(async () => {
  pacs = await startOrthanc();
  series = ctSeries({ seed: 11, slices: 5, transferSyntaxes: SYNTAXES, identifying: { PatientID: 'MRN-PACS-0001' } });
  mr = ctSeries({ seed: 12, slices: 2, modality: 'MR' });
  // Uploaded out of position order: the client must order them, not the upload.
  for (const s of [...series.slices].reverse()) await pacs.upload(s.file);
  for (const s of mr.slices) await pacs.upload(s.file);
});

after(async () => {
  await pacs?.stop();
});

test('QIDO-RS lists every instance of the series with the attributes asked for', async () => {
  const client = new DicomwebClient(settings());
  const listed = await client.searchSeriesInstances(series.studyInstanceUid, series.seriesInstanceUid);
  assert.deepEqual(listed.map((i) => i.sopInstanceUid).sort(), series.slices.map((s) => s.sopInstanceUid).sort());
  for (const i of listed) {
    const slice = series.slices.find((s) => s.sopInstanceUid === i.sopInstanceUid)!;
    assert.equal(i.modality, 'CT');
    assert.equal(i.sopClassUid, '1.2.840.10008.5.1.4.1.1.2');
    assert.equal(i.patientId, 'MRN-PACS-0001');
    // InstanceNumber runs against the position in these series: only the position orders them.
    assert.equal(i.instanceNumber, series.slices.length - slice.index);
    assert.deepEqual(i.imagePositionPatient, [-180, -200, slice.z]);
    assert.deepEqual(i.imageOrientationPatient, [1, 0, 0, 0, 1, 0]);
  }
  assert.deepEqual(await client.searchSeriesInstances(series.studyInstanceUid, '1.2.3.999'), []);
  // Read in pages (limit/offset), as a PACS that caps its results needs: pages of 2 over 5 instances.
  const paged = await new DicomwebClient(settings({ qidoPageSize: 2 })).searchSeriesInstances(series.studyInstanceUid, series.seriesInstanceUid);
  assert.deepEqual(paged.map((i) => i.sopInstanceUid).sort(), listed.map((i) => i.sopInstanceUid).sort());
  assert.equal(await client.hasStudy(series.studyInstanceUid), true);
  assert.equal(await client.hasStudy('1.2.3.999'), false);
});

test('WADO-RS returns each instance as stored, byte for byte, in every transfer syntax', async () => {
  const client = new DicomwebClient(settings());
  for (const s of series.slices) {
    const got = await client.retrieveInstance(series.studyInstanceUid, series.seriesInstanceUid, s.sopInstanceUid);
    assert.ok(got, `instance ${s.index} retrieved`);
    assert.ok(got.equals(s.file), `instance ${s.index} (${SYNTAXES[s.index % SYNTAXES.length]}) equals the uploaded file`);
  }
  assert.equal(await client.retrieveInstance(series.studyInstanceUid, series.seriesInstanceUid, '1.2.3.999'), null);
});

test('fetchPacsNodule: centre and neighbours in position order, fewer at the series edge, and says so', async () => {
  const client = new DicomwebClient(settings());
  const mid = series.slices[2]!;
  const got = await fetchPacsNodule(client, { ...series, sopInstanceUid: mid.sopInstanceUid, centerX: 40, centerY: 50, neighbours: 2 });
  assert.deepEqual(got.images.map((i) => i.offset), [-2, -1, 0, 1, 2]);
  got.images.forEach((img, j) => assert.ok(img.bytes.equals(series.slices[j]!.file), `offset ${img.offset} is slice ${j}`));
  assert.ok(got.images.every((i) => i.centerX === 40 && i.centerY === 50));
  assert.deepEqual(got.neighbours, { asked: 2, before: 2, after: 2 });
  assert.equal(got.patientId, 'MRN-PACS-0001');

  const edge = await fetchPacsNodule(client, { ...series, sopInstanceUid: series.slices[0]!.sopInstanceUid, centerX: 48, centerY: 48, neighbours: 2 });
  assert.deepEqual(edge.images.map((i) => i.offset), [0, 1, 2]);
  assert.deepEqual(edge.neighbours, { asked: 2, before: 0, after: 2 });
  const none = await fetchPacsNodule(client, { ...series, sopInstanceUid: mid.sopInstanceUid, centerX: 48, centerY: 48, neighbours: 0 });
  assert.deepEqual(none.images.map((i) => i.offset), [0]);
});

test('position order: ImagePositionPatient along the slice normal, then InstanceNumber, then UID', () => {
  const inst = (uid: string, z: number | null, n: number | null, orientation: number[] | null = [1, 0, 0, 0, 1, 0]): SeriesInstance => ({
    sopInstanceUid: uid, sopClassUid: null, modality: 'CT', instanceNumber: n, imagePositionPatient: z === null ? null : [-100, -120, z], imageOrientationPatient: orientation, patientId: null,
  });
  // Position wins over InstanceNumber (numbered backwards here, as some scanners do).
  assert.deepEqual(orderByPosition([inst('1.1', 10, 1), inst('1.2', -5, 3), inst('1.3', 2.5, 2)]).map((i) => i.sopInstanceUid), ['1.2', '1.3', '1.1']);
  // Without positions: InstanceNumber, then UID.
  assert.deepEqual(orderByPosition([inst('1.9', null, 2), inst('1.8', null, 2), inst('1.7', null, 1)]).map((i) => i.sopInstanceUid), ['1.7', '1.8', '1.9']);
  // A sagittal series: the normal (row x column) is -x, so x orders it (descending), not z.
  const sag = (uid: string, x: number): SeriesInstance => ({ ...inst(uid, 0, 1, [0, 1, 0, 0, 0, -1]), imagePositionPatient: [x, 0, 0] });
  assert.deepEqual(orderByPosition([sag('2.1', 3), sag('2.2', -1), sag('2.3', 1)]).map((i) => i.sopInstanceUid), ['2.1', '2.3', '2.2']);
});

test('unknown study, series or instance: NOT_FOUND naming which UID', async () => {
  const client = new DicomwebClient(settings());
  const base = { ...series, sopInstanceUid: series.slices[1]!.sopInstanceUid, centerX: 48, centerY: 48 };
  await assert.rejects(fetchPacsNodule(client, { ...base, studyInstanceUid: '1.2.3.404' }), (e) => e instanceof NotFoundError && /studyInstanceUid: study 1\.2\.3\.404 is not in the PACS/.test(e.message));
  await assert.rejects(fetchPacsNodule(client, { ...base, seriesInstanceUid: '1.2.3.405' }), (e) => e instanceof NotFoundError && /seriesInstanceUid: series 1\.2\.3\.405 is not in study/.test(e.message));
  await assert.rejects(fetchPacsNodule(client, { ...base, sopInstanceUid: '1.2.3.406' }), (e) => e instanceof NotFoundError && /sopInstanceUid: instance 1\.2\.3\.406 is not in series/.test(e.message));
});

test('bad input is refused before any request: malformed UIDs, points, neighbours; a non-CT series', async () => {
  let requests = 0;
  const counting = http.createServer((_req, res) => {
    requests++;
    res.end('[]');
  });
  await new Promise<void>((r) => counting.listen(0, '127.0.0.1', r));
  const client = new DicomwebClient(settings({ url: `http://127.0.0.1:${(counting.address() as net.AddressInfo).port}/dicom-web` }));
  const base = { ...series, sopInstanceUid: series.slices[1]!.sopInstanceUid, centerX: 48, centerY: 48 };
  for (const bad of [{ studyInstanceUid: '../../instances' }, { seriesInstanceUid: '1.2.x' }, { sopInstanceUid: '' }, { centerX: Number.NaN }, { neighbours: 3 }, { neighbours: -1 }, { neighbours: 1.5 }]) {
    await assert.rejects(fetchPacsNodule(client, { ...base, ...bad }), (e) => e instanceof BadInputError, JSON.stringify(bad));
  }
  assert.equal(requests, 0);
  counting.close();

  const real = new DicomwebClient(settings());
  await assert.rejects(
    fetchPacsNodule(real, { ...mr, sopInstanceUid: mr.slices[0]!.sopInstanceUid, centerX: 48, centerY: 48 }),
    (e) => e instanceof BadInputError && /is MR, not CT/.test(e.message),
  );
});

test('a PACS that accepts and never answers: SERVICE_UNAVAILABLE within the timeout; refused connections too', async () => {
  const sockets: net.Socket[] = [];
  const hung = net.createServer((s) => sockets.push(s));
  await new Promise<void>((r) => hung.listen(0, '127.0.0.1', r));
  const port = (hung.address() as net.AddressInfo).port;
  const client = new DicomwebClient(settings({ url: `http://127.0.0.1:${port}/dicom-web`, timeoutMs: 500 }));
  const started = Date.now();
  await assert.rejects(
    fetchPacsNodule(client, { ...series, sopInstanceUid: series.slices[1]!.sopInstanceUid, centerX: 48, centerY: 48 }),
    (e) => e instanceof UnavailableError && /did not answer within 500 ms/.test(e.message),
  );
  const took = Date.now() - started;
  assert.ok(took >= 450 && took < 2500, `failed after ${took} ms`);
  assert.ok(sockets.length >= 1, 'the request reached the hung server');
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => hung.close(() => r()));

  // Nothing listens there any more.
  const refused = new DicomwebClient(settings({ url: `http://127.0.0.1:${port}/dicom-web` }));
  await assert.rejects(refused.searchSeriesInstances('1.2', '1.3'), (e) => e instanceof UnavailableError && /could not be reached \(ECONNREFUSED\)/.test(e.message));
});

test('a PACS that stalls in the middle of a body: SERVICE_UNAVAILABLE within the timeout', async () => {
  const stalled = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/dicom+json' });
    res.write('[{"00080018":'); // and never more
  });
  await new Promise<void>((r) => stalled.listen(0, '127.0.0.1', r));
  const client = new DicomwebClient(settings({ url: `http://127.0.0.1:${(stalled.address() as net.AddressInfo).port}`, timeoutMs: 400 }));
  const started = Date.now();
  await assert.rejects(client.searchSeriesInstances('1.2', '1.3'), (e) => e instanceof UnavailableError && /did not answer within 400 ms/.test(e.message));
  assert.ok(Date.now() - started < 2000);
  stalled.closeAllConnections();
  stalled.close();
});

test('basic auth against Orthanc users: the right password works, a wrong one is SERVICE_UNAVAILABLE naming the credentials', async () => {
  const locked = await startOrthanc({ users: { fcdn: 'pacs-password-1' } });
  try {
    await locked.upload(series.slices[0]!.file);
    const ok = new DicomwebClient({ ...settings(), url: locked.dicomwebUrl, auth: { kind: 'basic', username: 'fcdn', password: 'pacs-password-1' } });
    assert.equal((await ok.searchSeriesInstances(series.studyInstanceUid, series.seriesInstanceUid)).length, 1);
    const bad = new DicomwebClient({ ...settings(), url: locked.dicomwebUrl, auth: { kind: 'basic', username: 'fcdn', password: 'wrong' } });
    await assert.rejects(bad.searchSeriesInstances(series.studyInstanceUid, series.seriesInstanceUid), (e) => e instanceof UnavailableError && /refused our credentials \(HTTP 401\)/.test(e.message));
    const none = new DicomwebClient({ ...settings(), url: locked.dicomwebUrl });
    await assert.rejects(none.hasStudy(series.studyInstanceUid), (e) => e instanceof UnavailableError && /HTTP 401/.test(e.message));
  } finally {
    await locked.stop();
  }
});

/** A gateway in front of Orthanc that wants a bearer token and counts requests in flight (each held 50 ms). */
async function bearerGateway(token: string) {
  let inFlight = 0;
  let maxInFlight = 0;
  const server = http.createServer(async (req, res) => {
    if (req.headers.authorization !== `Bearer ${token}`) {
      res.writeHead(401).end();
      return;
    }
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    await new Promise((r) => setTimeout(r, 50));
    const upstream = await fetch(`${pacs.url}${req.url}`, { headers: { accept: String(req.headers.accept ?? '') } });
    const body = Buffer.from(await upstream.arrayBuffer());
    inFlight--;
    res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/octet-stream' }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/dicom-web`, maxInFlight: () => maxInFlight, close: () => new Promise<void>((r) => server.close(() => r())) };
}

test('bearer token auth, and the concurrency bound holds (at most `concurrency` requests in flight)', async () => {
  const gw = await bearerGateway('token-abc-123');
  try {
    const client = new DicomwebClient(settings({ url: gw.url, auth: { kind: 'bearer', token: 'token-abc-123' }, concurrency: 2 }));
    const got = await fetchPacsNodule(client, { ...series, sopInstanceUid: series.slices[2]!.sopInstanceUid, centerX: 48, centerY: 48, neighbours: 2 });
    assert.equal(got.images.length, 5);
    // Five retrievals at once asked for; two at a time allowed.
    await Promise.all(series.slices.map((s) => client.retrieveInstance(series.studyInstanceUid, series.seriesInstanceUid, s.sopInstanceUid)));
    assert.equal(gw.maxInFlight(), 2);
    const wrong = new DicomwebClient(settings({ url: gw.url, auth: { kind: 'bearer', token: 'nope' } }));
    await assert.rejects(wrong.hasStudy(series.studyInstanceUid), (e) => e instanceof UnavailableError && /HTTP 401/.test(e.message));
  } finally {
    await gw.close();
  }
});

test('multipart/related parsing: quoted boundaries, preamble, binary parts with CRLF inside', () => {
  const a = Buffer.from([0, 13, 10, 45, 45, 1, 2]);
  const body = Buffer.concat([
    Buffer.from('preamble\r\n--b0undary\r\nContent-Type: application/dicom\r\n\r\n', 'latin1'), a,
    Buffer.from('\r\n--b0undary\r\nContent-Type: application/dicom\r\n\r\n', 'latin1'), Buffer.from('second'),
    Buffer.from('\r\n--b0undary--\r\n', 'latin1'),
  ]);
  const parts = multipartParts(body, 'multipart/related; type="application/dicom"; boundary="b0undary"');
  assert.equal(parts.length, 2);
  assert.ok(parts[0]!.equals(a));
  assert.equal(parts[1]!.toString(), 'second');
});
