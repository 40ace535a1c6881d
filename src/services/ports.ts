/** What services need from the model and the image decoders (implemented in src/inference). */
import type { ModelCard, PreparedSlice, SliceCodeStrings, SliceImage } from '../inference/types.ts';

export interface SliceEncoder {
  readonly card: ModelCard;
  readonly sha256: string;
  readonly executionProvider: 'cuda' | 'cpu';
  /** Codes of a batch of model-input patches, in order. */
  encode(patches: Float32Array[]): Promise<SliceCodeStrings[]>;
}

export type LoadEncoder = (modelPath: string) => Promise<SliceEncoder>;
/** Decodes one slice; BadInputError for anything unusable (src/inference/slice-preparer.ts runs it off the event loop). */
export type PrepareSlice = (image: SliceImage, card: ModelCard) => Promise<PreparedSlice>;
