import { describe, expect, it } from 'vitest';
import { HangDetector } from '../../src/mover/hang-detector.js';
import { groupBytesFor } from '../../src/mover/mover.js';
import { parseRetryPolicy, pauseRemainingMs } from '../../src/mover/retry-policy.js';

describe('hung transfer detection', () => {
  /** Without history the floor rate decides; the fixed allowance comes on top. */
  it('uses the floor rate until there is history', () => {
    let t = 0;
    const h = new HangDetector({ floorBytesPerSecond: 1e6, k: 3, baseMs: 1000, window: 20 }, () => t);
    expect(h.limitMs(2e6)).toBe(1000 + 2000);
    h.progress();
    t = 2999;
    expect(h.isHung(2e6)).toBe(false);
    t = 3001;
    expect(h.isHung(2e6)).toBe(true);
    expect(h.isHung(0)).toBe(false); // nothing in flight is never hung
  });

  /** With history: mean plus k standard deviations of seconds per byte, never above the floor's allowance. */
  it('derives the limit from recent transfer rates', () => {
    const h = new HangDetector({ floorBytesPerSecond: 1e3, k: 2, baseMs: 0, window: 20 }, () => 0);
    for (const ms of [1000, 1000, 1000, 1000]) h.recordTransfer(10e6, ms); // 10 MB/s, no spread
    expect(h.limitMs(10e6)).toBeCloseTo(1000, 5);
    h.recordTransfer(10e6, 3000);
    const spb = [0.1, 0.1, 0.1, 0.1, 0.3].map((x) => x / 1e6);
    const mean = spb.reduce((a, b) => a + b) / 5;
    const sd = Math.sqrt(spb.reduce((a, b) => a + (b - mean) ** 2, 0) / 5);
    expect(h.limitMs(1e6)).toBeCloseTo((mean + 2 * sd) * 1e6 * 1000, 5);
    h.recordTransfer(1000, 1e9); // too small to count
    expect(h.history).toBe(5);
  });
});

describe('commit group size', () => {
  const MiB = 1024 * 1024;
  /** About a second of the route's recent rate: a lost connection resends seconds, not tens of seconds. */
  it('follows the measured rate between 4 MiB and the most allowed', () => {
    expect(groupBytesFor(10e6, 32 * MiB)).toBe(10e6);
    expect(groupBytesFor(400e6, 32 * MiB)).toBe(32 * MiB);
    expect(groupBytesFor(1e6, 32 * MiB)).toBe(4 * MiB);
    expect(groupBytesFor(1e6, 2 * MiB)).toBe(2 * MiB); // a set size below the floor wins
  });

  /** The rate is the median of recent transfers (one slow commit does not shrink the groups). */
  it('measures the route by the median of its recent transfers', () => {
    const h = new HangDetector({ floorBytesPerSecond: 1e6, k: 3, baseMs: 0, window: 20 }, () => 0);
    expect(h.recentBytesPerSecond()).toBeUndefined();
    for (const ms of [1000, 1000, 5000]) h.recordTransfer(10e6, ms);
    expect(h.recentBytesPerSecond()).toBeCloseTo(10e6, 0);
  });
});

describe('retry policy', () => {
  /** The policy string parses into backoff, deadline and pause window; mistakes are explained. */
  it('parses policies and refuses bad ones', () => {
    const { name, policy } = parseRetryPolicy('far.example:9094=initial=1s,max=5m,deadline=2h,pause=23:30-00:30');
    expect(name).toBe('far.example:9094');
    expect(policy.backoff.initialMs).toBe(1000);
    expect(policy.backoff.maxMs).toBe(300_000);
    expect(policy.deadlineMs).toBe(7_200_000);
    expect(policy.pause).toEqual({ fromMinute: 23 * 60 + 30, toMinute: 30 });
    expect(() => parseRetryPolicy('x=initial')).toThrow(/no value/);
    expect(() => parseRetryPolicy('x=colour=red')).toThrow(/unknown retry policy key/);
    expect(() => parseRetryPolicy('x=pause=25:00-01:00')).toThrow(/bad time/);
  });

  /** Inside the window the remaining time is returned (also across midnight); outside, zero. */
  it('computes the maintenance window', () => {
    const { policy } = parseRetryPolicy('*=pause=23:30-00:30');
    expect(pauseRemainingMs(policy, new Date('2026-01-01T23:45:00Z'))).toBe(45 * 60_000);
    expect(pauseRemainingMs(policy, new Date('2026-01-02T00:10:30Z'))).toBe(19.5 * 60_000);
    expect(pauseRemainingMs(policy, new Date('2026-01-02T12:00:00Z'))).toBe(0);
    expect(pauseRemainingMs(parseRetryPolicy('*=max=1s').policy)).toBe(0);
  });
});
