/**
 * FCDN encoder: patches in, the three 64-bit codes per patch out (layer 4, 17, 25).
 *
 * Loading refuses anything it cannot vouch for (see model-card.ts) and proves the card
 * matches the graph by running one patch: input/output names and code widths are checked
 * at start-up, not at the first search. Runs are serialised on the session (by default on its
 * own thread: session-thread.ts); concurrent calls are batched into one run instead.
 */
import ort from 'onnxruntime-node';
import {
  createProviderSession,
  defaultSessionFactory,
  ExecutionProviderError,
  type EncoderSession,
  type SessionFactory,
} from './execution-provider.ts';
import { ModelLoadError, readModel } from './model-card.ts';
import type {
  ExecutionProvider,
  ExecutionProviderSetting,
  InferenceLogger,
  ModelCard,
  SliceCodeStrings,
} from './types.ts';

export const DEFAULT_MAX_BATCH = 64;

export interface EncoderOptions {
  /** Largest batch handed to one run (default 64). */
  maxBatch?: number;
  /** For tests: replaces onnxruntime's session creation. */
  sessionFactory?: SessionFactory;
  /** For tests: replaces the check for the CUDA provider's library (null: present). */
  cudaMissing?: () => string | null;
  /** onnxruntime's intra-op threads (default: its own choice, one per core). */
  threads?: number;
  /** Called after every session run with its seconds and batch size (the service's metrics). */
  onRun?: (seconds: number, patches: number) => void;
}

type Tap = 'shallow' | 'middle' | 'deep';
const TAPS: readonly Tap[] = ['shallow', 'middle', 'deep'];

/** bit i = output[i] > 0, as the card's "codes" field and Postgres bit(n) text order say. */
export function signBits(values: Float32Array, offset: number, bits: number): string {
  let s = '';
  for (let i = 0; i < bits; i++) s += values[offset + i]! > 0 ? '1' : '0';
  return s;
}

/** Patches waiting for the session, with where their codes go. */
interface PendingPatches {
  patches: readonly Float32Array[];
  resolve(codes: SliceCodeStrings[]): void;
  reject(err: unknown): void;
}

export class FcdnEncoder {
  private queue: Promise<unknown> = Promise.resolve();
  /**
   * Micro-batching: calls that arrive while the session is busy wait here and then run together
   * (up to maxBatch patches), so concurrent searches share one run instead of queueing for one
   * run each; an idle encoder runs a call at once, adding no latency.
   */
  private waiting: PendingPatches[] = [];
  private draining = false;

  private constructor(
    private readonly session: EncoderSession,
    readonly modelPath: string,
    readonly card: ModelCard,
    readonly sha256: string,
    readonly executionProvider: ExecutionProvider,
    readonly maxBatch: number,
    private readonly onRun: (seconds: number, patches: number) => void = () => {},
  ) {}

  static async load(
    modelPath: string,
    setting: ExecutionProviderSetting = 'auto',
    log?: InferenceLogger,
    options: EncoderOptions = {},
  ): Promise<FcdnEncoder> {
    const maxBatch = options.maxBatch ?? DEFAULT_MAX_BATCH;
    if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new RangeError(`maxBatch must be a positive integer (got ${maxBatch})`);
    const model = await readModel(modelPath);
    const factory = options.sessionFactory ?? defaultSessionFactory;
    let created;
    try {
      created = await createProviderSession(model.bytes, setting, log, { factory, threads: options.threads, cudaMissing: options.cudaMissing });
    } catch (e) {
      if (e instanceof ExecutionProviderError) throw e;
      throw new ModelLoadError(`onnxruntime could not load the model ${model.modelPath}: ${(e as Error).message}`);
    }
    const encoder = new FcdnEncoder(created.session, model.modelPath, model.card, model.sha256, created.executionProvider, maxBatch, options.onRun);
    try {
      await encoder.selfCheck();
    } catch (e) {
      await created.session.release().catch(() => undefined);
      throw e;
    }
    log?.info(
      `inference: model ${model.card.name} (sha256 ${model.sha256.slice(0, 12)}) on ${created.executionProvider}, ` +
        `max batch ${maxBatch}`,
    );
    return encoder;
  }

  get inputSize(): number {
    return this.card.inputSize;
  }

