/**
 * Choosing where the model runs (FCDN_EXECUTION_PROVIDER): `auto` tries CUDA, then WebGPU, then
 * the CPU, logging one line per provider it could not use; `cuda` and `webgpu` fail loudly with
 * what is missing; `cpu` never tries a GPU.
 *
 * Each GPU attempt is one session creation with only that provider listed: if onnxruntime cannot
 * use it, creation throws (it does not silently run on CPU), so a session that exists runs on the
 * provider named. npm's onnxruntime-node has WebGPU compiled in (Dawn over Vulkan: it needs a
 * Vulkan driver, e.g. the NVIDIA driver's ICD, and the loader libvulkan1); the CUDA provider's
 * libraries come only with `ONNXRUNTIME_NODE_INSTALL=true npm rebuild onnxruntime-node`, so CUDA is
 * checked for its library file first, which spares the log onnxruntime's own red stack.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { createThreadedSession } from './session-thread.ts';
import { EXECUTION_PROVIDER_SETTINGS, type EncoderSession, type ExecutionProvider, type ExecutionProviderSetting, type InferenceLogger } from './types.ts';

/** (Defined in ./types.ts, which ./session-thread.ts also reads.) */
export type { EncoderSession };

export type SessionFactory = (
  model: Uint8Array,
  options: ort.InferenceSession.SessionOptions,
) => Promise<EncoderSession>;

/** A session on the calling thread (scripts, tests). */
export const inThreadSessionFactory: SessionFactory = (model, options) => ort.InferenceSession.create(model, options);

/** The default: the session on its own thread, so inference never blocks the event loop. */
export const defaultSessionFactory: SessionFactory = createThreadedSession;

export class ExecutionProviderError extends Error {
  override readonly name = 'ExecutionProviderError';
}

/** Read FCDN_EXECUTION_PROVIDER; unset or empty means auto, anything unknown is an error. */
export function parseExecutionProviderSetting(value: string | undefined): ExecutionProviderSetting {
  const v = (value ?? '').trim().toLowerCase();
  if (v === '') return 'auto';
  if ((EXECUTION_PROVIDER_SETTINGS as readonly string[]).includes(v)) return v as ExecutionProviderSetting;
  throw new ExecutionProviderError(`FCDN_EXECUTION_PROVIDER must be one of ${EXECUTION_PROVIDER_SETTINGS.join(', ')} (got "${value}")`);
}

/** What each GPU provider needs on the machine, for the messages. */
const NEEDS: Record<'cuda' | 'webgpu', string> = {
  cuda:
    "onnxruntime's CUDA provider libraries (`ONNXRUNTIME_NODE_INSTALL=true npm rebuild onnxruntime-node` on a machine that " +
    'reaches onnxruntime\'s download host), CUDA 12 and cuDNN 9',
  webgpu: "a Vulkan driver (the NVIDIA driver's Vulkan ICD) and the Vulkan loader (Debian: libvulkan1)",
};

/** The folder of onnxruntime-node's native libraries for this platform (where a CUDA install puts its provider). */
function onnxruntimeLibraryDir(): string {
  const require = createRequire(import.meta.url);
  const root = path.dirname(require.resolve('onnxruntime-node/package.json'));
  return path.join(root, 'bin', 'napi-v6', process.platform, process.arch);
}

/** Why CUDA cannot load here without asking onnxruntime (null: its provider library is present, so try). */
export function missingCudaProvider(libraryDir: string = onnxruntimeLibraryDir()): string | null {
  const lib = path.join(libraryDir, 'libonnxruntime_providers_cuda.so');
  return process.platform !== 'linux' || fs.existsSync(lib) ? null : `${lib} is not installed`;
}

const BASE_OPTIONS: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: 'all' };

export interface ProviderSession {
  session: EncoderSession;
  executionProvider: ExecutionProvider;
}

/** The first line of an error, without onnxruntime's source path prefix. */
function reason(e: unknown): string {
  const text = (e instanceof Error ? e.message : String(e)).split('\n')[0]!.trim();
  const short = text.replace(/^\/onnxruntime_src\/\S+\s+/, '').replace(/^.*? was false\. /, '');
  return short || text;
}

export interface ProviderOptions {
  factory?: SessionFactory;
  threads?: number;
  /** Overrides the CUDA library check (tests). */
  cudaMissing?: () => string | null;
}

export async function createProviderSession(
  model: Uint8Array,
  setting: ExecutionProviderSetting,
  log?: InferenceLogger,
  options: ProviderOptions = {},
): Promise<ProviderSession> {
  const factory = options.factory ?? defaultSessionFactory;
  const base = options.threads ? { ...BASE_OPTIONS, intraOpNumThreads: options.threads, interOpNumThreads: 1 } : BASE_OPTIONS;
  const gpus: ('cuda' | 'webgpu')[] = setting === 'auto' ? ['cuda', 'webgpu'] : setting === 'cpu' ? [] : [setting];
  for (const provider of gpus) {
    try {
      const missing = provider === 'cuda' ? (options.cudaMissing ?? missingCudaProvider)() : null;
      if (missing) throw new Error(missing);
      const session = await factory(model, { ...base, executionProviders: [provider] });
      log?.info(`inference: execution provider ${provider}`);
      return { session, executionProvider: provider };
    } catch (e) {
      if (setting === provider) {
        throw new ExecutionProviderError(
          `FCDN_EXECUTION_PROVIDER=${provider}, but the ${provider === 'cuda' ? 'CUDA' : 'WebGPU'} execution provider could not be loaded ` +
            `(${reason(e)}). It needs ${NEEDS[provider]}; set FCDN_EXECUTION_PROVIDER=auto or cpu to run on the CPU.`,
        );
      }
      log?.warn(`inference: ${provider} unavailable: ${reason(e)}. It needs ${NEEDS[provider]}. Trying the next provider.`);
    }
  }
  const session = await factory(model, { ...base, executionProviders: ['cpu'] });
  log?.info('inference: execution provider cpu');
  return { session, executionProvider: 'cpu' };
}
