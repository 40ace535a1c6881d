/**
 * A progress bar on stderr: done/total, rate, ETA. On a terminal it redraws one line; otherwise
 * (a log file, CI) it prints a plain line every tenth of the way and at the end.
 */

export interface ProgressCounts {
  done: number;
  total: number;
  /** Shown after the bar, e.g. "imported 12, unchanged 3, failed 0". */
  detail: string;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n: number) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

export class ProgressBar {
  private readonly started = performance.now();
  private lastStep = -1;
  private lastDraw = 0;

  constructor(
    private readonly out: NodeJS.WritableStream & { isTTY?: boolean; columns?: number },
    private readonly label: string,
    private readonly width = 30,
  ) {}

  line(p: ProgressCounts, now = performance.now()): string {
    const seconds = (now - this.started) / 1000;
    const rate = seconds > 0 ? p.done / seconds : 0;
    const eta = rate > 0 ? (p.total - p.done) / rate : Infinity;
    const fraction = p.total > 0 ? p.done / p.total : 1;
    const filled = Math.round(fraction * this.width);
    const bar = '#'.repeat(filled) + '-'.repeat(this.width - filled);
    const pct = `${Math.floor(fraction * 100)}%`.padStart(4);
    return `${this.label} [${bar}] ${p.done}/${p.total} ${pct} ${rate.toFixed(1)}/s ETA ${p.done >= p.total ? '0:00' : formatDuration(eta)} elapsed ${formatDuration(seconds)}  ${p.detail}`;
  }

  update(p: ProgressCounts): void {
    const now = performance.now();
    if (this.out.isTTY) {
      // Redraw at most 10 times a second, and always at the end.
      if (p.done < p.total && now - this.lastDraw < 100) return;
      this.lastDraw = now;
      const text = this.line(p, now);
      const cols = this.out.columns ?? 120;
      this.out.write(`\r${text.length >= cols ? text.slice(0, cols - 1) : text.padEnd(cols - 1)}`);
      return;
    }
    const step = p.total > 0 ? Math.floor((p.done / p.total) * 10) : 10;
    if (step > this.lastStep) {
      this.lastStep = step;
      this.out.write(`${this.line(p, now)}\n`);
    }
  }

  /** Leaves the terminal line in place. */
  finish(): void {
    if (this.out.isTTY) this.out.write('\n');
  }
}
