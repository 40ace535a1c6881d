/**
 * `npm run bench:inference -- [--model file.onnx] [--seconds 5]`: CPU inference throughput of
 * the FCDN encoder (slices per second) at several batch sizes, on generated phantoms.
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { SHIPPED_MODEL } from '../src/config.ts';
import { FcdnEncoder } from '../src/inference/index.ts';
import { prepareSlice } from '../src/imaging/index.ts';
import { makePhantomPng } from '../fixtures/phantoms.ts';

const { values } = parseArgs({ options: { model: { type: 'string', default: SHIPPED_MODEL }, seconds: { type: 'string', default: '5' } } });
const encoder = await FcdnEncoder.load(values.model!, 'cpu');
const patches = Array.from({ length: 64 }, (_, i) => prepareSlice({ data: makePhantomPng({ seed: i + 1, size: 64, diameterPx: 6 + (i % 24) }), offset: 0 }, encoder.card).patch);
const seconds = Number(values.seconds);
console.log(`model ${encoder.card.name} (${values.model}), ${encoder.executionProvider}, ${os.cpus().length} cores (${os.cpus()[0]?.model})`);
console.log('| batch | ms per batch (p50) | slices/s |\n|---|---|---|');
for (const batch of [1, 3, 16, 64]) {
  const times: number[] = [];
  const until = performance.now() + seconds * 1000;
  await encoder.encode(patches.slice(0, batch)); // warm-up
  while (performance.now() < until) {
    const t = performance.now();
    await encoder.encode(patches.slice(0, batch));
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  const p50 = times[Math.floor(times.length / 2)]!;
  console.log(`| ${batch} | ${p50.toFixed(1)} | ${((batch * 1000) / p50).toFixed(0)} |`);
}
await encoder.close();
