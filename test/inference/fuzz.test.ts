/**
 * Property: whatever happens to the bytes of a valid PNG or DICOM, prepareSlice either
 * succeeds with a sane patch or throws BadInputError, never anything else; no case takes longer
 * than CASE_MS_LIMIT (no hang) and the process's memory stays within RSS_GROWTH_LIMIT of where
 * it started (no allocation of what a header claims). Mutations are random bytes, and
 * container-aware ones (test/inference/mutators.ts): chunk and element lengths, tags, header
 * fields, order, duplicates, deflate bombs. Fixed seeds keep failures reproducible.
 *
 * FUZZ_RUNS (default 1500) sets the runs of each property; the totals are printed at the end.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { BadInputError } from '../../src/errors.ts';
import { crc32 } from '../../src/imaging/png.ts';
import { makePhantomDicom, makePhantomPng } from '../../fixtures/phantoms.ts';
import { prepareSlice } from '../../src/imaging/prepare-slice.ts';
import { SlicePreparer } from '../../src/imaging/slice-preparer.ts';
import { dicomCaseArb, mutateDicom, mutatePng, pngCaseArb } from './mutators.ts';
import { CARD, rawPng } from './support.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? 1500);
/** Generous for a shared 2-core machine; a decoder loop over a claimed 100000x100000 image would take minutes. */
const CASE_MS_LIMIT = 2000;
const RSS_GROWTH_LIMIT = 256 * 1024 * 1024;

const totals = { cases: 0, ok: 0, 'bad-input': 0, slowestMs: 0, peakRssGrowth: 0 };
const rssAtStart = process.memoryUsage.rss();
let sinceRssCheck = 0;

after(() => {
  console.log(
    `fuzz totals: ${totals.cases} cases, ${totals.ok} decoded, ${totals['bad-input']} BadInputError, 0 other outcomes; ` +
      `slowest case ${totals.slowestMs.toFixed(1)} ms; peak RSS growth ${(totals.peakRssGrowth / 2 ** 20).toFixed(1)} MiB (FUZZ_RUNS=${RUNS})`,
  );
});

type Mutation = { at: number; value: number; kind: 'set' | 'xor' };

const mutationArb = fc.record({
  at: fc.nat(),
  value: fc.integer({ min: 0, max: 255 }),
  kind: fc.constantFrom<'set' | 'xor'>('set', 'xor'),
});

/** Mutations anywhere, or (half the time) in the first `headerBytes`, where parsers decide. */
function mutationsArb(headerBytes: number) {
  return fc.record({
    mutations: fc.array(mutationArb, { minLength: 1, maxLength: 6 }),
    focusHeader: fc.boolean(),
    truncateTo: fc.option(fc.nat(), { freq: 4 }),
  }).map((m) => ({ ...m, headerBytes }));
}

function mutate(src: Buffer, m: { mutations: Mutation[]; focusHeader: boolean; truncateTo: number | null; headerBytes: number }): Buffer {
  const out = Buffer.from(src);
  const span = m.focusHeader ? Math.min(m.headerBytes, out.length) : out.length;
  for (const { at, value, kind } of m.mutations) {
    const i = at % span;
    out[i] = kind === 'set' ? value : out[i]! ^ (value || 1);
  }
  return m.truncateTo === null ? out : out.subarray(0, m.truncateTo % (out.length + 1));
}

/** Recompute every chunk CRC so that mutations get past the checksum into zlib and the filters. */
function fixPngCrcs(png: Buffer): Buffer {
  const out = Buffer.from(png);
  for (let pos = 8; pos + 12 <= out.length; ) {
    const len = out.readUInt32BE(pos);
    if (pos + 12 + len > out.length) break;
    out.writeUInt32BE(crc32(out.subarray(pos + 4, pos + 8 + len)), pos + 8 + len);
    pos += 12 + len;
  }
  return out;
}

/** Byte length of each filtered scanline the header implies (Adam7: per pass). */
function scanlines(width: number, height: number, bitDepth: number, colorType: number, interlace: 0 | 1): number[] {
  const channels = ({ 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 } as Record<number, number>)[colorType] ?? 1;
  const row = (w: number) => Math.ceil((w * channels * bitDepth) / 8) + 1;
  if (!interlace) return Array(height).fill(row(width));
  const out: number[] = [];
  for (const [x0, y0, dx, dy] of [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]] as const) {
    const w = Math.ceil((width - x0) / dx);
    const h = Math.ceil((height - y0) / dy);
    if (w > 0) for (let i = 0; i < h; i++) out.push(row(w));
  }
  return out;
}

