/**
 * One process per embedded database folder (issue 12, item 6). PGlite is Postgres compiled to
 * WebAssembly inside this process, with no server to arbitrate: two processes on one folder (an
 * `npm run import` while `npm start` runs) each see their own view of the files, report writes the
 * other never sees, and can hang each other. So the folder is claimed at open with a lock file
 * beside it (`<FCDN_DATA_DIR>/pglite.lock`, created with O_EXCL: exactly one creator wins) that
 * names the holder; a second process stops at start with an error naming the folder and that
 * process, instead of hanging later.
 *
 * A lock left by a process that died without closing (SIGKILL, a crash) names a process that no
 * longer exists on this host: it is taken over. The same process opening the folder again shares
 * its own lock (counted), as before.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface DataDirLockHolder {
  pid: number;
  host: string;
  command: string;
  since: string;
}

export class DataDirInUseError extends Error {
  constructor(
    readonly folder: string,
    readonly holder: DataDirLockHolder,
  ) {
    super(
      `the data folder ${folder} is in use by process ${holder.pid} (${holder.command}, since ${holder.since}); PGlite allows one process per folder: stop that process, or set FCDN_DATA_DIR to another folder (or DATABASE_URL to a Postgres server, which any number of processes can share)`,
    );
    this.name = 'DataDirInUseError';
  }
}

export interface DataDirLock {
  release(): void;
}

/** Locks held by this process, by lock file, with how many opens share each. */
const held = new Map<string, number>();
let exitHook = false;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readHolder(file: string): DataDirLockHolder | null {
  try {
    const h = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<DataDirLockHolder>;
    return Number.isInteger(h.pid) ? { pid: h.pid!, host: String(h.host ?? ''), command: String(h.command ?? 'unknown command'), since: String(h.since ?? 'an unknown time') } : null;
  } catch {
    return null; // half-written by a creator that is writing it right now, or unreadable
  }
}

function describeCommand(): string {
  const script = process.argv[1] ? path.relative(process.cwd(), process.argv[1]) || process.argv[1] : 'node';
  const npm = process.env.npm_lifecycle_event ? `npm ${process.env.npm_lifecycle_event === 'start' ? 'start' : `run ${process.env.npm_lifecycle_event}`}: ` : '';
  return `${npm}${script}`;
}

/**
 * Claims the folder `pgliteDir` for this process, or throws DataDirInUseError. The error names
 * the data folder (FCDN_DATA_DIR, the parent of the PGlite folder) as the user configured it.
 */
export function lockDataDir(pgliteDir: string): DataDirLock {
  const file = `${pgliteDir}.lock`;
  const folder = path.dirname(pgliteDir);
  const shared = held.get(file);
  if (shared) {
    held.set(file, shared + 1);
    return { release: once(() => unshare(file)) };
  }
  const me: DataDirLockHolder = { pid: process.pid, host: os.hostname(), command: describeCommand(), since: new Date().toISOString() };
  if (!exitHook) {
    // A process that exits without closing its database (process.exit after an error) leaves no lock behind.
    exitHook = true;
    process.once('exit', () => {
      for (const f of held.keys()) if (readHolder(f)?.pid === process.pid) fs.rmSync(f, { force: true });
    });
  }
  for (let attempt = 0; ; attempt++) {
    try {
      fs.writeFileSync(file, JSON.stringify(me), { flag: 'wx' });
      held.set(file, 1);
      return { release: once(() => unshare(file)) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = readHolder(file);
    // A holder on this host whose process is gone left a stale lock: remove it and claim again
    // (once; if another process claims it in between, that one holds it). A holder with this
    // process's own pid (not in `held`) is a previous life of a restarted container, which keeps
    // its hostname and often its pids. An unreadable lock is being written right now by its
    // creator, unless it has stayed unreadable for seconds (a crash between create and write).
    const stale = holder
      ? holder.host === me.host && (holder.pid === process.pid || !alive(holder.pid))
      : lockAgeMs(file) > UNREADABLE_LOCK_STALE_MS;
    if (stale && attempt === 0) {
      fs.rmSync(file, { force: true });
      continue;
    }
    throw new DataDirInUseError(folder, holder ?? { pid: NaN, host: '', command: 'a process starting now', since: me.since });
  }
}

/** How long a lock file may stay unreadable (empty, cut short) before it counts as stale. */
const UNREADABLE_LOCK_STALE_MS = 5000;

function lockAgeMs(file: string): number {
  try {
    return Date.now() - fs.statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (!done) {
      done = true;
      fn();
    }
  };
}

function unshare(file: string): void {
  const n = (held.get(file) ?? 1) - 1;
  if (n > 0) {
    held.set(file, n);
    return;
  }
  held.delete(file);
  // Only our own lock is removed (never one another process took over in between).
  if (readHolder(file)?.pid === process.pid) fs.rmSync(file, { force: true });
}
