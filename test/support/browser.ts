/**
 * The headless Chromium the browser tests drive (playwright-core launches it, never downloads it):
 * CHROMIUM_PATH when set, else a system Chromium (Debian's `chromium` at /usr/bin/chromium), else
 * the Chromium shipped inside the npm package @sparticuz/chromium (a devDependency), so `npm install`
 * then `npm test` pass on a machine with nothing but Node and npm.
 */
import fs from 'node:fs';

/** Flags for every launch: no sandbox (CI runs as root), nothing that reaches the network. */
const COMMON_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
/** Where a system Chromium is looked for, in order. */
const SYSTEM_PATHS = ['/usr/bin/chromium', '/usr/bin/chromium-browser'];

/** A regular executable file (CI hides the system one by bind-mounting /dev/null over it). */
function isExecutableFile(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

export interface Browser {
  executablePath: string;
  args: string[];
  /** The browser's environment when it differs from this process's. */
  env?: Record<string, string>;
  /** Where it came from, for the test log. */
  source: string;
}

export async function findChromium(): Promise<Browser> {
  const explicit = process.env.CHROMIUM_PATH;
  if (explicit) {
    if (!fs.existsSync(explicit)) throw new Error(`CHROMIUM_PATH=${explicit} does not exist`);
    return { executablePath: explicit, args: COMMON_ARGS, source: `CHROMIUM_PATH (${explicit})` };
  }
  const system = SYSTEM_PATHS.find(isExecutableFile);
  if (system) return { executablePath: system, args: COMMON_ARGS, source: `system Chromium (${system})` };
  // The npm package's Chromium, unpacked (brotli) into the temp folder on first use. The package
  // bundles the libraries it needs beyond glibc (NSS, expat) and fonts for Amazon Linux only; an
  // AWS runtime name makes it unpack them too, so it runs where no system package brought them.
  // What that import does to this process's environment (LD_LIBRARY_PATH, FONTCONFIG_PATH) is
  // undone here and handed to the browser alone.
  const before = { ...process.env };
  process.env.AWS_LAMBDA_JS_RUNTIME = 'nodejs20.x';
  try {
    const { default: packaged } = await import('@sparticuz/chromium');
    packaged.setGraphicsMode = false;
    const executablePath = await packaged.executablePath();
    // Its headless-shell flags plus ours; not --single-process (one crash would end every page).
    const args = [...new Set([...packaged.args.filter((a) => a !== '--single-process'), ...COMMON_ARGS])];
    const env = { ...process.env } as Record<string, string>;
    delete env.AWS_LAMBDA_JS_RUNTIME;
    return { executablePath, args, env, source: `@sparticuz/chromium (${executablePath})` };
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in before)) delete process.env[k];
    Object.assign(process.env, before);
  }
}
