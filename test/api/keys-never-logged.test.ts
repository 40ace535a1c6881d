/**
 * API keys never reach the log, at any level, whether the key is right, wrong, almost right or
 * sent in the wrong place; and keys are compared in constant time (timingSafeEqual over
 * fixed-length SHA-256 digests, every stored key compared whatever the outcome).
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { ApiKeyRing } from '../../src/auth/api-keys.ts';
import { UnauthenticatedError } from '../../src/errors.ts';
import { KEYS, startTestService, type TestService } from '../../fixtures/test-service.ts';

let svc: TestService;
const lines: string[] = [];
const WRONG = ['wrong-key-7f3a9c21e8', `${KEYS.admin}-almost`, KEYS.admin.slice(0, -1), `fcdn_admin_${'Z'.repeat(32)}`];

before(async () => {
  const log = pino({ level: 'trace' }, { write: (line: string) => void lines.push(line) });
  svc = await startTestService({ env: { LOG_LEVEL: 'trace' }, overrides: { log } });
});
after(async () => svc?.stop());

async function post(authorization: string | undefined, query: string, path = '/graphql') {
  const res = await fetch(`${svc.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...(authorization !== undefined ? { authorization } : {}) }, body: JSON.stringify({ query }) });
  return (await res.json()) as { errors?: { extensions?: { code?: string } }[] };
}

test('no key, right or wrong, appears in the log (trace level, failures included)', async () => {
  const headers = [
    ...Object.values(KEYS).map((k) => `Bearer ${k}`),
    ...WRONG.map((k) => `Bearer ${k}`),
    ...WRONG.map((k) => `Basic ${Buffer.from(`admin:${k}`).toString('base64')}`),
    `Bearer ${KEYS.reader} ${WRONG[0]}`,
    `bearer\t${WRONG[1]}`,
    `Token ${WRONG[2]}`,
  ];
  for (const h of headers) {
    for (const query of ['{ activeModel { id } }', 'mutation { deleteCase(id: "999") }', '{ cases { ', '{ nope }']) await post(h, query);
  }
  // Keys in the wrong places: the query string, the body, a signed image URL.
  await post(`Bearer ${WRONG[3]}`, '{ activeModel { id } }', `/graphql?api_key=${WRONG[0]}&key=${KEYS.admin}`);
  await post(undefined, `{ caseByExternalId(externalId: "${WRONG[3]}") { id } }`);
  await fetch(`${svc.url}/images/slices/1.png?expires=1&sig=${WRONG[0]}`);
  const text = lines.join('');
  assert.ok(lines.length >= 3, `the log was captured (${lines.length} lines)`);
  const secrets = [...Object.values(KEYS), ...WRONG];
  const leaked = [...secrets.filter((k) => text.includes(k) || text.includes(Buffer.from(k).toString('base64'))), ...headers.filter((h) => text.includes(h.split(/\s+/)[1]!))];
  assert.deepEqual(leaked, [], 'keys found in the log');
  console.log(`# ${lines.length} log lines at trace level searched for ${secrets.length} keys (and their base64): none found`);
});

test('keys are compared with timingSafeEqual over 32-byte digests, against every stored key, match or not', () => {
  const ring = new ApiKeyRing([{ role: 'reader', key: 'reader-key-0001' }, { role: 'writer', key: 'writer-key-0001' }, { role: 'admin', key: 'admin-key-00001' }]);
  const original = crypto.timingSafeEqual;
  const calls: [number, number][] = [];
  crypto.timingSafeEqual = ((a: NodeJS.ArrayBufferView, b: NodeJS.ArrayBufferView) => {
    calls.push([a.byteLength, b.byteLength]);
    return original(a, b);
  }) as typeof crypto.timingSafeEqual;
  try {
    for (const presented of ['reader-key-0001', 'admin-key-00001', 'x', 'a'.repeat(10_000), 'admin-key-00002']) {
      calls.length = 0;
      try {
        ring.authenticate(`Bearer ${presented}`);
      } catch (e) {
        assert.ok(e instanceof UnauthenticatedError);
      }
      assert.equal(calls.length, 3, `${presented.slice(0, 20)}: every stored key is compared`);
      assert.ok(calls.every(([a, b]) => a === 32 && b === 32), 'fixed-length SHA-256 digests, whatever the key length');
    }
  } finally {
    crypto.timingSafeEqual = original;
  }
});
