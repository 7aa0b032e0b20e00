import { describe, expect, it } from 'vitest';
import { canonicalHost, DEFAULT_PORT, formatKangarooUrl, normalizePath, parseHostPort, parseKangarooUrl } from '../../src/address.js';
import { KangarooError } from '../../src/errors.js';
import { Backoff, BackoffPolicy, DEFAULT_BACKOFF } from '../../src/mover/backoff.js';
import { RateLimiter } from '../../src/mover/rate-limiter.js';
import { formatBytes, parseBytes } from '../../src/util/units.js';

const code = (c: string) => (e: unknown) => e instanceof KangarooError && e.code === c;

describe('Backoff', () => {
  const policy: BackoffPolicy = { initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0 };

  // Without jitter the delays grow by the multiplier and stop at maxMs.
  it('grows by the multiplier up to maxMs', () => {
    const b = new Backoff(policy, () => 0.5);
    const delays = Array.from({ length: 8 }, () => b.next());
    expect(delays).toEqual([100, 200, 400, 800, 1000, 1000, 1000, 1000]);
    expect(b.attempts).toBe(8);
  });

  // reset() starts the sequence over after a success.
  it('starts over after reset', () => {
    const b = new Backoff(policy);
    b.next();
    b.next();
    b.next();
    b.reset();
    expect(b.attempts).toBe(0);
    expect(b.next()).toBe(100);
    expect(b.next()).toBe(200);
  });

  // Jitter draws from [base·(1−jitter), base]: random 0 gives the bottom, random→1 the top.
  it('keeps jitter within its range', () => {
    const j: BackoffPolicy = { initialMs: 1000, maxMs: 8000, multiplier: 3, jitter: 0.5 };
    expect(Array.from({ length: 4 }, ((b) => () => b.next())(new Backoff(j, () => 0)))).toEqual([500, 1500, 4000, 4000]);
    expect(Array.from({ length: 4 }, ((b) => () => b.next())(new Backoff(j, () => 0.999999)))).toEqual([1000, 3000, 8000, 8000]);
    // any random value lands inside the range
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const b = new Backoff(j, rand);
    for (let i = 0; i < 200; i++) {
      const base = Math.min(8000, 1000 * 3 ** Math.min(i, 10));
      const d = b.next();
      expect(d).toBeGreaterThanOrEqual(base / 2);
      expect(d).toBeLessThanOrEqual(base);
    }
  });

  // Full jitter (1) may go down to zero; many attempts never overflow past maxMs.
  it('handles full jitter and very many attempts', () => {
    const b = new Backoff({ initialMs: 200, maxMs: 15_000, multiplier: 2, jitter: 1 }, () => 0);
    expect(b.next()).toBe(0);
    const top = new Backoff(DEFAULT_BACKOFF, () => 0.999999);
    let last = 0;
    for (let i = 0; i < 2000; i++) last = top.next();
    expect(last).toBe(DEFAULT_BACKOFF.maxMs);
  });
});

/** A clock that only moves when the limiter sleeps (or the test says so). */
function fakeTime() {
  const t = { now: 0, sleeps: [] as number[] };
  const now = () => t.now;
  const sleep = async (ms: number) => {
    t.sleeps.push(ms);
    t.now += ms;
  };
  return { t, now, sleep, slept: () => t.sleeps.reduce((a, b) => a + b, 0) };
}

