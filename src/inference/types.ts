/** Contracts of the inference layer: what the rest of the service may rely on. */

/** One uploaded slice as the API receives it (bytes already base64-decoded). */
export interface SliceImage {
  data: Buffer;
  /** Position relative to the nodule centre; 0 is the centre slice. */
  offset: number;
  /** DICOM only: nodule centre in pixel coordinates; default the image centre. */
  centerX?: number;
  centerY?: number;
  /**
   * An image this service stored itself (reindex re-encodes it): it was accepted when it came in,
   * so checks of the upload's conventions added later (the 16-bit HU + 32768 plausibility) must
   * not refuse it now and block a reindex of the whole archive.
   */
  stored?: boolean;
}

/** DICOM identifiers we keep (UIDs only; never names, ids, dates of birth...). */
export interface DicomIdentifiers {
  studyInstanceUid?: string;
  seriesInstanceUid?: string;
  sopInstanceUid?: string;
}

/** A slice decoded, checked and reduced to what the model and storage need. */
export interface PreparedSlice {
  offset: number;
  /** The model input: size*size floats in [0,1] (HU windowed to [-1200, 600]), row-major. */
  patch: Float32Array;
  /**
   * The image we store and serve: a clean grayscale PNG with no metadata chunks.
   * Decoding it again with prepareSlice gives the same patch (used by reindex).
   */
  storedPng: Buffer;
  dicom?: DicomIdentifiers;
}

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

export type ExecutionProviderSetting = 'auto' | 'cuda' | 'cpu';
export type ExecutionProvider = 'cuda' | 'cpu';

/** Where the inference layer says what it did (pino's logger fits). */
export interface InferenceLogger {
  info(msg: string): void;
  warn(msg: string): void;
}
