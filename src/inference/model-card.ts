/**
 * The model card (same basename as the .onnx, `.json`) and the model's identity.
 *
 * The service must refuse to start on a model it cannot vouch for: a missing or unreadable
 * file, a card that does not describe it, or bytes whose sha256 differs from the card's.
 * The bytes are read once and the same buffer is hashed and handed to the session, so the
 * hash always names exactly what runs.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { ModelCard } from './types.ts';

export class ModelLoadError extends Error {
  override readonly name = 'ModelLoadError';
}

export interface LoadedModel {
  modelPath: string;
  cardPath: string;
  card: ModelCard;
  /** sha256 (hex, lower case) of the .onnx bytes. */
  sha256: string;
  bytes: Uint8Array;
}

export function modelCardPath(modelPath: string): string {
  const ext = path.extname(modelPath);
  return (ext ? modelPath.slice(0, -ext.length) : modelPath) + '.json';
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Check the fields the service relies on; anything else on the card is kept as it is. */
export function validateModelCard(json: unknown, source = 'model card'): ModelCard {
  const problems: string[] = [];
  if (!isRecord(json)) throw new ModelLoadError(`${source}: expected a JSON object`);
  const str = (v: unknown) => typeof v === 'string' && v.trim().length > 0;
  const int = (v: unknown, lo: number, hi: number) => Number.isInteger(v) && (v as number) >= lo && (v as number) <= hi;
  if (!str(json.name)) problems.push('"name" must be a non-empty string');
  if (!int(json.inputSize, 8, 1024)) problems.push('"inputSize" must be an integer from 8 to 1024');
  if (!int(json.bits, 1, 4096)) problems.push('"bits" must be a positive integer');
  const io = json.io;
  if (!isRecord(io)) {
    problems.push('"io" must be an object naming input, shallow, middle and deep');
  } else {
    for (const k of ['input', 'shallow', 'middle', 'deep'] as const) {
      if (!str(io[k])) problems.push(`"io.${k}" must name an ONNX ${k === 'input' ? 'input' : 'output'}`);
    }
    if (io.mask !== undefined && io.mask !== null && !str(io.mask)) problems.push('"io.mask" must be a string when given');
  }
  if (json.metrics !== undefined && json.metrics !== null && !isRecord(json.metrics)) problems.push('"metrics" must be an object');
  if (json.sha256 !== undefined && json.sha256 !== null && !(typeof json.sha256 === 'string' && /^[0-9a-fA-F]{64}$/.test(json.sha256))) {
    problems.push('"sha256" must be 64 hex digits');
  }
  if (problems.length > 0) throw new ModelLoadError(`${source} is invalid: ${problems.join('; ')}`);

  // Cards written by Python carry null for "not measured"; the contract says absent.
  const card = { ...json } as ModelCard;
  if (card.metrics === null) delete card.metrics;
  if (card.sha256 === null) delete card.sha256;
  else if (card.sha256) card.sha256 = card.sha256.toLowerCase();
  const ioIn = io as Record<string, unknown>;
  card.io = {
    input: ioIn.input as string,
    shallow: ioIn.shallow as string,
    middle: ioIn.middle as string,
    deep: ioIn.deep as string,
    ...(str(ioIn.mask) ? { mask: ioIn.mask as string } : {}),
  };
  return card;
}

async function readOrExplain(file: string, what: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'it does not exist' : code === 'EACCES' ? 'permission denied' : (e as Error).message;
    throw new ModelLoadError(`Cannot read the ${what} ${file}: ${why}`);
  }
}

/** Read the .onnx bytes and its card, validate the card and check the sha256 when it gives one. */
export async function readModel(modelPath: string): Promise<LoadedModel> {
  const resolved = path.resolve(modelPath);
  const cardPath = modelCardPath(resolved);
  const bytes = await readOrExplain(resolved, 'model file');
  if (bytes.length === 0) throw new ModelLoadError(`The model file ${resolved} is empty`);
  const cardText = await readOrExplain(cardPath, 'model card (the .json beside the .onnx)');
  let json: unknown;
  try {
    json = JSON.parse(cardText.toString('utf8'));
  } catch (e) {
    throw new ModelLoadError(`The model card ${cardPath} is not valid JSON: ${(e as Error).message}`);
  }
  const card = validateModelCard(json, `The model card ${cardPath}`);
  const sha256 = sha256Hex(bytes);
  if (card.sha256 !== undefined && card.sha256 !== sha256) {
    throw new ModelLoadError(
      `The model file ${resolved} does not match its card: sha256 is ${sha256}, the card says ${card.sha256}. ` +
        'The file is corrupt or the card belongs to another model; refusing to use it.',
    );
  }
  return { modelPath: resolved, cardPath, card, sha256, bytes };
}
