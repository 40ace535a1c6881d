// Parity of onnxruntime-node against PyTorch (fixture from training/parity_fixture.py).
//   node training/check_parity.mjs models/fcdn-v1.onnx models/fcdn-v1.parity.json
// Passes when >= 99.9% of bits agree and every differing bit has |pre-sign| < 1e-4.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(path.resolve('package.json'));
const ort = require('onnxruntime-node');
const [modelPath, fixturePath] = process.argv.slice(2);
const fx = JSON.parse(fs.readFileSync(fixturePath, 'utf8'));
const session = await ort.InferenceSession.create(modelPath, { executionProviders: ['cpu'] });
const [n] = fx.shape;
const input = new ort.Tensor('float32', Float32Array.from(fx.patches.flat()), fx.shape);
const out = await session.run({ patches: input });
let total = 0, equal = 0, worst = 0, maxDiff = 0, bad = 0;
for (const name of Object.keys(fx.outputs)) {
  const got = out[name].data;
  const want = fx.outputs[name].flat();
  for (let i = 0; i < want.length; i++) {
    total++;
    maxDiff = Math.max(maxDiff, Math.abs(got[i] - want[i]));
    if ((got[i] > 0) === (want[i] > 0)) equal++;
    else { worst = Math.max(worst, Math.abs(want[i])); if (Math.abs(want[i]) >= fx.tolerance.maxAbsPreSignWhereBitsDiffer) bad++; }
  }
}
const frac = equal / total;
console.log(JSON.stringify({ patches: n, bits: total, equalFraction: frac, maxAbsDiff: maxDiff, worstDifferingPreSign: worst }));
if (frac < fx.tolerance.minEqualBitFraction || bad > 0) { console.error('parity FAILED'); process.exit(1); }
console.log('parity ok');
