// The inference thread of session-thread.ts: one onnxruntime session, one run at a time.
// Plain JavaScript: a worker thread does not inherit the TypeScript loader of its parent.
import { parentPort } from 'node:worker_threads';
import ort from 'onnxruntime-node';

let session = null;

parentPort.on('message', async (m) => {
  try {
    if (m.op === 'create') {
      session = await ort.InferenceSession.create(m.model, m.options);
      parentPort.postMessage({ id: m.id, inputNames: session.inputNames, outputNames: session.outputNames });
    } else if (m.op === 'run') {
      if (!session) throw new Error('no session');
      const feeds = {};
      for (const [name, t] of Object.entries(m.inputs)) feeds[name] = new ort.Tensor(t.type, t.data, t.dims);
      const results = await session.run(feeds, m.fetches);
      const outputs = {};
      const transfer = [];
      for (const [name, t] of Object.entries(results)) {
        const data = t.data.slice();
        outputs[name] = { type: t.type, dims: t.dims, data };
        transfer.push(data.buffer);
      }
      parentPort.postMessage({ id: m.id, outputs }, transfer);
    } else {
      await session?.release();
      session = null;
      parentPort.postMessage({ id: m.id });
    }
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: e instanceof Error ? e.message : String(e) });
  }
});
