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
