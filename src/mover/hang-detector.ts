/**
 * Hung transfer detection (Phoenix): a route's recent transfer rates give how
 * long a transfer of some size should take. A transfer with no progress for
 * longer than that, judged by the mean plus `k` standard deviations of recent
 * seconds-per-byte (or by a floor rate while there is no history), is hung:
 * the mover aborts and retries it, and counts it.
 */
export interface HangOptions {
  /** Rate assumed while there is no history (bytes per second). */
  floorBytesPerSecond: number;
  /** Standard deviations above the mean. */
  k: number;
  /** Allowance on top of any estimate (connection set-up, fsync at the next hop). */
  baseMs: number;
  /** How many recent transfers make the history. */
  window: number;
}

export const DEFAULT_HANG: HangOptions = { floorBytesPerSecond: 1_000_000, k: 3, baseMs: 10_000, window: 20 };

export class HangDetector {
  private secondsPerByte: number[] = [];
  private lastProgress: number;
  hangs = 0;

  constructor(
    readonly options: HangOptions = DEFAULT_HANG,
    private readonly now: () => number = () => Date.now(),
  ) {
    this.lastProgress = now();
  }

  /** A transfer of `bytes` completed in `ms`: part of the route's history. */
  recordTransfer(bytes: number, ms: number): void {
    if (bytes < 64 * 1024 || ms <= 0) return; // too small to say anything about the rate
    this.secondsPerByte.push(ms / 1000 / bytes);
    if (this.secondsPerByte.length > this.options.window) this.secondsPerByte.shift();
  }

  /** Something came back from the next hop. */
  progress(): void {
    this.lastProgress = this.now();
  }

  /** How long `bytes` in flight may go without any progress. */
  limitMs(bytes: number): number {
    const s = this.secondsPerByte;
    let spb: number;
    if (s.length < 3) {
      spb = 1 / this.options.floorBytesPerSecond;
    } else {
      const mean = s.reduce((a, b) => a + b, 0) / s.length;
      const variance = s.reduce((a, b) => a + (b - mean) ** 2, 0) / s.length;
      // never expect faster than the history says; never wait longer than the floor rate allows
      spb = Math.min(mean + this.options.k * Math.sqrt(variance), 1 / this.options.floorBytesPerSecond);
    }
    return this.options.baseMs + bytes * spb * 1000;
  }

  /** True when `bytes` are in flight and nothing has come back for longer than their limit. */
  isHung(bytesInFlight: number): boolean {
    if (bytesInFlight <= 0) return false;
    return this.now() - this.lastProgress > this.limitMs(bytesInFlight);
  }

  /** What the route has carried lately (bytes per second, by the median transfer), or undefined without history. */
  recentBytesPerSecond(): number | undefined {
    if (this.secondsPerByte.length < 3) return undefined;
    const sorted = [...this.secondsPerByte].sort((a, b) => a - b);
    return 1 / sorted[Math.floor(sorted.length / 2)]!;
  }

  get history(): number {
    return this.secondsPerByte.length;
  }
}
