import { KangarooError } from '../errors.js';
import { parseDuration } from '../util/units.js';
import { BackoffPolicy, DEFAULT_BACKOFF } from './backoff.js';

/**
 * Retry policy per next hop, as data: `--retry NAME=initial=1s,max=5m,deadline=2h,pause=02:00-03:00`
 * (NAME a host:port or `*`).
 * - initial, max: the backoff between attempts (doubling, with jitter);
 * - deadline: after failing without a break for this long, stop retrying: the
 *   files stay spooled, push reports it, and `kangaroo retry` starts again;
 * - pause: a daily maintenance window (UTC, HH:MM-HH:MM) in which no attempt is made.
 */
export interface RetryPolicy {
  backoff: BackoffPolicy;
  deadlineMs?: number;
  pause?: { fromMinute: number; toMinute: number };
}

export const DEFAULT_RETRY: RetryPolicy = { backoff: DEFAULT_BACKOFF };

function minuteOf(hhmm: string, spec: string): number {
  const m = /^(\d{1,2}):(\d{2})$/.exec(hhmm);
  if (!m || Number(m[1]) > 23 || Number(m[2]) > 59) throw new KangarooError('BAD_ARGUMENT', `bad time "${hhmm}" in retry policy "${spec}" (use HH:MM, UTC)`);
  return Number(m[1]) * 60 + Number(m[2]);
}

export function parseRetryPolicy(spec: string): { name: string; policy: RetryPolicy } {
  const eq = spec.indexOf('=');
  if (eq <= 0) throw new KangarooError('BAD_ARGUMENT', `bad retry policy "${spec}": expected NAME=initial=1s,max=5m[,deadline=2h][,pause=02:00-03:00]`);
  const name = spec.slice(0, eq).trim();
  const policy: RetryPolicy = { backoff: { ...DEFAULT_BACKOFF } };
  for (const part of spec.slice(eq + 1).split(',')) {
    const [key, value] = part.split('=').map((x) => x.trim()) as [string, string | undefined];
    if (!value) throw new KangarooError('BAD_ARGUMENT', `bad retry policy "${spec}": "${part}" has no value`);
    if (key === 'initial') policy.backoff.initialMs = parseDuration(value);
    else if (key === 'max') policy.backoff.maxMs = parseDuration(value);
    else if (key === 'deadline') policy.deadlineMs = parseDuration(value);
    else if (key === 'pause') {
      const [from, to] = value.split('-');
      if (!from || !to) throw new KangarooError('BAD_ARGUMENT', `bad pause "${value}" in "${spec}" (use HH:MM-HH:MM)`);
      policy.pause = { fromMinute: minuteOf(from, spec), toMinute: minuteOf(to, spec) };
    } else throw new KangarooError('BAD_ARGUMENT', `unknown retry policy key "${key}" in "${spec}" (initial, max, deadline, pause)`);
  }
  if (policy.backoff.maxMs < policy.backoff.initialMs) policy.backoff.maxMs = policy.backoff.initialMs;
  return { name, policy };
}

/** Milliseconds until the pause window ends, or 0 when `at` is outside it. */
export function pauseRemainingMs(policy: RetryPolicy, at: Date = new Date()): number {
  if (!policy.pause) return 0;
  const { fromMinute, toMinute } = policy.pause;
  const minute = at.getUTCHours() * 60 + at.getUTCMinutes();
  const inside = fromMinute <= toMinute ? minute >= fromMinute && minute < toMinute : minute >= fromMinute || minute < toMinute;
  if (!inside) return 0;
  const untilEnd = (toMinute - minute + 1440) % 1440 || 1440;
  return untilEnd * 60_000 - at.getUTCSeconds() * 1000 - at.getUTCMilliseconds();
}
