/**
 * The background loop shared by the reindex worker, the object janitor and the upload sweeper:
 * it waits between passes unless there is more to do or it was woken (even mid-pass), survives a
 * failing pass, and stop() waits for the pass in progress.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { PollingLoop } from '../../src/services/polling-loop.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const silent = pino({ level: 'silent' });

test('runs a pass at start, then one per poll; "more to do" runs the next at once', async () => {
  const passes: number[] = [];
  let backlog = 3;
  const t0 = performance.now();
  const loop = new PollingLoop('test', 200, async () => {
    passes.push(performance.now() - t0);
    return backlog-- > 0;
  }, silent);
  loop.start();
  await sleep(300);
  await loop.stop();
  // Four passes back to back (three with backlog, one that found none), then one after the poll.
  assert.equal(passes.length, 5, JSON.stringify(passes));
  assert.ok(passes[3]! < 100, 'the backlog was worked through without waiting');
  assert.ok(passes[4]! >= 190, `the fifth pass waited for the poll (${passes[4]!.toFixed(0)} ms)`);
});

test('a wake() during a pass is not lost: the next pass follows without the poll wait', async () => {
  let passes = 0;
  let loop!: PollingLoop;
  loop = new PollingLoop('test', 10_000, async () => {
    passes++;
    if (passes === 1) loop.wake(); // e.g. a reindex requested while the worker was busy
    return false;
  }, silent);
  loop.start();
  await sleep(100);
  assert.equal(passes, 2);
  loop.wake();
  await sleep(50);
  assert.equal(passes, 3, 'wake() ends the wait');
  await loop.stop();
});

test('a failing pass is logged and retried after the poll; stop() waits for the pass in progress', async () => {
  const logged: string[] = [];
  const log = pino({ level: 'warn' }, { write: (line: string) => void logged.push(JSON.parse(line).msg) });
  let passes = 0;
  let finished = false;
  const loop = new PollingLoop('flaky', 50, async () => {
    passes++;
    if (passes === 1) throw new Error('database down');
    await sleep(100);
    finished = true;
    return false;
  }, log);
  loop.start();
  await sleep(80);
  assert.equal(passes, 2, 'retried after the poll');
  assert.deepEqual(logged, ['flaky: pass failed; retrying in 50 ms']);
  await loop.stop();
  assert.ok(finished, 'stop() returned only after the pass in progress finished');
  assert.equal(loop.isRunning, false);
});
