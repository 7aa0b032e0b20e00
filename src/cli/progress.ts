import { formatBytes } from '../util/units.js';

/**
 * A one-line progress bar on a terminal (stderr), silent when stderr is not a
 * TTY so pipes and logs stay clean.
 */
export class Progress {
  private done = 0;
  private readonly started = Date.now();
  private lastDraw = 0;
  private readonly enabled: boolean;

  constructor(
    private readonly label: string,
    private total: number | undefined,
    stream: NodeJS.WriteStream = process.stderr,
  ) {
    this.enabled = !!stream.isTTY && !process.env.CI;
    this.stream = stream;
  }

  private stream: NodeJS.WriteStream;

  setTotal(total: number): void {
    this.total = total;
  }

  update(done: number): void {
    this.done = done;
    const now = Date.now();
    if (now - this.lastDraw >= 100) this.draw(now);
  }

  add(n: number): void {
    this.update(this.done + n);
  }

  private draw(now: number): void {
    if (!this.enabled) return;
    this.lastDraw = now;
    const secs = Math.max(0.001, (now - this.started) / 1000);
    const rate = `${formatBytes(this.done / secs)}/s`;
    let line: string;
    if (this.total) {
      const frac = Math.min(1, this.done / this.total);
      const width = 30;
      const filled = Math.round(frac * width);
      line = `${this.label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${(frac * 100).toFixed(0)}% ${formatBytes(this.done)}/${formatBytes(this.total)} ${rate}`;
    } else {
      line = `${this.label} ${formatBytes(this.done)} ${rate}`;
    }
    this.stream.write(`\r${line.slice(0, (this.stream.columns || 100) - 1)}\x1b[K`);
  }

  finish(): void {
    if (!this.enabled) return;
    this.draw(Date.now());
    this.stream.write('\n');
  }
}