describe('RateLimiter', () => {
  // Sending N bytes at R bytes/s as fast as possible sleeps N/R seconds, less the initial burst.
  it('paces a long transfer to the configured rate', async () => {
    const { now, sleep, slept } = fakeTime();
    const rate = 1_000_000;
    const limiter = new RateLimiter(rate, now, sleep);
    const burst = Math.max(16 * 1024, rate / 10);
    let total = 0;
    for (let i = 0; i < 1000; i++) {
      const n = 1000 + ((i * 7919) % 20_000);
      await limiter.take(n);
      total += n;
    }
    const ideal = (total / rate) * 1000;
    expect(slept()).toBeGreaterThanOrEqual(ideal - (burst / rate) * 1000 - 1);
    expect(slept()).toBeLessThanOrEqual(ideal + 1);
  });

  // Small takes within the burst allowance do not sleep at all.
  it('lets a burst through without sleeping', async () => {
    const { t, now, sleep } = fakeTime();
    const limiter = new RateLimiter(1_000_000, now, sleep);
    for (let i = 0; i < 10; i++) await limiter.take(10_000);
    expect(t.sleeps).toEqual([]);
    await limiter.take(10_000);
    expect(t.sleeps).toEqual([10]);
  });

  // A frame larger than the burst waits in proportion to its size (the bucket goes into debt).
  it('makes a large frame wait in proportion to its size', async () => {
    const { t, now, sleep } = fakeTime();
    const limiter = new RateLimiter(100_000, now, sleep); // burst: 16 KiB (the floor)
    await limiter.take(16 * 1024 + 50_000);
    expect(t.sleeps).toEqual([500]);
  });

  // Idle time refills the bucket only up to the burst, never a backlog.
  it('does not bank idle time beyond the burst', async () => {
    const { t, now, sleep, slept } = fakeTime();
    const rate = 1_000_000;
    const limiter = new RateLimiter(rate, now, sleep);
    await limiter.take(rate); // one second of traffic
    t.now += 60_000; // a minute idle
    t.sleeps = [];
    let total = 0;
    for (let i = 0; i < 100; i++) {
      await limiter.take(50_000);
      total += 50_000;
    }
    expect(slept()).toBeCloseTo(((total - rate / 10) / rate) * 1000, 6);
  });

  // A sender slower than the limit is never slowed down.
  it('does not sleep when the sender is slower than the rate', async () => {
    const { t, now, sleep } = fakeTime();
    const limiter = new RateLimiter(1_000_000, now, sleep);
    for (let i = 0; i < 100; i++) {
      await limiter.take(50_000);
      t.now += 100; // 50 kB per 100 ms = 500 kB/s
    }
    expect(t.sleeps).toEqual([]);
  });
});

describe('units', () => {
  // Decimal and binary suffixes, fractions, rates with /s and case do what the CLI help says.
  it('parses sizes', () => {
    expect(parseBytes('10MB')).toBe(10e6);
    expect(parseBytes('512KiB')).toBe(512 * 1024);
    expect(parseBytes('1.5G')).toBe(1.5e9);
    expect(parseBytes('100')).toBe(100);
    expect(parseBytes('2gib')).toBe(2 * 1024 ** 3);
    expect(parseBytes(' 3 k ')).toBe(3000);
    expect(parseBytes('10MB/s')).toBe(10e6);
    expect(parseBytes('1TiB')).toBe(1024 ** 4);
    expect(parseBytes('0')).toBe(0);
  });

  // Anything else is an error, never NaN or a silent 0.
  it('rejects bad sizes', () => {
    for (const bad of ['', 'MB', '-1', '1..5M', '10XB', '1e6', 'ten', '10 M B', '0x10']) {
      expect(() => parseBytes(bad), bad).toThrow(/cannot read/);
    }
  });

  // Status output uses binary units with one decimal.
  it('formats sizes', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1024)).toBe('1.0 KiB');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(10 * 1024 ** 2)).toBe('10.0 MiB');
    expect(formatBytes(3.25 * 1024 ** 3)).toBe('3.3 GiB');
    expect(formatBytes(2048 * 1024 ** 4)).toBe('2048.0 TiB');
  });
});

