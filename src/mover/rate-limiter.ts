/**
 * Caps a byte rate (the relay's --bwlimit): a token bucket that may go into debt,
 * so a large frame waits in proportion to its size and the long-run rate is exact.
 * The burst allowance is a tenth of a second of traffic.
 */
export class RateLimiter {
  private tokens: number;
  private last: number;

  constructor(
    readonly bytesPerSecond: number,
    private readonly now: () => number = () => performance.now(),
    private readonly sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
  ) {
    this.tokens = this.burst;
    this.last = now();
  }

  private get burst(): number {
    return Math.max(16 * 1024, this.bytesPerSecond / 10);
  }

  /** Resolves when `bytes` may be sent without exceeding the rate. */
  async take(bytes: number): Promise<void> {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.bytesPerSecond);
    this.last = t;
    this.tokens -= bytes;
    if (this.tokens < 0) await this.sleep((-this.tokens / this.bytesPerSecond) * 1000);
  }
}
