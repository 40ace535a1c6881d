/**
 * The decoding threads (src/imaging/slice-preparer.ts) give exactly what prepareSlice gives
 * inline, pass refusals through as BadInputError with their message, and turn a thread that dies
 * into a refusal of its slice, not a crash. The deadline itself is tested in fuzz.test.ts and
 * test/api/bad-input.test.ts with a real JPEG-LS frame that CharLS spins on.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BadInputError } from '../../src/errors.ts';
import { makePhantomDicom, makePhantomPng } from '../../fixtures/phantoms.ts';
import { prepareSlice } from '../../src/imaging/prepare-slice.ts';
import { SlicePreparer } from '../../src/imaging/slice-preparer.ts';
import { CARD } from './support.ts';

test('threads decode PNG and DICOM exactly as prepareSlice does inline, several slices at once', async () => {
  const preparer = new SlicePreparer({ threads: 2, timeoutMs: 10_000 });
  try {
    const inputs = [
      { data: makePhantomPng({ seed: 3, size: 100 }), offset: -1 },
      { data: makePhantomDicom({ seed: 4 }), offset: 0, centerX: 40, centerY: 50 },
      { data: makePhantomDicom({ seed: 5, transferSyntaxUid: '1.2.840.10008.1.2.4.90' }), offset: 1 },
      { data: makePhantomDicom({ seed: 6, transferSyntaxUid: '1.2.840.10008.1.2.4.80' }), offset: 2 },
    ];
    const threaded = await Promise.all(inputs.map((input) => preparer.prepare(input, CARD)));
    for (const [i, input] of inputs.entries()) {
      const inline = prepareSlice(input, CARD);
      assert.deepEqual(threaded[i]!.patch, inline.patch, `slice ${i}: same patch`);
      assert.ok(Buffer.isBuffer(threaded[i]!.storedPng));
      assert.equal(Buffer.compare(threaded[i]!.storedPng, inline.storedPng), 0, `slice ${i}: same stored PNG`);
      assert.equal(threaded[i]!.offset, input.offset);
      assert.deepEqual(threaded[i]!.dicom, inline.dicom);
    }
  } finally {
    await preparer.close();
  }
});

test('a refusal in a thread arrives as BadInputError with the decoder message', async () => {
  const preparer = new SlicePreparer({ threads: 1, timeoutMs: 10_000 });
  try {
    const truncated = makePhantomPng({ seed: 1 }).subarray(0, 60);
    const inlineMessage = (() => {
      try {
        prepareSlice({ data: truncated, offset: 0 }, CARD);
      } catch (e) {
        return (e as Error).message;
      }
    })();
    await assert.rejects(preparer.prepare({ data: truncated, offset: 0 }, CARD), (e: unknown) => e instanceof BadInputError && e.message === inlineMessage);
    // The thread is still there for the next slice.
    assert.equal((await preparer.prepare({ data: makePhantomPng({ seed: 2 }), offset: 0 }, CARD)).patch.length, 64 * 64);
  } finally {
    await preparer.close();
  }
});

test('a thread that runs out of heap refuses its slice and is replaced', async () => {
  // A heap far too small for the decoders: the thread dies of it, as one would on a bomb that got
  // past the header checks. The slice is refused; nothing escapes as an uncaught error.
  // 4 MB, not less: on Node 24 a thread given 2 MB cannot even unpack its start-up snapshot, and V8
  // then aborts the whole process ("Fatal JavaScript out of memory: GC during deserialization").
  const abandoned: string[] = [];
  const starved = new SlicePreparer({ threads: 1, timeoutMs: 10_000, maxHeapMb: 4, onAbandoned: (r) => abandoned.push(r) });
  try {
    await assert.rejects(starved.prepare({ data: makePhantomPng({ seed: 2 }), offset: 0 }, CARD), (e: unknown) => e instanceof BadInputError && /more memory than a slice may use/.test(e.message));
    assert.deepEqual(abandoned, ['memory']);
  } finally {
    await starved.close();
  }
});

test('closing refuses queued slices and later calls', async () => {
  const preparer = new SlicePreparer({ threads: 1, timeoutMs: 10_000 });
  const slices = Array.from({ length: 3 }, (_, i) => preparer.prepare({ data: makePhantomPng({ seed: i + 1 }), offset: 0 }, CARD).then(() => 'decoded', (e: Error) => e.message));
  await preparer.close();
  const outcomes = await Promise.all(slices);
  assert.ok(outcomes.slice(1).every((o) => /closed/.test(o)), JSON.stringify(outcomes));
  await assert.rejects(preparer.prepare({ data: makePhantomPng(), offset: 0 }, CARD), /closed/);
});

test('request slices go before background (reindex) slices, which never take every thread', async () => {
  const preparer = new SlicePreparer({ threads: 2, timeoutMs: 10_000 });
  try {
    const finished: string[] = [];
    const png = (seed: number) => ({ data: makePhantomPng({ seed, size: 512 }), offset: 0 });
    await Promise.all([png(1), png(2)].map((p) => preparer.prepare(p, CARD))); // both threads started
    const images = Array.from({ length: 7 }, (_, i) => png(i + 3)); // made before any is queued
    const background = images.slice(0, 6).map((image, i) => preparer.prepareInBackground(image, CARD).then(() => void finished.push(`reindex ${i + 1}`)));
    const request = preparer.prepare(images[6]!, CARD).then(() => void finished.push('request'));
    // The rule, checked when it is applied (completion order would depend on the machine's load):
    // one background slice holds one thread, the request takes the other at once, five wait.
    assert.deepEqual(preparer.waiting, { requests: 0, background: 5 });
    await Promise.all([...background, request]);
    // The background slices run one at a time on one thread, in the order they came.
    assert.deepEqual(finished.filter((f) => f !== 'request'), background.map((_, i) => `reindex ${i + 1}`));
    // A request queued behind background work still goes first to the next free thread.
    const more = images.slice(0, 3).map((image) => preparer.prepareInBackground(image, CARD));
    const queuedRequests = [preparer.prepare(images[3]!, CARD), preparer.prepare(images[4]!, CARD)];
    assert.deepEqual(preparer.waiting, { requests: 1, background: 2 });
    // The first thread to free takes the waiting request, not the waiting background slices (the
    // next task is handed out inside the thread's reply, before either promise settles).
    await Promise.race([more[0], queuedRequests[0]]);
    assert.deepEqual(preparer.waiting, { requests: 0, background: 2 });
    await Promise.all([...more, ...queuedRequests]);
    assert.deepEqual(preparer.waiting, { requests: 0, background: 0 });
  } finally {
    await preparer.close();
  }
});
