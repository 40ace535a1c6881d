/** Public API of the inference layer. */
export type * from './types.ts';
export { FcdnEncoder, DEFAULT_MAX_BATCH, signBits, type EncoderOptions } from './encoder.ts';
export {
  createProviderSession,
  parseExecutionProviderSetting,
  ExecutionProviderError,
  type SessionFactory,
} from './execution-provider.ts';
export { readModel, validateModelCard, modelCardPath, sha256Hex, ModelLoadError, type LoadedModel } from './model-card.ts';
export { prepareSlice, detectFormat, type SliceFormat } from './prepare-slice.ts';
export { SlicePreparer, type SlicePreparerOptions } from './slice-preparer.ts';
export { decodePng, readPngHeader, encodeGrayPng, PNG_MIN_SIDE, PNG_MAX_SIDE } from './png.ts';
export {
  decodeDicomCt,
  ACCEPTED_TRANSFER_SYNTAXES,
  REFUSED_TRANSFER_SYNTAXES,
  DICOM_MAX_SIDE,
  DICOM_MIN_SIDE,
  PATCH_MM_PER_PIXEL,
  type DicomCtSlice,
} from './dicom.ts';
export { WINDOW_MIN_HU, WINDOW_MAX_HU, PNG16_HU_OFFSET, windowHu } from './intensity.ts';
export {
  makePhantomPng,
  makePhantomDicom,
  phantomHu,
  phantomDicomHu,
  IDENTIFYING_TAGS,
  type PhantomOptions,
  type PhantomPngOptions,
  type PhantomDicomOptions,
  type IdentifyingField,
  type NoduleTexture,
} from './phantoms.ts';
