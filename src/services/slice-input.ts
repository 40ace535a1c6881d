/**
 * Checks and decodes the slices of a request (ingest or search by images) before anything is
 * stored or computed: counts, offsets, base64, and the image decoders' own checks.
 */
import { BadInputError } from '../errors.ts';
import type { PreparedSlice } from '../imaging/types.ts';
import type { ModelCard } from '../inference/types.ts';
import type { PrepareSlice } from './ports.ts';

export const MAX_SLICES = 64;

export interface SliceImageInput {
  data: string;
  /** Instead of data (ingestCase only): a key from createSliceUpload; see upload.service.ts. */
  uploadKey?: string | null;
  /** The bytes, already fetched for an uploadKey (set by the server, never by a client). */
  bytes?: Buffer;
  offset?: number | null;
  centerX?: number | null;
  centerY?: number | null;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Strict base64 (Buffer.from silently skips garbage); a data: URL prefix is accepted. */
export function decodeBase64(data: string, what: string): Buffer {
  const body = data.replace(/^data:[\w/+.-]+;base64,/, '').replace(/\s+/g, '');
  if (body.length === 0) throw new BadInputError(`${what}: data is empty`);
  if (body.length % 4 !== 0 || !BASE64.test(body)) {
    throw new BadInputError(`${what}: data is not valid base64 (expected a base64-encoded PNG or DICOM file)`);
  }
  return Buffer.from(body, 'base64');
}

export async function prepareSliceInputs(inputs: readonly SliceImageInput[], card: ModelCard, prepare: PrepareSlice): Promise<PreparedSlice[]> {
  if (inputs.length === 0) throw new BadInputError('images: at least one slice is needed (the centre slice, offset 0)');
  if (inputs.length > MAX_SLICES) throw new BadInputError(`images: ${inputs.length} slices sent; at most ${MAX_SLICES} are accepted`);
  const offsets = inputs.map((i) => i.offset ?? 0);
  for (const o of offsets) {
    if (!Number.isInteger(o) || Math.abs(o) > 1000) throw new BadInputError(`images: offset ${o} is not an integer between -1000 and 1000`);
  }
  const centres = offsets.filter((o) => o === 0).length;
  if (centres !== 1) {
    throw new BadInputError(centres === 0 ? 'images: no centre slice; exactly one slice must have offset 0' : `images: ${centres} slices have offset 0; exactly one centre slice is allowed`);
  }
  if (new Set(offsets).size !== offsets.length) throw new BadInputError('images: two slices have the same offset; each offset may appear once');
  const what = (i: number) => `images[${i}] (offset ${offsets[i]})`;
  // Every cheap check first, so that nothing is decoded for a request that is refused anyway.
  const images = inputs.map((input, i) => {
    for (const c of [input.centerX, input.centerY]) {
      if (c != null && !Number.isFinite(c)) throw new BadInputError(`${what(i)}: centerX/centerY must be finite numbers`);
    }
    if (input.uploadKey != null && !input.bytes) {
      throw new BadInputError(`${what(i)}: uploadKey is accepted by ingestCase only; send the image inline as data`);
    }
    const data = input.bytes ?? decodeBase64(input.data, what(i));
    return { data, offset: offsets[i]!, centerX: input.centerX ?? undefined, centerY: input.centerY ?? undefined };
  });
  // Decoded in parallel; the first failure in slice order is the one reported.
  const outcomes = await Promise.allSettled(images.map((image) => prepare(image, card)));
  return outcomes.map((outcome, i) => {
    if (outcome.status === 'fulfilled') return outcome.value;
    const err: unknown = outcome.reason;
    if (err instanceof BadInputError) throw new BadInputError(`${what(i)}: ${err.message}`);
    throw err;
  });
}