function decode(data: Buffer, centre?: { centerX: number; centerY: number }): 'ok' | 'bad-input' {
  try {
    const p = prepareSlice({ data, offset: 0, ...centre }, CARD);
    assert.equal(p.patch.length, 64 * 64);
    assert.ok(p.patch.every((v) => v >= 0 && v <= 1), 'patch in [0,1]');
    return 'ok';
  } catch (e) {
    if (e instanceof BadInputError) return 'bad-input';
    throw e;
  }
}

/** One case: its outcome, timed and counted; memory is sampled every 50 cases. */
function outcome(data: Buffer, centre?: { centerX: number; centerY: number }): 'ok' | 'bad-input' {
  const t0 = performance.now();
  const result = decode(data, centre);
  const ms = performance.now() - t0;
  assert.ok(ms < CASE_MS_LIMIT, `one case took ${ms.toFixed(0)} ms`);
  totals.cases++;
  totals[result]++;
  totals.slowestMs = Math.max(totals.slowestMs, ms);
  if (++sinceRssCheck >= 50) {
    sinceRssCheck = 0;
    const growth = process.memoryUsage.rss() - rssAtStart;
    totals.peakRssGrowth = Math.max(totals.peakRssGrowth, growth);
    assert.ok(growth < RSS_GROWTH_LIMIT, `RSS grew by ${(growth / 2 ** 20).toFixed(0)} MiB`);
  }
  return result;
}

function run(name: string, base: Buffer, headerBytes: number, transform: (b: Buffer) => Buffer, seed: number) {
  const tally = { ok: 0, 'bad-input': 0 };
  fc.assert(
    fc.property(mutationsArb(headerBytes), (m) => {
      tally[outcome(transform(mutate(base, m)))]++;
    }),
    { numRuns: RUNS, seed },
  );
  assert.equal(tally.ok + tally['bad-input'], RUNS);
  return `${name}: ${RUNS} runs, ${tally.ok} decoded, ${tally['bad-input']} BadInputError`;
}

test(`fuzz: mutated 8-bit PNG (${RUNS} runs)`, { timeout: 120_000 }, (t) => {
  t.diagnostic(run('png8', makePhantomPng({ seed: 1, size: 48 }), 64, (b) => b, 101));
});

test(`fuzz: mutated 16-bit PNG with CRCs repaired, reaching zlib and filters (${RUNS} runs)`, { timeout: 120_000 }, (t) => {
  const png = makePhantomPng({ seed: 2, size: 40, bitDepth: 16 });
  t.diagnostic(run('png16-crc-fixed', png, png.length, fixPngCrcs, 102));
});

test(`fuzz: well-formed containers with random headers and random filtered data (${RUNS} runs)`, { timeout: 120_000 }, (t) => {
  // Valid chunks, CRCs and zlib: the random part is IHDR (sizes, depth, colour type, interlace)
  // and the filtered scanlines (filter bytes, lengths), which only pngjs's decoder sees.
  const tally = { ok: 0, 'bad-input': 0 };
  fc.assert(
    fc.property(
      fc.integer({ min: 28, max: 70 }),
      fc.integer({ min: 28, max: 70 }),
      fc.constantFrom(1, 2, 4, 8, 16, 3, 0),
      fc.constantFrom(0, 2, 3, 4, 6, 1, 7),
      fc.constantFrom<0 | 1>(0, 1),
      fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 70 * 70 * 8 * 2 })),
      fc.integer(),
      (width, height, bitDepth, colorType, interlace, lengthChoice, seed) => {
        // -1 (half the time): exactly the length the header implies, so pngjs gets to unfilter.
        const rows = scanlines(width, height, bitDepth, colorType, interlace);
        const rawLength = lengthChoice < 0 ? rows.reduce((a, r) => a + r, 0) : lengthChoice;
        const raw = Buffer.alloc(rawLength);
        let x = seed >>> 0;
        for (let i = 0; i < rawLength; i++) {
          x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
          raw[i] = x >>> 24;
        }
        // Filter bytes at the row starts: valid (0..4), except in one case of eight.
        const filterRange = (seed & 7) === 0 ? 6 : 5;
        for (let i = 0, at = 0; i < rows.length && at < rawLength; at += rows[i]!, i++) raw[at] = ((seed >>> 0) >>> (i % 24)) % filterRange;
        tally[outcome(rawPng({ width, height, bitDepth, colorType, interlace, raw }))]++;
      },
    ),
    { numRuns: RUNS, seed: 106 },
  );
  t.diagnostic(`png-structured: ${RUNS} runs, ${tally.ok} decoded, ${tally['bad-input']} BadInputError`);
});