describe('addresses', () => {
  // host, host:port, [v6], [v6]:port and bare v6 parse; the default port fills in.
  it('parses host and port', () => {
    expect(parseHostPort('relay.example')).toEqual({ host: 'relay.example', port: DEFAULT_PORT });
    expect(parseHostPort('127.0.0.1:9')).toEqual({ host: '127.0.0.1', port: 9 });
    expect(parseHostPort('[::1]:80')).toEqual({ host: '::1', port: 80 });
    expect(parseHostPort('[::1]')).toEqual({ host: '::1', port: DEFAULT_PORT });
    expect(parseHostPort('fe80::1')).toEqual({ host: 'fe80::1', port: DEFAULT_PORT });
    expect(parseHostPort(' h:65535 ')).toEqual({ host: 'h', port: 65535 });
    expect(parseHostPort('h', 1234)).toEqual({ host: 'h', port: 1234 });
  });

  // Malformed names fail with BAD_ADDRESS.
  it('rejects bad addresses', () => {
    for (const bad of ['', ':80', 'h:', 'h:65536', 'h:-1', 'h:80x', '[::1', '[::1]80', '[::1]:', 'a b', 'h/x:1', '[]:1']) {
      expect(() => parseHostPort(bad), bad).toThrow(expect.objectContaining({ code: 'BAD_ADDRESS' }));
    }
  });

  // The canonical name always carries the port and brackets IPv6.
  it('canonicalizes hosts', () => {
    expect(canonicalHost('relay')).toBe(`relay:${DEFAULT_PORT}`);
    expect(canonicalHost('relay:1')).toBe('relay:1');
    expect(canonicalHost('[::1]:80')).toBe('[::1]:80');
    expect(canonicalHost('::1')).toBe(`[::1]:${DEFAULT_PORT}`);
    expect(canonicalHost(canonicalHost('[::1]:80'))).toBe('[::1]:80');
  });

  // kangaroo:// URLs give a canonical host and a normalized path.
  it('parses kangaroo URLs', () => {
    expect(parseKangarooUrl('kangaroo://h:1/a/./b//c')).toEqual({ host: 'h:1', path: '/a/b/c' });
    expect(parseKangarooUrl('kangaroo://h')).toEqual({ host: `h:${DEFAULT_PORT}`, path: '/' });
    expect(parseKangarooUrl('kangaroo://[::1]:80/x/../y')).toEqual({ host: '[::1]:80', path: '/y' });
    expect(formatKangarooUrl(parseKangarooUrl('kangaroo://h/a b'))).toBe(`kangaroo://h:${DEFAULT_PORT}/a b`);
    expect(() => parseKangarooUrl('http://h/x')).toThrow(expect.objectContaining({ code: 'BAD_ADDRESS' }));
    expect(() => parseKangarooUrl('kangaroo:///x')).toThrow(expect.objectContaining({ code: 'BAD_ADDRESS' }));
    expect(() => parseKangarooUrl('kangaroo://h/../x')).toThrow(expect.objectContaining({ code: 'PATH_ESCAPE' }));
  });

  // Paths normalize lexically; climbing above the root is PATH_ESCAPE, never clamped.
  it('normalizes paths', () => {
    expect(normalizePath('a/./b//c')).toBe('/a/b/c');
    expect(normalizePath('/')).toBe('/');
    expect(normalizePath('')).toBe('/');
    expect(normalizePath('/a/b/../c/.')).toBe('/a/c');
    expect(normalizePath('/a/..')).toBe('/');
    expect(normalizePath('/x/.../y')).toBe('/x/.../y');
    expect(() => normalizePath('/..')).toThrow(expect.objectContaining({ code: 'PATH_ESCAPE' }));
    expect(() => normalizePath('a/../../b')).toThrow(expect.objectContaining({ code: 'PATH_ESCAPE' }));
    expect(() => normalizePath('/a\0b')).toThrow(expect.objectContaining({ code: 'BAD_PATH' }));
    expect(() => normalizePath('/' + 'x'.repeat(256))).toThrow(expect.objectContaining({ code: 'BAD_PATH' }));
    expect(() => normalizePath('/a'.repeat(2049))).toThrow(expect.objectContaining({ code: 'BAD_PATH' }));
    expect(normalizePath('/' + 'x'.repeat(255))).toBe('/' + 'x'.repeat(255));
  });

  // The error codes carry their errno and class (PATH_ESCAPE is a permanent permission error).
  it('classifies path errors', () => {
    try {
      normalizePath('/..');
      expect.unreachable();
    } catch (e) {
      expect(code('PATH_ESCAPE')(e)).toBe(true);
      expect((e as KangarooError).errno).toBe('EACCES');
      expect((e as KangarooError).transient).toBe(false);
    }
  });
});
