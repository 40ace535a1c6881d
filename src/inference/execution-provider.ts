/**
 * Choosing where the model runs (FCDN_EXECUTION_PROVIDER): `auto` tries CUDA and falls back
 * to CPU, saying so; `cuda` fails loudly when CUDA cannot load; `cpu` never tries CUDA.
 *
 * The CUDA path is one session-creation attempt with only the CUDA provider listed: if
 * onnxruntime cannot load it, creation throws (it does not silently run on CPU), so a
 * session that exists is a CUDA session. No npm package ships the CUDA provider, so this
 * path is exercised here only through its failure and through an injected session factory.
 */
import ort from 'onnxruntime-node';
import { createThreadedSession } from './session-thread.ts';
import type { EncoderSession, ExecutionProvider, ExecutionProviderSetting, InferenceLogger } from './types.ts';

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

const SETTINGS: readonly ExecutionProviderSetting[] = ['auto', 'cuda', 'cpu'];

/** Read FCDN_EXECUTION_PROVIDER; unset or empty means auto, anything unknown is an error. */
export function parseExecutionProviderSetting(value: string | undefined): ExecutionProviderSetting {
  const v = (value ?? '').trim().toLowerCase();
  if (v === '') return 'auto';
  if ((SETTINGS as readonly string[]).includes(v)) return v as ExecutionProviderSetting;
  throw new ExecutionProviderError(`FCDN_EXECUTION_PROVIDER must be one of auto, cuda, cpu (got "${value}")`);
}

const BASE_OPTIONS: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: 'all' };

export interface ProviderSession {
  session: EncoderSession;
  executionProvider: ExecutionProvider;
}

function reason(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export async function createProviderSession(
  model: Uint8Array,
  setting: ExecutionProviderSetting,
  log?: InferenceLogger,
  factory: SessionFactory = defaultSessionFactory,
  threads?: number,
): Promise<ProviderSession> {
  const base = threads ? { ...BASE_OPTIONS, intraOpNumThreads: threads, interOpNumThreads: 1 } : BASE_OPTIONS;
  if (setting === 'cuda' || setting === 'auto') {
    try {
      const session = await factory(model, { ...base, executionProviders: ['cuda'] });
      log?.info('inference: execution provider cuda');
      return { session, executionProvider: 'cuda' };
    } catch (e) {
      if (setting === 'cuda') {
        throw new ExecutionProviderError(
          `FCDN_EXECUTION_PROVIDER=cuda, but the CUDA execution provider could not be loaded (${reason(e)}). ` +
            'It needs the onnxruntime CUDA provider libraries, a CUDA driver and cuDNN on this machine; ' +
            'set FCDN_EXECUTION_PROVIDER=auto or cpu to run on the CPU.',
        );
      }
      log?.warn(`inference: CUDA execution provider unavailable (${reason(e)}); falling back to cpu`);
    }
  }
  const session = await factory(model, { ...base, executionProviders: ['cpu'] });
  log?.info('inference: execution provider cpu');
  return { session, executionProvider: 'cpu' };
}