test(`fuzz: mutated DICOM, explicit VR (${RUNS} runs)`, { timeout: 120_000 }, (t) => {
  const dcm = makePhantomDicom({ seed: 3, rows: 40, columns: 40, identifying: { PatientName: 'DOE^JANE' } });
  t.diagnostic(run('dicom-explicit', dcm, dcm.length - 40 * 40 * 2, (b) => b, 103));
});

test(`fuzz: mutated DICOM, implicit VR (${RUNS} runs)`, { timeout: 120_000 }, (t) => {
  const dcm = makePhantomDicom({ seed: 4, rows: 40, columns: 40, vr: 'implicit' });
  t.diagnostic(run('dicom-implicit', dcm, dcm.length - 40 * 40 * 2, (b) => b, 104));
});

// Compressed syntaxes: mutations anywhere, so they reach the RLE, JPEG, JPEG-LS and JPEG 2000
// decoders (JS and WebAssembly) and the inflater, not only the header.
const COMPRESSED_RUNS = Math.max(20, Math.round(RUNS / 3));
for (const [ts, seed] of [
  ['1.2.840.10008.1.2.1.99', 110], ['1.2.840.10008.1.2.5', 111], ['1.2.840.10008.1.2.4.70', 112],
  ['1.2.840.10008.1.2.4.80', 113], ['1.2.840.10008.1.2.4.90', 114],
] as const) {
  test(`fuzz: mutated DICOM, transfer syntax ${ts} (${COMPRESSED_RUNS} runs)`, { timeout: 120_000 }, (t) => {
    const dcm = makePhantomDicom({ seed: 6, rows: 40, columns: 40, transferSyntaxUid: ts });
    const tally = { ok: 0, 'bad-input': 0 };
    fc.assert(
      fc.property(mutationsArb(dcm.length), (m) => {
        tally[outcome(mutate(dcm, m))]++;
      }),
      { numRuns: COMPRESSED_RUNS, seed },
    );
    t.diagnostic(`${ts}: ${COMPRESSED_RUNS} runs, ${tally.ok} decoded, ${tally['bad-input']} BadInputError`);
  });
}

test(`fuzz: arbitrary bytes and centres (${RUNS} runs)`, { timeout: 120_000 }, (t) => {
  const tally = { ok: 0, 'bad-input': 0 };
  const png = makePhantomPng({ seed: 5 });
  const dcm = makePhantomDicom({ seed: 5, rows: 40, columns: 40 });
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 400 }),
      fc.constantFrom('raw', 'png-prefix', 'dicom-prefix'),
      fc.option(fc.record({ centerX: fc.double(), centerY: fc.double() })),
      (bytes, prefix, centre) => {
        const head = prefix === 'png-prefix' ? png.subarray(0, 8) : prefix === 'dicom-prefix' ? dcm.subarray(0, 132) : Buffer.alloc(0);
        tally[outcome(Buffer.concat([head, bytes]), centre ?? undefined)]++;
      },
    ),
    { numRuns: RUNS, seed: 105 },
  );
  t.diagnostic(`arbitrary: ${RUNS} runs, ${tally.ok} decoded, ${tally['bad-input']} BadInputError`);
});

test(`fuzz: PNG with container-aware mutations (lengths, IHDR fields, order, duplicates, bombs) (${RUNS * 2} runs)`, { timeout: 600_000 }, (t) => {
  const bases = [makePhantomPng({ seed: 11, size: 64 }), makePhantomPng({ seed: 12, size: 48, bitDepth: 16 })];
  const tally = { ok: 0, 'bad-input': 0 };
  fc.assert(
    fc.property(fc.nat(bases.length - 1), pngCaseArb, (which, c) => {
      tally[outcome(mutatePng(bases[which]!, c))]++;
    }),
    { numRuns: RUNS * 2, seed: 107 },
  );
  assert.equal(tally.ok + tally['bad-input'], RUNS * 2);
  assert.ok(tally['bad-input'] > 0 && tally.ok > 0, 'both outcomes occur: the mutations are neither all fatal nor all harmless');
  t.diagnostic(`png-structural: ${RUNS * 2} runs, ${tally.ok} decoded, ${tally['bad-input']} BadInputError`);
});