  get bits(): number {
    return this.card.bits;
  }

  /** The card must describe this graph: names present, and one patch gives [1, bits] per tap. */
  private async selfCheck(): Promise<void> {
    const { io } = this.card;
    const where = `model ${this.modelPath} vs its card`;
    if (!this.session.inputNames.includes(io.input)) {
      throw new ModelLoadError(`${where}: input "${io.input}" not in the graph (inputs: ${this.session.inputNames.join(', ')})`);
    }
    for (const tap of TAPS) {
      if (!this.session.outputNames.includes(io[tap])) {
        throw new ModelLoadError(`${where}: output "${io[tap]}" not in the graph (outputs: ${this.session.outputNames.join(', ')})`);
      }
    }
    try {
      await this.encode([new Float32Array(this.inputSize * this.inputSize)]);
    } catch (e) {
      throw new ModelLoadError(`${where}: a test run failed: ${(e as Error).message}`);
    }
  }

  /** Codes for each patch (size*size floats in [0,1], row-major), in order. */
  async encode(patches: readonly Float32Array[]): Promise<SliceCodeStrings[]> {
    const pixels = this.inputSize * this.inputSize;
    patches.forEach((p, i) => {
      if (!(p instanceof Float32Array) || p.length !== pixels) {
        throw new RangeError(`patch ${i} must be a Float32Array of ${pixels} values (${this.inputSize}x${this.inputSize})`);
      }
    });
    const chunks: Promise<SliceCodeStrings[]>[] = [];
    for (let start = 0; start < patches.length; start += this.maxBatch) {
      const chunk = patches.slice(start, start + this.maxBatch);
      chunks.push(new Promise((resolve, reject) => this.waiting.push({ patches: chunk, resolve, reject })));
    }
    void this.drain();
    return (await Promise.all(chunks)).flat();
  }

  /** Runs the waiting calls, as many per session run as fit in maxBatch patches. */
  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      while (this.waiting.length > 0) {
        const group: PendingPatches[] = [];
        let size = 0;
        while (this.waiting.length > 0 && (group.length === 0 || size + this.waiting[0]!.patches.length <= this.maxBatch)) {
          const next = this.waiting.shift()!;
          group.push(next);
          size += next.patches.length;
        }
        try {
          const codes = await this.serialised(() => this.runBatch(group.flatMap((g) => g.patches)));
          let at = 0;
          for (const g of group) {
            g.resolve(codes.slice(at, at + g.patches.length));
            at += g.patches.length;
          }
        } catch (err) {
          for (const g of group) g.reject(err);
        }
      }
    } finally {
      this.draining = false;
    }
  }

  async close(): Promise<void> {
    await this.serialised(() => this.session.release());
  }

  private serialised<T>(job: () => Promise<T>): Promise<T> {
    const run = this.queue.then(job, job);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async runBatch(batch: readonly Float32Array[]): Promise<SliceCodeStrings[]> {
    const size = this.inputSize;
    const n = batch.length;
    const data = new Float32Array(n * size * size);
    batch.forEach((p, i) => data.set(p, i * size * size));
    const { io } = this.card;
    const input = new ort.Tensor('float32', data, [n, 1, size, size]);
    // Fetch only the code taps: the per-pixel mask is not needed for search.
    const started = process.hrtime.bigint();
    const results = await this.session.run({ [io.input]: input }, TAPS.map((t) => io[t]));
    this.onRun(Number(process.hrtime.bigint() - started) / 1e9, n);
    const values = {} as Record<Tap, Float32Array>;
    for (const tap of TAPS) {
      const t = results[io[tap]];
      if (!t || t.type !== 'float32' || t.dims.length !== 2 || t.dims[0] !== n || t.dims[1] !== this.bits) {
        throw new Error(
          `output "${io[tap]}" has shape [${t?.dims.join(', ') ?? 'missing'}] (${t?.type}), expected [${n}, ${this.bits}] float32`,
        );
      }
      values[tap] = t.data as Float32Array;
    }
    return Array.from({ length: n }, (_, i) => ({
      shallow: signBits(values.shallow, i * this.bits, this.bits),
      middle: signBits(values.middle, i * this.bits, this.bits),
      deep: signBits(values.deep, i * this.bits, this.bits),
    }));
  }
}
