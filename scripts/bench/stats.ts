/** Small numeric helpers: timing, rates and medians. */

export const MiB = 1024 * 1024;

export function now(): number {
  return performance.now();
}

/** Decimal megabytes per second (the unit dd and the design's reference table use). */
export function mbps(bytes: number, ms: number): number {
  return bytes / 1e6 / (ms / 1000);
}

export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** A figure measured once per repeat. */
export interface Series {
  unit: string;
  runs: number[];
  median: number;
  min: number;
  max: number;
}

export function series(unit: string, runs: number[]): Series {
  return { unit, runs, median: median(runs), min: Math.min(...runs), max: Math.max(...runs) };
}

/** A ratio of two figures taken in the same repeat, so drift of a shared machine cancels. */
export interface Ratio extends Series {
  of: string;
  against: string;
  /** The design target, or null for information only. */
  target: number | null;
  /** Whether the target is a floor (the ratio should be at least it) or a ceiling (at most it). */
  bound: 'min' | 'max';
  met: boolean | null;
}

export function ratio(of: string, against: string, num: number[], den: number[], target: number | null, bound: 'min' | 'max' = 'min'): Ratio {
  const runs = num.map((n, i) => n / den[i]!);
  const s = series('x', runs);
  const met = target === null ? null : bound === 'min' ? s.median >= target : s.median <= target;
  return { ...s, of, against, target, bound, met };
}
