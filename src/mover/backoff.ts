/**
 * Retry policy as data: exponential backoff with full jitter, capped. Time and
 * randomness are injected so tests can drive the policy without sleeping.
 */
export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
  multiplier: number;
  /** 0 = no jitter, 1 = delay drawn uniformly from [0, d] ("full jitter"). */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 200, maxMs: 15_000, multiplier: 2, jitter: 0.5 };

export class Backoff {
  private attempt = 0;

  constructor(
    private readonly policy: BackoffPolicy = DEFAULT_BACKOFF,
    private readonly random: () => number = Math.random,
  ) {}

  /** The delay before the next attempt; grows with each call until `reset()`. */
  next(): number {
    const base = Math.min(this.policy.maxMs, this.policy.initialMs * this.policy.multiplier ** this.attempt);
    this.attempt++;
    const spread = base * this.policy.jitter;
    return Math.round(base - spread + this.random() * spread);
  }

  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}