for (const vr of ['explicit', 'implicit'] as const) {
  test(`fuzz: DICOM (${vr} VR) with element-aware mutations (lengths, swapped tags, Rows/Columns/bits, duplicates) (${RUNS * 2} runs)`, { timeout: 600_000 }, (t) => {
    const base = makePhantomDicom({ seed: 13, rows: 48, columns: 48, vr });
    const tally = { ok: 0, 'bad-input': 0 };
    fc.assert(
      fc.property(dicomCaseArb, fc.option(fc.record({ centerX: fc.integer({ min: -10, max: 60 }), centerY: fc.integer({ min: -10, max: 60 }) })), (mutations, centre) => {
        tally[outcome(mutateDicom(base, mutations, vr === 'implicit'), centre ?? undefined)]++;
      }),
      { numRuns: RUNS * 2, seed: vr === 'explicit' ? 108 : 109 },
    );
    assert.equal(tally.ok + tally['bad-input'], RUNS * 2);
    assert.ok(tally['bad-input'] > 0 && tally.ok > 0, 'both outcomes occur');
    t.diagnostic(`dicom-structural-${vr}: ${RUNS * 2} runs, ${tally.ok} decoded, ${tally['bad-input']} BadInputError`);
  });
}

// Compressed pixel data with lying headers: Rows/Columns/bits, element lengths and tags mutated
// around an encapsulated RLE, JPEG Lossless or JPEG 2000 frame. JPEG-LS has its own property
// below: CharLS can spin for seconds on such frames, which only the service's deadline bounds.
for (const [ts, seed] of [['1.2.840.10008.1.2.5', 115], ['1.2.840.10008.1.2.4.70', 116], ['1.2.840.10008.1.2.4.90', 118]] as const) {
  test(`fuzz: DICOM (${ts}) with element-aware mutations (${COMPRESSED_RUNS} runs)`, { timeout: 600_000 }, (t) => {
    const base = makePhantomDicom({ seed: 14, rows: 48, columns: 48, transferSyntaxUid: ts });
    const tally = { ok: 0, 'bad-input': 0 };
    fc.assert(
      fc.property(dicomCaseArb, (mutations) => {
        tally[outcome(mutateDicom(base, mutations, false))]++;
      }),
      { numRuns: COMPRESSED_RUNS, seed },
    );
    assert.ok(tally['bad-input'] > 0 && tally.ok > 0, 'both outcomes occur');
    t.diagnostic(`dicom-structural-${ts}: ${COMPRESSED_RUNS} runs, ${tally.ok} decoded, ${tally['bad-input']} BadInputError`);
  });
}

// Open finding (found by the element-aware fuzzing with seed 117): two bytes inserted into a
// JPEG-LS frame make CharLS (WebAssembly, synchronous, on the event loop) spend 7.5-15 s before it
// throws, for a 48x48 image; a request may carry 64 such slices. Kept as a todo so that the suite
// shows it until JPEG-LS decoding is bounded (a worker with a deadline, or a stream check first).
// Found by this fuzzing (seed 117): two bytes inserted into a JPEG-LS frame make CharLS
// (WebAssembly) spend 7.5-15 s before it throws, for a 48x48 image. The service decodes slices
// on worker threads with a deadline (src/imaging/slice-preparer.ts); these tests go through it.
const JPEG_LS = '1.2.840.10008.1.2.4.80';
const DEADLINE_MS = 1000;

