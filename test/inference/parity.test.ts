/**
 * Parity: the codes the service computes with onnxruntime-node (FcdnEncoder) equal PyTorch's for
 * the same patches: >= 99.9% of bits agree, and a bit may differ only where PyTorch's pre-sign
 * value is within 1e-4 of zero. The fixture (training/parity_fixture.py) holds the patches and
 * PyTorch's outputs. Default: the shipped model; FCDN_PARITY_MODEL points at another .onnx with a
 * `.parity.json` beside it (CI's smoke-trained model).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { SHIPPED_MODEL } from '../../src/config.ts';
import { FcdnEncoder } from '../../src/inference/index.ts';

const modelPath = process.env.FCDN_PARITY_MODEL ?? SHIPPED_MODEL;
const fixturePath = modelPath.replace(/\.onnx$/, '.parity.json');

interface ParityFixture {
  sha256: string;
  shape: [number, number, number, number];
  tolerance: { minEqualBitFraction: number; maxAbsPreSignWhereBitsDiffer: number };
  patches: number[][];
  outputs: Record<'code_l4' | 'code_l17' | 'code_l25', number[][]>;
}

test(`onnxruntime-node codes equal PyTorch's (${modelPath.split('/').slice(-2).join('/')})`, async () => {
  const fx = JSON.parse(fs.readFileSync(fixturePath, 'utf8')) as ParityFixture;
  const encoder = await FcdnEncoder.load(modelPath, 'cpu');
  try {
    assert.equal(encoder.sha256, fx.sha256, 'the fixture was made for this model file');
    const codes = await encoder.encode(fx.patches.map((p) => Float32Array.from(p)));
    const io = encoder.card.io;
    let bits = 0;
    let equal = 0;
    for (const [layer, output] of [['shallow', io.shallow], ['middle', io.middle], ['deep', io.deep]] as const) {
      const torch = fx.outputs[output as keyof ParityFixture['outputs']];
      codes.forEach((c, n) => {
        for (let i = 0; i < c[layer].length; i++) {
          bits++;
          const torchBit = torch[n]![i]! > 0 ? '1' : '0';
          if (c[layer][i] === torchBit) equal++;
          else assert.ok(Math.abs(torch[n]![i]!) < fx.tolerance.maxAbsPreSignWhereBitsDiffer, `${layer} bit ${i} of patch ${n} differs at pre-sign ${torch[n]![i]}`);
        }
      });
    }
    assert.ok(equal / bits >= fx.tolerance.minEqualBitFraction, `${equal}/${bits} bits agree`);
    console.log(`# parity: ${fx.shape[0]} patches, ${equal}/${bits} bits equal`);
  } finally {
    await encoder.close();
  }
});
