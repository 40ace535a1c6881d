/** Contracts of the inference layer (the ONNX model and its session): what the rest of the service may rely on. */
import type ort from 'onnxruntime-node';

/** The three 64-bit codes of one slice, as Postgres prints bit(64): '0'/'1' characters. */
export interface SliceCodeStrings {
  shallow: string;
  middle: string;
  deep: string;
}

/** The model card (JSON next to the .onnx file), as far as the service reads it. */
export interface ModelCard {
  name: string;
  /** Model input edge length in pixels (64). */
  inputSize: number;
  bits: number;
  /** ONNX input name and the output names of the three taps (pre-sign values, [N, bits]). */
  io: {
    input: string;
    shallow: string;
    middle: string;
    deep: string;
    mask?: string;
  };
  /** The measured figures (MAP per bit length, ...) shown as ModelVersion.metrics. */
  metrics?: Record<string, unknown>;
  /** sha256 (hex) of the .onnx file; when present the service refuses a file that differs. */
  sha256?: string;
  [key: string]: unknown;
}

/** FCDN_EXECUTION_PROVIDER's values; `auto` tries the GPU providers in this order, then the CPU. */
export const EXECUTION_PROVIDER_SETTINGS = ['auto', 'cuda', 'webgpu', 'cpu'] as const;
export type ExecutionProviderSetting = (typeof EXECUTION_PROVIDER_SETTINGS)[number];
export type ExecutionProvider = Exclude<ExecutionProviderSetting, 'auto'>;

/** What the encoder needs of an ONNX Runtime session (an in-thread one, or the session thread's proxy). */
export type EncoderSession = Pick<ort.InferenceSession, 'inputNames' | 'outputNames' | 'run' | 'release'>;

/** Where the inference layer says what it did (pino's logger fits). */
export interface InferenceLogger {
  info(msg: string): void;
  warn(msg: string): void;
}