test('JPEG-LS: a frame CharLS spins on is stopped at the deadline; the event loop and the other thread go on', async () => {
  const preparer = new SlicePreparer({ threads: 2, timeoutMs: DEADLINE_MS });
  try {
    const base = makePhantomDicom({ seed: 14, rows: 48, columns: 48, transferSyntaxUid: JPEG_LS });
    const at = base.indexOf(Buffer.from([0xff, 0xf7])) + 60;
    const corrupt = Buffer.concat([base.subarray(0, at), Buffer.alloc(2), base.subarray(at)]);
    preparer.warmUp();
    await Promise.all([0, 1].map(() => preparer.prepare({ data: base, offset: 0 }, CARD))); // both threads running
    let worstLag = 0;
    let last = performance.now();
    const ticker = setInterval(() => {
      const now = performance.now();
      worstLag = Math.max(worstLag, now - last - 10);
      last = now;
    }, 10);
    const t0 = performance.now();
    const stuck = preparer.prepare({ data: corrupt, offset: 0 }, CARD).then(
      () => assert.fail('the corrupt frame decoded'),
      (e: unknown) => e,
    );
    const good = await preparer.prepare({ data: base, offset: 0 }, CARD);
    const goodMs = performance.now() - t0;
    const err = await stuck;
    const stuckMs = performance.now() - t0;
    clearInterval(ticker);
    assert.ok(err instanceof BadInputError, String(err));
    assert.match(err.message, /longer than 1000 ms/);
    assert.equal(good.patch.length, 64 * 64);
    assert.ok(goodMs < 500, `the good slice waited ${goodMs.toFixed(0)} ms behind the stuck one`);
    // Not before the deadline, give or take the timers' millisecond granularity: the deadline is
    // counted from Date.now() and fires on the event loop's millisecond clock, which may run up to
    // a millisecond behind performance.now() (seen: refused after 999.94 ms).
    assert.ok(stuckMs >= DEADLINE_MS - 5 && stuckMs < DEADLINE_MS + 1000, `refused after ${stuckMs.toFixed(2)} ms`);
    assert.ok(worstLag < 200, `the event loop stalled for ${worstLag.toFixed(0)} ms`);
    // The stopped thread was replaced: decoding goes on.
    assert.equal((await preparer.prepare({ data: base, offset: 0 }, CARD)).patch.length, 64 * 64);
  } finally {
    await preparer.close();
  }
});

test(`fuzz: DICOM (${JPEG_LS}) with element-aware mutations, through the decoding threads (${COMPRESSED_RUNS} runs)`, { timeout: 900_000 }, async (t) => {
  const preparer = new SlicePreparer({ threads: 2, timeoutMs: DEADLINE_MS });
  try {
    const base = makePhantomDicom({ seed: 14, rows: 48, columns: 48, transferSyntaxUid: JPEG_LS });
    const tally = { ok: 0, 'bad-input': 0, stopped: 0 };
    let slowest = 0;
    await fc.assert(
      fc.asyncProperty(dicomCaseArb, async (mutations) => {
        // Both threads started and idle before the clock starts: a thread stopped (or out of
        // memory) in an earlier case is replaced here, so the start-up of its replacement (~0.5 s,
        // more on a loaded machine; never counted in the deadline) is not counted in this case.
        await Promise.all([0, 1].map(() => preparer.prepare({ data: base, offset: 0 }, CARD)));
        const t0 = performance.now();
        try {
          const p = await preparer.prepare({ data: mutateDicom(base, mutations, false), offset: 0 }, CARD);
          assert.ok(p.patch.length === 64 * 64 && p.patch.every((v) => v >= 0 && v <= 1), 'a sane patch');
          tally.ok++;
        } catch (e) {
          if (!(e instanceof BadInputError)) throw e;
          tally['bad-input']++;
          if (/longer than/.test(e.message)) tally.stopped++;
        }
        const ms = performance.now() - t0;
        slowest = Math.max(slowest, ms);
        // The deadline, and time to spare for a loaded machine.
        assert.ok(ms < DEADLINE_MS + 1500, `one case took ${ms.toFixed(0)} ms`);
      }),
      { numRuns: COMPRESSED_RUNS, seed: 117 },
    );
    totals.cases += COMPRESSED_RUNS;
    totals.ok += tally.ok;
    totals['bad-input'] += tally['bad-input'];
    assert.ok(tally['bad-input'] > 0 && tally.ok > 0, 'both outcomes occur');
    t.diagnostic(`dicom-structural-${JPEG_LS}: ${COMPRESSED_RUNS} runs, ${tally.ok} decoded, ${tally['bad-input']} BadInputError (${tally.stopped} stopped at the ${DEADLINE_MS} ms deadline); slowest ${slowest.toFixed(0)} ms`);
  } finally {
    await preparer.close();
  }
});
