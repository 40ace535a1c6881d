/**
 * Decoding uploaded slices off the event loop, with a deadline.
 *
 * prepareSlice is synchronous CPU work (inflate, DICOM parsing, the WebAssembly JPEG-LS and
 * JPEG 2000 decoders, resampling). On the main thread a slow file stops every other request:
 * the fuzz suite found JPEG-LS frames on which CharLS spins for 7.5-15 s before it gives up.
 * Here each slice is decoded on one of a few worker threads (`prepare-slice.worker.mjs`); a slice
 * that is not done within `timeoutMs` of starting is abandoned (its thread terminated and
 * replaced) and refused as BAD_USER_INPUT, and a worker's heap is capped, so an allocation that
 * slipped past the header checks kills the worker, not the service.
 */
import { Worker } from 'node:worker_threads';
import { BadInputError } from '../errors.ts';
import type { PatchSpec, PreparedSlice, SliceImage } from './types.ts';

export interface SlicePreparerOptions {
  /** Worker threads decoding at once (FCDN_DECODE_THREADS). */
  threads: number;
  /** A slice still decoding this long after it started is refused (FCDN_DECODE_TIMEOUT_MS). */
  timeoutMs: number;
  /** V8 old-generation heap of one thread (default 256 MB). Pixel arrays are ArrayBuffers outside it, so this stops runaway JS objects, not large images. */
  maxHeapMb?: number;
  /** Called with 'timeout' or 'memory' when a worker had to be replaced (metrics). */
  onAbandoned?: (reason: 'timeout' | 'memory') => void;
}

interface Task {
  image: SliceImage;
  card: PatchSpec;
  /** Reindex work: queued behind every request's slices, and on at most threads - 1 threads. */
  background: boolean;
  resolve(slice: PreparedSlice): void;
  reject(err: Error): void;
}

/** A thread that has not loaded its decoders within this long is broken, not slow. */
const STARTUP_TIMEOUT_MS = 60_000;

/**
 * The deadline by size (issue 13, item 13): images up to this many pixels (2048x2048) have
 * `timeoutMs`; a larger one has it times its pixels over this, so the largest accepted image
 * (4096x4096) has 4 x timeoutMs: 12 s at the default, where a 4096x4096 JPEG 2000 slice takes
 * 3.2-5.5 s on the 2-core machine. The count is the one the checked header declares (Rows x
 * Columns, PNG IHDR), reported by the thread before it decodes; a slice stuck before its header
 * is read, or declaring a small image, keeps `timeoutMs`.
 */
export const DEADLINE_BASE_PIXELS = 2048 * 2048;
const DEADLINE_MAX_PIXELS = 4096 * 4096;

/** The deadline of a slice whose checked header declares `pixels`. */
export function decodeDeadlineMs(timeoutMs: number, pixels: number): number {
  const counted = Math.min(Math.max(pixels, 0), DEADLINE_MAX_PIXELS);
  return Math.round(timeoutMs * Math.max(1, counted / DEADLINE_BASE_PIXELS));
}

type Reply =
  | { ready: true }
  | { header: true; pixels: number }
  | { ok: true; slice: { offset: number; patch: Float32Array; storedPng: Uint8Array; dicom?: PreparedSlice['dicom'] } }
  | { ok: false; badInput: boolean; message: string };

/** One worker thread and the task it is on, if any. */
class DecodeThread {
  private readonly worker: Worker;
  private task: Task | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** When the current slice's deadline started counting, and how long it is. */
  private startedAt = 0;
  private deadlineMs = 0;
  /** Set once the thread has loaded the decoders; the deadline never counts that start-up. */
  private ready = false;
  dead = false;

  constructor(
    private readonly options: SlicePreparerOptions,
    private readonly onFree: (thread: DecodeThread) => void,
  ) {
    this.worker = new Worker(new URL('./prepare-slice.worker.mjs', import.meta.url), {
      resourceLimits: { maxOldGenerationSizeMb: options.maxHeapMb ?? 256 },
    });
    this.worker.unref();
    this.worker.on('message', (reply: Reply) => {
      if ('header' in reply) return this.extendDeadline(reply.pixels);
      if (!('ready' in reply)) return this.finish(reply);
      this.ready = true;
      if (this.task) this.startDeadline();
    });
    this.worker.on('error', (err) => this.die(err));
    this.worker.on('exit', (code) => this.die(new Error(`the decoding thread exited (code ${code})`)));
  }

  get busy(): boolean {
    return this.task !== null;
  }

  get onBackgroundTask(): boolean {
    return this.task?.background === true;
  }

  run(task: Task): void {
    this.task = task;
    this.worker.ref();
    if (this.ready) this.startDeadline();
    else this.timer = setTimeout(() => this.abandon(new Error(`the decoding thread did not start within ${STARTUP_TIMEOUT_MS} ms`)), STARTUP_TIMEOUT_MS);
    const { data, ...rest } = task.image;
    const bytes = new Uint8Array(data); // exactly these bytes (a Buffer may view a larger shared pool)
    this.worker.postMessage({ image: { ...rest, data: bytes }, card: task.card }, [bytes.buffer]);
  }

