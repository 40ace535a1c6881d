/**
 * Instantiates one of the cornerstone WebAssembly codecs (Emscripten builds) synchronously, so a
 * codec can be used inside a synchronous decode. Decoding (./dicom-codecs.ts) loads the
 * decode-only build; the test fixtures' encoders (fixtures/dicom-encoders.ts) load the full one.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** `decode`: the package's decodewasmjs/decodewasm; `full`: its wasmjs/wasm (encoders too). */
export type CodecBuild = 'decode' | 'full';

const loaded = new Map<string, Record<string, unknown>>();

/** The Emscripten module of a codec package with `className` ready on it; cached per package and build. */
export function loadCodecModuleSync(pkg: string, build: CodecBuild, className: string): Record<string, unknown> {
  const key = `${pkg}:${build}`;
  const cached = loaded.get(key);
  if (cached) return cached;
  const prefix = build === 'decode' ? 'decode' : '';
  const factory = require(`${pkg}/${prefix}wasmjs`) as (m: object) => Promise<unknown>;
  const compiled = new WebAssembly.Module(fs.readFileSync(require.resolve(`${pkg}/${prefix}wasm`)));
  const module: Record<string, unknown> = {
    print: () => {},
    printErr: () => {},
    // Synchronous instantiation: the factory's promise settles later, but the classes are there now.
    instantiateWasm(imports: WebAssembly.Imports, receive: (i: WebAssembly.Instance, m: WebAssembly.Module) => void) {
      const instance = new WebAssembly.Instance(compiled, imports);
      receive(instance, compiled);
      return instance.exports;
    },
  };
  void factory(module).catch(() => undefined);
  if (typeof module[className] !== 'function') throw new Error(`${pkg} did not initialise synchronously`);
  loaded.set(key, module);
  return module;
}

/** Drops a cached module (after a trap, whose state may be unusable): the next load instantiates it afresh. */
export function forgetCodecModule(pkg: string, build: CodecBuild): void {
  loaded.delete(`${pkg}:${build}`);
}
