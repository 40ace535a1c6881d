/**
 * Object store on the local filesystem: the object `a/b/c.png` is the file
 * `<rootDir>/a/b/c.png`. Writes are atomic: the bytes go to a temp file in the
 * same folder (`.c.png.<random>.tmp`, a dot-file, which no valid key can name),
 * are flushed, then renamed over the target, so a reader sees the old or the new
 * object, never a partial one. Content types are not kept (the filesystem has
 * nowhere to put them); callers that serve objects know them from the key.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rmdir, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { NotFoundError } from '../errors.ts';
import { assertValidKey, assertValidPrefix, ObjectTooLargeError, type GetOptions, type ObjectStore } from './object-store.ts';

export class FilesystemObjectStore implements ObjectStore {
  readonly kind = 'filesystem' as const;
  readonly rootDir: string;

  constructor(rootDir: string) {
    this.rootDir = path.resolve(rootDir);
  }

  /** The file of a (validated) key; keys cannot leave rootDir, this checks it once more. */
  private fileOf(key: string): string {
    assertValidKey(key);
    const file = path.join(this.rootDir, ...key.split('/'));
    if (!file.startsWith(this.rootDir + path.sep)) throw new Error(`object key escapes the store: ${key}`);
    return file;
  }

  async put(key: string, body: Buffer, _contentType: string): Promise<void> {
    const file = this.fileOf(key);
    const dir = path.dirname(file);
    const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
    // A concurrent delete may prune the (then empty) folder between mkdir and open: retry.
    for (let attempt = 1; ; attempt++) {
      try {
        await mkdir(dir, { recursive: true });
        const fh = await open(tmp, 'wx', 0o644);
        try {
          await fh.writeFile(body);
          await fh.sync();
        } finally {
          await fh.close();
        }
        break;
      } catch (err) {
        if (errno(err) === 'ENOENT' && attempt < 5) continue;
        throw err;
      }
    }
    try {
      await rename(tmp, file);
    } catch (err) {
      await unlink(tmp).catch(() => {});
      throw err;
    }
  }

  async get(key: string, options: GetOptions = {}): Promise<Buffer> {
    const file = this.fileOf(key);
    try {
      if (options.maxBytes === undefined) return await readFile(file);
      // One open file: its size is that of the bytes read (a put replaces the file by rename).
      const handle = await open(file, 'r');
      try {
        const { size } = await handle.stat();
        if (size > options.maxBytes) throw new ObjectTooLargeError(key, size, options.maxBytes);
        return await handle.readFile();
      } finally {
        await handle.close();
      }
    } catch (err) {
      const code = errno(err);
      if (code === 'ENOENT' || code === 'EISDIR' || code === 'ENOTDIR') throw new NotFoundError(`no object ${key}`);
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    const file = this.fileOf(key);
    try {
      await unlink(file);
    } catch (err) {
      const code = errno(err);
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      if (code === 'EISDIR' || code === 'EPERM') return; // a folder is not an object
      throw err;
    }
    // Prune folders left empty, up to (not including) the root; a non-empty one stops it.
    for (let dir = path.dirname(file); dir !== this.rootDir && dir.startsWith(this.rootDir); dir = path.dirname(dir)) {
      try {
        await rmdir(dir);
      } catch {
        break;
      }
    }
  }

  async exists(key: string): Promise<boolean> {
    const file = this.fileOf(key);
    try {
      return (await stat(file)).isFile();
    } catch (err) {
      const code = errno(err);
      if (code === 'ENOENT' || code === 'ENOTDIR') return false;
      throw err;
    }
  }

  async list(prefix: string): Promise<string[]> {
    assertValidPrefix(prefix);
    // Walk only the folder that holds every possible match.
    const slash = prefix.lastIndexOf('/');
    const baseKey = slash < 0 ? '' : prefix.slice(0, slash);
    const keys: string[] = [];
    await this.walk(baseKey, prefix, keys);
    return keys.sort();
  }

  private async walk(dirKey: string, prefix: string, out: string[]): Promise<void> {
    const dir = dirKey === '' ? this.rootDir : path.join(this.rootDir, ...dirKey.split('/'));
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      const code = errno(err);
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw err;
    }
    for (const e of entries) {
      if (e.name.startsWith('.')) continue; // temp files of writes in flight
      const key = dirKey === '' ? e.name : `${dirKey}/${e.name}`;
      if (e.isDirectory()) {
        // Descend only where a match can be: key/ is a prefix of prefix, or prefix of key/.
        const k = key + '/';
        if (k.startsWith(prefix) || prefix.startsWith(k)) await this.walk(key, prefix, out);
      } else if (e.isFile() && key.startsWith(prefix)) {
        out.push(key);
      }
    }
  }
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}
