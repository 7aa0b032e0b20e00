import { BurstPoint } from './burst.js';
import { OverlapPoint } from './overlap.js';
import { TrialResult } from './trial.js';

/**
 * The targets for kangaroo, judged on one run's figures:
 * (a) burst response at least 0.6 of local-disk speed (local ms / kangaroo ms),
 *     local disk with fsync before close, since kangaroo's close returns only once
 *     the data is fsync'd in the first hop's spool; against the plain local write
 *     the ratio is given as information;
 * (b) burst turnaround within 1.05x the link floor;
 * (c) overlap turnaround within 1.15x max(CPU, transfer), and below staging's and
 *     rclone's at every link rate.
 * Turnarounds are counted from the program's own start (its first instruction):
 * the floors leave out the interpreter's start-up (50-150 ms for python here,
 * more on a loaded machine), which no approach can overlap or avoid; the same
 * ratio counted from the spawn is given as information.
 * A verdict is ok, BELOW (a ratio under its minimum) or ABOVE (a time over its limit);
 * info rows carry no verdict; "-" when a trial did not finish.
 */

export type Verdict = 'ok' | 'BELOW' | 'ABOVE' | 'info' | '-';

export interface TargetCheck {
  target: 'a' | 'b' | 'c';
  /** The measurement, e.g. "burst 10 MiB" or "overlap 4 MB/s". */
  point: string;
  what: string;
  value: number | null;
  /** The bound the value is held to, and which side of it is good. */
  bound: number;
  good: 'atLeast' | 'atMost' | 'below';
  verdict: Verdict;
}

export const RESPONSE_MIN = 0.6;
export const BURST_TURNAROUND_MAX = 1.05;
export const OVERLAP_TURNAROUND_MAX = 1.15;

function judge(value: number | null, bound: number, good: TargetCheck['good']): Verdict {
  if (value === null || !Number.isFinite(value)) return '-';
  if (good === 'atLeast') return value >= bound ? 'ok' : 'BELOW';
  if (good === 'atMost') return value <= bound ? 'ok' : 'ABOVE';
  return value < bound ? 'ok' : 'ABOVE';
}

/** Turnaround from the program's first instruction (the trial's figure is from the spawn). */
function fromStart(t: TrialResult): number | null {
  if (t.turnaroundMs === null) return null;
  return t.turnaroundMs - (t.program.startedMs ?? 0);
}

export function checkTargets(burst: BurstPoint[], overlap: OverlapPoint[], approach = 'kangaroo'): TargetCheck[] {
  const out: TargetCheck[] = [];
  for (const p of burst) {
    const t = p.trials.find((x) => x.approach === approach);
    if (!t) continue;
    const ok = t.program.status === 'ok';
    const point = `burst ${p.mib} MiB`;
    // against the local runs just before this trial
    const b = p.baselineOf[approach] ?? p;
    const fsyncRatio = ok ? b.localFsyncMs / t.program.ms : null;
    out.push({ target: 'a', point, what: 'response speed vs local write + fsync (local ms / kangaroo ms)', value: fsyncRatio, bound: RESPONSE_MIN, good: 'atLeast', verdict: judge(fsyncRatio, RESPONSE_MIN, 'atLeast') });
    const plainRatio = ok ? b.localMs / t.program.ms : null;
    out.push({ target: 'a', point, what: 'response speed vs local write, no fsync (information)', value: plainRatio, bound: RESPONSE_MIN, good: 'atLeast', verdict: plainRatio === null ? '-' : 'info' });
    const turn = fromStart(t) === null ? null : fromStart(t)! / p.floorMs;
    out.push({ target: 'b', point, what: 'turnaround from program start / link floor', value: turn, bound: BURST_TURNAROUND_MAX, good: 'atMost', verdict: judge(turn, BURST_TURNAROUND_MAX, 'atMost') });
    const spawn = t.turnaroundMs === null ? null : t.turnaroundMs / p.floorMs;
    out.push({ target: 'b', point, what: 'turnaround from spawn / link floor (information)', value: spawn, bound: BURST_TURNAROUND_MAX, good: 'atMost', verdict: spawn === null ? '-' : 'info' });
  }
  for (const p of overlap) {
    const t = p.trials.find((x) => x.approach === approach);
    if (!t) continue;
    const point = `overlap ${p.rateMBps} MB/s`;
    const turn = fromStart(t) === null ? null : fromStart(t)! / p.floorMs;
    out.push({ target: 'c', point, what: 'turnaround from program start / max(CPU, transfer)', value: turn, bound: OVERLAP_TURNAROUND_MAX, good: 'atMost', verdict: judge(turn, OVERLAP_TURNAROUND_MAX, 'atMost') });
    const spawn = t.turnaroundMs === null ? null : t.turnaroundMs / p.floorMs;
    out.push({ target: 'c', point, what: 'turnaround from spawn / max(CPU, transfer) (information)', value: spawn, bound: OVERLAP_TURNAROUND_MAX, good: 'atMost', verdict: spawn === null ? '-' : 'info' });
    for (const other of ['staging', 'rclone']) {
      const o = p.trials.find((x) => x.approach === other);
      if (!o) continue;
      // a peer that never delivered is beaten by any finished run
      const theirs = fromStart(o) ?? Infinity;
      const mine = fromStart(t);
      const ratio = mine === null ? null : mine / theirs;
      out.push({ target: 'c', point, what: `turnaround / ${other}'s (must be below 1)`, value: ratio, bound: 1, good: 'below', verdict: judge(ratio, 1, 'below') });
    }
  }
  return out;
}
