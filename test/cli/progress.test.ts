/** The import's progress bar: a redrawn line on a terminal, plain lines in a log. */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { formatDuration, ProgressBar } from '../../src/cli/progress.ts';

function sink(isTTY: boolean) {
  const chunks: string[] = [];
  const out = Object.assign(
    new Writable({
      write(chunk, _enc, done) {
        chunks.push(String(chunk));
        done();
      },
    }),
    { isTTY, columns: 200 },
  );
  return { out, chunks };
}

test('in a log, the bar prints one plain line per tenth of the way, with rate and ETA', () => {
  const { out, chunks } = sink(false);
  const bar = new ProgressBar(out, 'import');
  for (let done = 0; done <= 50; done++) bar.update({ done, total: 50, detail: `imported ${done}` });
  bar.finish();
  assert.equal(chunks.length, 11, '0%, 10%, ... 100%');
  assert.ok(chunks.every((c) => c.endsWith('\n') && !c.includes('\r')));
  assert.match(chunks[10]!, /^import \[#{30}\] 50\/50 100% [\d.]+\/s ETA 0:00 elapsed \d+:\d\d  imported 50\n$/);
  assert.match(chunks[5]!, /\[#{15}-{15}\] 25\/50  50%/);
});

test('on a terminal, the bar redraws one line and ends it when finished', () => {
  const { out, chunks } = sink(true);
  const bar = new ProgressBar(out, 'import');
  bar.update({ done: 0, total: 3, detail: '' });
  bar.update({ done: 3, total: 3, detail: 'done' });
  bar.finish();
  assert.ok(chunks.slice(0, -1).every((c) => c.startsWith('\r') && !c.includes('\n')));
  assert.match(chunks.at(-2)!, /3\/3 100%/);
  assert.equal(chunks.at(-1), '\n');
});

test('durations read as m:ss or h:mm:ss', () => {
  assert.equal(formatDuration(5), '0:05');
  assert.equal(formatDuration(125), '2:05');
  assert.equal(formatDuration(3725), '1:02:05');
  assert.equal(formatDuration(Infinity), '--:--');
});
