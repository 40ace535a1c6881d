// Batched CPU inference throughput of an exported FCDN with onnxruntime-node; also the
// process CPU time per slice, the fairer comparison between models on a shared machine.
//   node training/throughput.mjs models/fcdn-v1.onnx [batch=32] [seconds=10] [threads=2]
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(path.resolve('package.json'));
const ort = require('onnxruntime-node');
const [modelPath, batchArg = '32', secondsArg = '10', threadsArg = '2'] = process.argv.slice(2);
const batch = Number(batchArg), seconds = Number(secondsArg), threads = Number(threadsArg);
const session = await ort.InferenceSession.create(modelPath, {
  executionProviders: ['cpu'], intraOpNumThreads: threads, interOpNumThreads: 1,
});
const data = new Float32Array(batch * 64 * 64);
for (let i = 0; i < data.length; i++) data[i] = ((i * 2654435761) % 1000) / 1000; // deterministic filler
const feeds = { patches: new ort.Tensor('float32', data, [batch, 1, 64, 64]) };
await session.run(feeds); // warm-up
let runs = 0;
const c0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
while (Number(process.hrtime.bigint() - t0) / 1e9 < seconds) { await session.run(feeds); runs++; }
const s = Number(process.hrtime.bigint() - t0) / 1e9;
const cpu = process.cpuUsage(c0); // all threads: less sensitive than wall time to other load
console.log(JSON.stringify({ model: path.basename(modelPath), batch, threads, runs,
  slicesPerSecond: +(runs * batch / s).toFixed(1), msPerBatch: +(1000 * s / runs).toFixed(1),
  cpuMsPerSlice: +((cpu.user + cpu.system) / 1000 / runs / batch).toFixed(3) }));
