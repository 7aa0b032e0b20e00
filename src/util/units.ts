import { KangarooError } from '../errors.js';

/** Human sizes and rates on the command line and in status output. */

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1e3, kb: 1e3, kib: 1024, m: 1e6, mb: 1e6, mib: 1024 ** 2, g: 1e9, gb: 1e9, gib: 1024 ** 3, t: 1e12, tb: 1e12, tib: 1024 ** 4 };

/** Parses sizes and rates such as `10MB`, `512KiB`, `1.5G`, `100` (bytes). */
export function parseBytes(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)(?:\/s)?\s*$/.exec(text);
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new KangarooError('BAD_ARGUMENT', `cannot read "${text}" as a size (examples: 10MB, 512KiB, 2G)`);
  return Math.round(Number(m[1]) * unit);
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, '': 1000, m: 60_000, min: 60_000, h: 3_600_000 };

/** Parses durations such as `30s`, `500ms`, `10m`, `2h`; a bare number is seconds. */
export function parseDuration(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|min|m|h|)\s*$/.exec(text);
  if (!m) throw new KangarooError('BAD_ARGUMENT', `cannot read "${text}" as a duration (examples: 500ms, 30s, 10m)`);
  return Math.round(Number(m[1]) * DURATION_UNITS[m[2]!]!);
}
