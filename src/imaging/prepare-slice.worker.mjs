// A decoding thread of slice-preparer.ts: prepareSlice on one slice at a time.
// Plain JavaScript that loads the TypeScript through tsx: a worker thread does not inherit the
// TypeScript loader of its parent.
import { parentPort } from 'node:worker_threads';
import { tsImport } from 'tsx/esm/api';

const { prepareSlice } = await tsImport('./prepare-slice.ts', import.meta.url);

parentPort.postMessage({ ready: true });

parentPort.on('message', ({ image, card }) => {
  try {
    // The checked header's pixel count goes to the parent before decoding: its deadline grows with it.
    const onHeader = (pixels) => parentPort.postMessage({ header: true, pixels });
    const slice = prepareSlice({ ...image, data: Buffer.from(image.data.buffer, image.data.byteOffset, image.data.byteLength) }, card, onHeader);
    // Own ArrayBuffers, to transfer (a Buffer or a view may share a larger one).
    const storedPng = new Uint8Array(slice.storedPng);
    const patch = new Float32Array(slice.patch);
    parentPort.postMessage({ ok: true, slice: { ...slice, storedPng, patch } }, [storedPng.buffer, patch.buffer]);
  } catch (e) {
    parentPort.postMessage({ ok: false, badInput: e?.code === 'BAD_USER_INPUT', message: e instanceof Error ? e.message : String(e) });
  }
});