  /** The deadline runs from when this thread can start the slice, not from when it was queued. */
  private startDeadline(): void {
    this.startedAt = Date.now();
    this.armDeadline(this.options.timeoutMs);
  }

  /** The thread read the slice's header: a large image gets a longer deadline, counted from the same start. */
  private extendDeadline(pixels: number): void {
    if (!this.task || !this.ready || !Number.isFinite(pixels)) return;
    const ms = decodeDeadlineMs(this.options.timeoutMs, pixels);
    if (ms > this.deadlineMs) this.armDeadline(ms);
  }

  private armDeadline(ms: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.deadlineMs = ms;
    this.timer = setTimeout(() => {
      this.options.onAbandoned?.('timeout');
      this.abandon(new BadInputError(`decoding the image took longer than ${ms} ms and was stopped; the file is probably corrupt`));
    }, Math.max(0, this.startedAt + ms - Date.now()));
  }

  private finish(reply: Exclude<Reply, { ready: true } | { header: true }>): void {
    const task = this.take();
    if (!task) return;
    if (reply.ok) {
      const { storedPng, ...slice } = reply.slice;
      task.resolve({ ...slice, storedPng: Buffer.from(storedPng.buffer, storedPng.byteOffset, storedPng.byteLength) });
    } else {
      task.reject(reply.badInput ? new BadInputError(reply.message) : new Error(reply.message));
    }
    this.onFree(this);
  }

  private die(err: Error): void {
    if (this.dead) return;
    const memory = (err as { code?: string }).code === 'ERR_WORKER_OUT_OF_MEMORY';
    if (memory) this.options.onAbandoned?.('memory');
    this.abandon(memory ? new BadInputError('decoding the image needed more memory than a slice may use; the file is probably corrupt') : err);
  }

  /** Ends the current task with `err` and this thread with it; the pool makes a new one. */
  private abandon(err: Error): void {
    this.dead = true;
    this.take()?.reject(err);
    void this.worker.terminate();
    this.onFree(this);
  }

  private take(): Task | null {
    const task = this.task;
    this.task = null;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    // An idle thread must not keep a finished process alive.
    this.worker.unref();
    return task;
  }

  close(): Promise<number> {
    this.dead = true;
    return this.worker.terminate();
  }
}

/**
 * The pool. Slices of requests (a radiologist waiting) go first; a reindex's slices wait behind
 * them and never hold every thread, so a reindex of the whole archive adds little to a search's
 * latency (20-minute soak with a reindex running: 50 req/s with this split, 43 without).
 */
export class SlicePreparer {
  private readonly threads: DecodeThread[] = [];
  private readonly queue: Task[] = [];
  private readonly backgroundQueue: Task[] = [];
  private closed = false;

  constructor(private readonly options: SlicePreparerOptions) {
    if (!(options.threads >= 1) || !(options.timeoutMs >= 1)) throw new Error('SlicePreparer needs at least one thread and a positive timeout');
  }

  /** Starts the threads now instead of at the first slice (each loads the decoders, ~0.5 s). */
  warmUp(): void {
    while (this.threads.length < this.options.threads) this.threads.push(this.spawn());
  }

  /** Slices waiting for a thread, by kind (not those being decoded). */
  get waiting(): { requests: number; background: number } {
    return { requests: this.queue.length, background: this.backgroundQueue.length };
  }

  /** A slice of a request (ingest, search by images). */
  prepare = (image: SliceImage, card: PatchSpec): Promise<PreparedSlice> => this.enqueue(image, card, false);

  /** A slice of background work (reindex): after every request's slices. */
  prepareInBackground = (image: SliceImage, card: PatchSpec): Promise<PreparedSlice> => this.enqueue(image, card, true);

  private enqueue(image: SliceImage, card: PatchSpec, background: boolean): Promise<PreparedSlice> {
    if (this.closed) return Promise.reject(new Error('the slice preparer is closed'));
    return new Promise<PreparedSlice>((resolve, reject) => {
      (background ? this.backgroundQueue : this.queue).push({ image, card, background, resolve, reject });
      this.dispatch();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const task of [...this.queue.splice(0), ...this.backgroundQueue.splice(0)]) task.reject(new Error('the slice preparer is closed'));
    await Promise.all(this.threads.splice(0).map((t) => t.close()));
  }

  private spawn(): DecodeThread {
    return new DecodeThread(this.options, (thread) => {
      const at = this.threads.indexOf(thread);
      if (thread.dead && at >= 0) this.threads.splice(at, 1);
      this.dispatch();
    });
  }

  private nextTask(): Task | undefined {
    if (this.queue.length > 0) return this.queue.shift();
    const backgroundThreads = Math.max(1, this.options.threads - 1);
    if (this.threads.filter((t) => t.onBackgroundTask).length >= backgroundThreads) return undefined;
    return this.backgroundQueue.shift();
  }

  private dispatch(): void {
    while (!this.closed) {
      let thread = this.threads.find((t) => !t.busy && !t.dead);
      if (!thread && this.threads.length >= this.options.threads) return;
      const task = this.nextTask();
      if (!task) return;
      if (!thread) {
        thread = this.spawn();
        this.threads.push(thread);
      }
      thread.run(task);
    }
  }
}
