/** What services need from the model (implemented in src/inference) and the image decoders (src/imaging). */
import type { PreparedSlice, SliceImage } from '../imaging/types.ts';
import type { ExecutionProvider, ModelCard, SliceCodeStrings } from '../inference/types.ts';

export interface SliceEncoder {
  readonly card: ModelCard;
  readonly sha256: string;
  readonly executionProvider: ExecutionProvider;
  /** Codes of a batch of model-input patches, in order. */
  encode(patches: Float32Array[]): Promise<SliceCodeStrings[]>;
}

export type LoadEncoder = (modelPath: string) => Promise<SliceEncoder>;
/** Decodes one slice; BadInputError for anything unusable (src/imaging/slice-preparer.ts runs it off the event loop). */
export type PrepareSlice = (image: SliceImage, card: ModelCard) => Promise<PreparedSlice>;
