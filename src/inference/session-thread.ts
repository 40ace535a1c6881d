/**
 * An onnxruntime session on its own thread (worker_threads).
 *
 * onnxruntime-node's `run` is synchronous underneath (its Promise only defers the call to the
 * next turn of the event loop), so a session on the main thread stops the service from parsing
 * requests, talking to Postgres and answering while a batch runs. Here the session lives in a
 * worker thread; the main thread sends the input tensor's bytes (transferred, not copied) and
 * gets the outputs back the same way. The worker is `session-thread.worker.mjs`.
 */
import { Worker } from 'node:worker_threads';
import type ort from 'onnxruntime-node';
import type { EncoderSession } from './types.ts';

interface Reply {
  id: number;
  error?: string;
  outputs?: Record<string, { type: string; dims: number[]; data: Float32Array }>;
  inputNames?: string[];
  outputNames?: string[];
}

export async function createThreadedSession(model: Uint8Array, options: ort.InferenceSession.SessionOptions): Promise<EncoderSession> {
  const worker = new Worker(new URL('./session-thread.worker.mjs', import.meta.url));
  let nextId = 0;
  const pending = new Map<number, { resolve(r: Reply): void; reject(e: Error): void }>();
  // The thread keeps the process alive only while a call waits for it: an idle encoder that
  // nobody closed must not stop a finished process from exiting.
  const settled = () => {
    if (pending.size === 0) worker.unref();
  };
  const failAll = (err: Error) => {
    for (const p of pending.values()) p.reject(err);
    pending.clear();
    settled();
  };
  worker.on('message', (r: Reply) => {
    const p = pending.get(r.id);
    if (!p) return;
    pending.delete(r.id);
    settled();
    if (r.error !== undefined) p.reject(new Error(r.error));
    else p.resolve(r);
  });
  worker.on('error', (e) => failAll(e instanceof Error ? e : new Error(String(e))));
  worker.on('exit', (code) => failAll(new Error(`the inference thread exited (code ${code})`)));
  const call = (message: Record<string, unknown>, transfer: ArrayBuffer[] = []) =>
    new Promise<Reply>((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      worker.ref();
      worker.postMessage({ ...message, id }, transfer);
    });

  let created: Reply;
  try {
    // A copy of its own to hand over (a Buffer's slice() would share, and detach, the caller's memory).
    const copy = new Uint8Array(model);
    created = await call({ op: 'create', model: copy, options: { ...options } }, [copy.buffer as ArrayBuffer]);
  } catch (e) {
    await worker.terminate();
    throw e;
  }
  return {
    inputNames: created.inputNames!,
    outputNames: created.outputNames!,
    async run(feeds, fetches) {
      const inputs: Record<string, { type: string; dims: readonly number[]; data: Float32Array }> = {};
      const transfer: ArrayBuffer[] = [];
      for (const [name, tensor] of Object.entries(feeds)) {
        const data = (tensor.data as Float32Array).slice();
        inputs[name] = { type: tensor.type, dims: [...tensor.dims], data };
        transfer.push(data.buffer as ArrayBuffer);
      }
      const reply = await call({ op: 'run', inputs, fetches }, transfer);
      return reply.outputs! as never;
    },
    async release() {
      try {
        await call({ op: 'release' });
      } finally {
        await worker.terminate();
      }
    },
  };
}
