/**
 * `npm run bench:inference -- [--model file.onnx] [--seconds 5] [--providers cpu,webgpu,cuda] [--out file.md]`:
 * inference throughput of the FCDN encoder (slices per second) per execution provider at the
 * batch sizes that matter (1 and 3: a query; 32 and 256: bulk encoding by reindex and import), on
 * generated phantoms, and each GPU provider's codes against the CPU's (bits equal of all bits).
 * A provider that cannot load here is reported with its reason, not skipped silently.
 */
import fs from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { SHIPPED_MODEL } from '../src/config.ts';
import { FcdnEncoder, parseExecutionProviderSetting } from '../src/inference/index.ts';
import { prepareSlice } from '../src/imaging/index.ts';
import { makePhantomPng } from '../fixtures/phantoms.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: SHIPPED_MODEL },
    seconds: { type: 'string', default: '5' },
    providers: { type: 'string', default: 'cpu' },
    out: { type: 'string' },
  },
});
const BATCHES = [1, 3, 32, 256];
const seconds = Number(values.seconds);
const providers = values.providers!.split(',').map((p) => parseExecutionProviderSetting(p));
const lines: string[] = [];
const say = (line: string) => {
  console.log(line);
  lines.push(line);
};

let patches: Float32Array[] | undefined;
let cpuCodes: string[] | undefined;
say(`Made by \`npm run bench:inference -- --model ${values.model} --seconds ${seconds} --providers ${values.providers}\` on ${new Date().toISOString().slice(0, 10)}; ${os.cpus().length} cores (${os.cpus()[0]?.model}).\n`);
say('| provider | batch | ms per batch (p50) | slices/s |\n|---|---|---|---|');
const parity: string[] = [];
for (const provider of providers) {
  let encoder: FcdnEncoder;
  try {
    encoder = await FcdnEncoder.load(values.model!, provider, undefined, { maxBatch: Math.max(...BATCHES) });
  } catch (e) {
    say(`| ${provider} | - | unavailable: ${(e as Error).message.split('\n')[0]} | - |`);
    continue;
  }
  patches ??= Array.from({ length: Math.max(...BATCHES) }, (_, i) =>
    prepareSlice({ data: makePhantomPng({ seed: i + 1, size: 64, diameterPx: 6 + (i % 24) }), offset: 0 }, encoder.card).patch,
  );
  const codes = (await encoder.encode(patches)).map((c) => c.shallow + c.middle + c.deep);
  if (encoder.executionProvider === 'cpu') cpuCodes ??= codes;
  else if (cpuCodes) {
    let equal = 0;
    let total = 0;
    codes.forEach((c, i) => {
      for (let b = 0; b < c.length; b++) equal += c[b] === cpuCodes![i]![b] ? 1 : 0;
      total += c.length;
    });
    parity.push(`${encoder.executionProvider}: ${equal} / ${total} code bits equal to the CPU's on ${codes.length} phantom patches`);
  }
  for (const batch of BATCHES) {
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
    say(`| ${encoder.executionProvider} | ${batch} | ${p50.toFixed(1)} | ${((batch * 1000) / p50).toFixed(0)} |`);
  }
  await encoder.close();
}
if (parity.length) say(`\n${parity.join('\n')}` + (cpuCodes ? '' : ' (list cpu first to compare)'));
if (values.out) fs.writeFileSync(values.out, `# Inference throughput per execution provider\n\n${lines.join('\n')}\n`);
