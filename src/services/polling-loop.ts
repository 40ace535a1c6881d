/**
 * The one shape of every background loop in a process (reindex worker, object janitor, upload
 * sweeper): run a pass; unless it says there is more to do at once, wait `pollMs` or until woken;
 * repeat until stopped. A pass that throws is logged and tried again after the wait, so a
 * database or store that is down only slows the loop. stop() lets the current pass finish.
 */
import type { Logger } from 'pino';

/** One pass of the loop; resolves true when there is more work to do right away. */
export type LoopPass = () => Promise<boolean>;

export class PollingLoop {
  private running = false;
  private loop: Promise<void> | null = null;
  private wakeSleeper: (() => void) | null = null;
  /** A wake() that came during a pass: the next wait is skipped, so no nudge is lost. */
  private woken = false;

  constructor(
    private readonly what: string,
    private readonly pollMs: number,
    private readonly pass: LoopPass,
    private readonly log: Logger,
  ) {}

  get isRunning(): boolean {
    return this.running;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake();
    await this.loop;
  }

  /** Runs the next pass now instead of at the next poll. */
  wake(): void {
    this.woken = true;
    this.wakeSleeper?.();
  }

  private async run(): Promise<void> {
    while (this.running) {
      this.woken = false;
      let again = false;
      try {
        again = await this.pass();
      } catch (err) {
        this.log.warn({ err }, `${this.what}: pass failed; retrying in ${this.pollMs} ms`);
      }
      if (again || this.woken || !this.running) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.pollMs);
        this.wakeSleeper = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeSleeper = null;
    }
  }
}
