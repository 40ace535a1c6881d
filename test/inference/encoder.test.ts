import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import ort from 'onnxruntime-node';
import { FcdnEncoder, signBits } from '../../src/inference/encoder.ts';
import { ExecutionProviderError, parseExecutionProviderSetting, type SessionFactory } from '../../src/inference/execution-provider.ts';
import { ModelLoadError, modelCardPath, readModel, validateModelCard } from '../../src/inference/model-card.ts';
import { makePhantomDicom, makePhantomPng } from '../../fixtures/phantoms.ts';
import { prepareSlice } from '../../src/imaging/prepare-slice.ts';
import { FIXTURE_MODEL } from './support.ts';

const messages: string[] = [];
const log = { info: (m: string) => messages.push(`info ${m}`), warn: (m: string) => messages.push(`warn ${m}`) };
let encoder: FcdnEncoder;
let dir: string;

before(async () => {
  encoder = await FcdnEncoder.load(FIXTURE_MODEL, 'auto', log);
  dir = await mkdtemp(path.join(tmpdir(), 'fcdn-inference-'));
});
after(async () => {
  await encoder?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Copy the fixture under another name, optionally editing its card or bytes. */
async function variant(name: string, edit: { card?: (c: Record<string, unknown>) => unknown; bytes?: (b: Buffer) => Buffer } = {}) {
  const onnx = path.join(dir, `${name}.onnx`);
  const bytes = await readFile(FIXTURE_MODEL);
  await writeFile(onnx, edit.bytes ? edit.bytes(bytes) : bytes);
  const card = JSON.parse(await readFile(modelCardPath(FIXTURE_MODEL), 'utf8'));
  await writeFile(modelCardPath(onnx), JSON.stringify(edit.card ? edit.card(card) : card));
  return onnx;
}

const phantomPatches = () => [
  makePhantomPng({ seed: 1, diameterPx: 5 }),
  makePhantomPng({ seed: 2, diameterPx: 28, lobulation: 0.35 }),
  makePhantomPng({ seed: 3, diameterPx: 14, texture: 'ground-glass', bitDepth: 16 }),
  makePhantomPng({ seed: 4, size: 180, diameterPx: 60, texture: 'part-solid' }),
  makePhantomPng({ seed: 5, diameterPx: 10, vessel: false }),
  makePhantomDicom({ seed: 6, diameterPx: 20 }),
  makePhantomDicom({ seed: 7, diameterPx: 8, vr: 'implicit' }),
].map((data) => prepareSlice({ data, offset: 0 }, encoder.card).patch);

test('auto on this machine tries CUDA, then WebGPU, then runs on the CPU, one log line per refusal', () => {
  assert.equal(encoder.executionProvider, 'cpu');
  const refusals = messages.filter((m) => m.startsWith('warn '));
  assert.equal(refusals.length, 2, refusals.join('\n'));
  assert.match(refusals[0]!, /^warn inference: cuda unavailable: .*libonnxruntime_providers_cuda\.so is not installed\. It needs .*CUDA 12 and cuDNN 9\. Trying the next provider\.$/);
  // No Vulkan driver on the CI machines: onnxruntime finds no WebGPU adapter.
  assert.match(refusals[1]!, /^warn inference: webgpu unavailable: .*adapter.*\. It needs a Vulkan driver .*libvulkan1\)\. Trying the next provider\.$/);
  for (const line of refusals) assert.ok(!line.includes('\n') && !line.includes('/onnxruntime_src/'), `one plain line: ${line}`);
  assert.ok(messages.includes('info inference: execution provider cpu'));
  assert.equal(encoder.card.inputSize, 64);
  assert.equal(encoder.sha256, encoder.card.sha256);
  assert.match(encoder.sha256, /^[0-9a-f]{64}$/);
});

test('cuda that cannot load fails loudly with what is missing', async () => {
  await assert.rejects(FcdnEncoder.load(FIXTURE_MODEL, 'cuda'), (e: unknown) => {
    assert.ok(e instanceof ExecutionProviderError);
    assert.match(e.message, /FCDN_EXECUTION_PROVIDER=cuda, but the CUDA execution provider could not be loaded/);
    assert.match(e.message, /ONNXRUNTIME_NODE_INSTALL=true npm rebuild onnxruntime-node.*CUDA 12 and cuDNN 9/);
    assert.match(e.message, /auto or cpu/);
    return true;
  });
  // With the library check passed, onnxruntime's own refusal is what the message carries.
  await assert.rejects(FcdnEncoder.load(FIXTURE_MODEL, 'cuda', undefined, { cudaMissing: () => null }), (e: unknown) => {
    assert.ok(e instanceof ExecutionProviderError);
    assert.match(e.message, /could not be loaded \(.*Failed to load shared library.*\)/);
    return true;
  });
});

test('webgpu without a Vulkan driver fails loudly with what is missing', async () => {
  await assert.rejects(FcdnEncoder.load(FIXTURE_MODEL, 'webgpu'), (e: unknown) => {
    assert.ok(e instanceof ExecutionProviderError);
    assert.match(e.message, /FCDN_EXECUTION_PROVIDER=webgpu, but the WebGPU execution provider could not be loaded \(.*adapter.*\)/);
    assert.match(e.message, /Vulkan driver .*libvulkan1/);
    assert.ok(!e.message.includes('/onnxruntime_src/'), e.message);
    return true;
  });
});

test('cpu never tries a GPU; auto takes the first GPU provider whose session is created (injected factory)', async () => {
  const seen: unknown[] = [];
  const failing = new Set<string>();
  const spy: SessionFactory = async (model, options) => {
    const provider = (options.executionProviders as string[])[0]!;
    seen.push(provider);
    if (failing.has(provider)) throw new Error(`no ${provider} here`);
    return ort.InferenceSession.create(model, { ...options, executionProviders: ['cpu'] });
  };
  const present = () => null;
  const cpu = await FcdnEncoder.load(FIXTURE_MODEL, 'cpu', undefined, { sessionFactory: spy, cudaMissing: present });
  assert.equal(cpu.executionProvider, 'cpu');
  assert.deepEqual(seen, ['cpu']);
  await cpu.close();

  for (const [fails, expected, tried] of [
    [[], 'cuda', ['cuda']],
    [['cuda'], 'webgpu', ['cuda', 'webgpu']],
    [['cuda', 'webgpu'], 'cpu', ['cuda', 'webgpu', 'cpu']],
  ] as const) {
    seen.length = 0;
    failing.clear();
    for (const f of fails) failing.add(f);
    const lines: string[] = [];
    const enc = await FcdnEncoder.load(FIXTURE_MODEL, 'auto', { info: (m) => lines.push(m), warn: (m) => lines.push(m) }, { sessionFactory: spy, cudaMissing: present });
    assert.equal(enc.executionProvider, expected);
    assert.deepEqual(seen, tried);
    assert.ok(lines.includes(`inference: execution provider ${expected}`), lines.join('\n'));
    assert.equal(lines.filter((l) => / unavailable: no (cuda|webgpu) here\./.test(l)).length, fails.length, lines.join('\n'));
    await enc.close();
  }
  // A session that exists on WebGPU is reported as such.
  seen.length = 0;
  failing.clear();
  const webgpu = await FcdnEncoder.load(FIXTURE_MODEL, 'webgpu', undefined, { sessionFactory: spy, cudaMissing: present });
  assert.equal(webgpu.executionProvider, 'webgpu');
  assert.deepEqual(seen, ['webgpu']);
  await webgpu.close();
});

test('FCDN_EXECUTION_PROVIDER parsing', () => {
  assert.equal(parseExecutionProviderSetting(undefined), 'auto');
  assert.equal(parseExecutionProviderSetting(''), 'auto');
  assert.equal(parseExecutionProviderSetting(' CUDA '), 'cuda');
  assert.equal(parseExecutionProviderSetting('WebGPU'), 'webgpu');
  assert.equal(parseExecutionProviderSetting('cpu'), 'cpu');
  assert.throws(() => parseExecutionProviderSetting('gpu'), /one of auto, cuda, webgpu, cpu/);
});

test('codes are three 64-character 0/1 strings per patch, and differ between different phantoms', async () => {
  const codes = await encoder.encode(phantomPatches());
  assert.equal(codes.length, 7);
  for (const c of codes) {
    assert.deepEqual(Object.keys(c).sort(), ['deep', 'middle', 'shallow']);
    for (const s of [c.shallow, c.middle, c.deep]) assert.match(s, /^[01]{64}$/);
  }
  const joined = codes.map((c) => c.shallow + c.middle + c.deep);
  assert.equal(new Set(joined).size, joined.length, 'every phantom gets its own code triple');
  assert.deepEqual(await encoder.encode([]), []);
});

test('batching gives the same codes as one by one (max batch 3 over 7 patches, and 64)', async () => {
  const patches = phantomPatches();
  const small = await FcdnEncoder.load(FIXTURE_MODEL, 'cpu', undefined, { maxBatch: 3 });
  try {
    const batched = await small.encode(patches);
    const single = [];
    for (const p of patches) single.push(...(await encoder.encode([p])));
    assert.deepEqual(batched, single);
    assert.deepEqual(await encoder.encode(patches), single);
    // Concurrent calls are serialised and keep their order.
    const concurrent = await Promise.all(patches.map((p) => small.encode([p])));
    assert.deepEqual(concurrent.flat(), single);
  } finally {
    await small.close();
  }
});

test('encode refuses patches of the wrong shape', async () => {
  await assert.rejects(encoder.encode([new Float32Array(100)]), /Float32Array of 4096 values/);
});

test('signBits: bit i is output[i] > 0 (zero is 0)', () => {
  assert.equal(signBits(Float32Array.from([1, -1, 0, 0.001, -0]), 0, 5), '10010');
  assert.equal(signBits(Float32Array.from([9, 9, -1, 2]), 2, 2), '01');
});

test('the model card is read, validated and checked against the file sha256', async () => {
  const loaded = await readModel(FIXTURE_MODEL);
  assert.equal(loaded.card.io.shallow, 'code_l4');
  assert.equal(loaded.card.metrics, undefined, 'null metrics become absent');
  assert.equal(loaded.sha256, loaded.card.sha256);

  const tampered = await variant('tampered', { bytes: (b) => Buffer.concat([b, Buffer.from([0])]) });
  await assert.rejects(FcdnEncoder.load(tampered, 'cpu'), (e: unknown) => {
    assert.ok(e instanceof ModelLoadError);
    assert.ok(e.message.includes(`does not match its card: sha256 is`) && e.message.includes(`the card says ${loaded.card.sha256}`), e.message);
    return true;
  });
  const corruptNoSha = await variant('corrupt', { bytes: (b) => b.subarray(0, 5000), card: (c) => ({ ...c, sha256: undefined }) });
  await assert.rejects(FcdnEncoder.load(corruptNoSha, 'auto'), (e: unknown) => e instanceof ModelLoadError && /onnxruntime could not load/.test(e.message));
  await assert.rejects(FcdnEncoder.load(path.join(dir, 'nothing.onnx'), 'cpu'), /Cannot read the model file .*nothing\.onnx: it does not exist/);
  const noCard = path.join(dir, 'nocard.onnx');
  await copyFile(FIXTURE_MODEL, noCard);
  await assert.rejects(readModel(noCard), /Cannot read the model card .*nocard\.json/);
  const badJson = await variant('badjson');
  await writeFile(modelCardPath(badJson), '{"name": ');
  await assert.rejects(readModel(badJson), /not valid JSON/);
  const empty = path.join(dir, 'empty.onnx');
  await writeFile(empty, '');
  await assert.rejects(readModel(empty), /is empty/);
});

test('a card that does not describe the graph is refused at load', async () => {
  const wrongName = await variant('wrongname', { card: (c) => ({ ...c, io: { ...(c.io as object), middle: 'code_l18' } }) });
  await assert.rejects(FcdnEncoder.load(wrongName, 'cpu'), /output "code_l18" not in the graph/);
  const wrongBits = await variant('wrongbits', { card: (c) => ({ ...c, bits: 32 }) });
  await assert.rejects(FcdnEncoder.load(wrongBits, 'cpu'), /test run failed: output "code_l4" has shape \[1, 64\].*expected \[1, 32\]/);
  const wrongSize = await variant('wrongsize', { card: (c) => ({ ...c, inputSize: 48 }) });
  await assert.rejects(FcdnEncoder.load(wrongSize, 'cpu'), ModelLoadError);
});

test('validateModelCard lists every problem', () => {
  assert.throws(() => validateModelCard([]), /expected a JSON object/);
  assert.throws(
    () => validateModelCard({ name: '', inputSize: 64.5, bits: 0, io: { input: 'x' }, sha256: 'abc' }),
    (e: unknown) => {
      assert.ok(e instanceof ModelLoadError);
      for (const p of ['"name"', '"inputSize"', '"bits"', '"io.shallow"', '"io.middle"', '"io.deep"', '"sha256"']) assert.ok(e.message.includes(p), p);
      return true;
    },
  );
});

test('maxBatch must be a positive integer', async () => {
  await assert.rejects(FcdnEncoder.load(FIXTURE_MODEL, 'cpu', undefined, { maxBatch: 0 }), /maxBatch/);
});
