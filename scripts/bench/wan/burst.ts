import path from 'node:path';
import { Resources } from '../resources.js';
import { median, MiB } from '../stats.js';
import { run, settleDisk } from './exec.js';
import { Session } from './session.js';
import { TrialResult, WRITER, busy, startTrial } from './trial.js';

/**
 * The paper's figures 10 and 11: a program writes N MB as fast as it can, and
 * closes. Response time is the program's wall time; turnaround is until the whole
 * file is at the destination, checked. Baselines of the same run: the program
 * writing to local disk (response), and the link floor, bytes over the link's
 * measured rate (turnaround).
 *
 * Two local baselines, both measured in this run: the program's plain write and
 * close, and the same with fsync before close. kangaroo's close returns once the
 * data is fsync'd in the first hop's spool (close = safely spooled), so the fair
 * comparison for its response is local write + fsync; the plain one is shown too.
 *
 * Both are run right before every trial, and each approach's response is set
 * against the runs just before its own: the 1000 MiB round runs once and takes
 * six minutes, and a baseline from its start said little of the disk and memory
 * the last approach met (on these virtual machines a write into memory nobody
 * touched lately costs several times more: see the README).
 */

/** Bursts whose link floor is longer than this run once: repeating them would add minutes for little. */
export const REPEAT_MAX_FLOOR_MS = 30_000;

export interface Baseline {
  /** The same program writing to local disk, start to exit (no fsync: the data may still be in the page cache). */
  localMs: number;
  /** The same, with fsync before close: local disk giving close the promise a kangaroo mount gives it. */
  localFsyncMs: number;
}

export interface BurstPoint {
  mib: number;
  /** Medians of all the point's baseline runs (for the heading: each approach is judged against `baselineOf`). */
  localMs: number;
  localFsyncMs: number;
  /** Bytes / measured link rate. */
  floorMs: number;
  /** Per approach, the round whose response was the median (its turnaround is that round's). */
  trials: TrialResult[];
  /** Per approach, the baselines run just before the trial in `trials`: its response is judged against them. */
  baselineOf: Record<string, Baseline>;
  /** Every round's figures, in order: per approach the baselines run before its trial, its response and turnaround. */
  rounds: { baselines: Record<string, Baseline>; responseMs: Record<string, number>; turnaroundMs: Record<string, number | null> }[];
}

interface Run {
  trial: TrialResult;
  baseline: Baseline;
}

const sec = (ms: number) => (ms / 1000).toFixed(2);

/** The run whose response is the median of its approach's rounds (the lower middle of an even count). */
function medianRun(runs: Run[]): Run {
  const sorted = [...runs].sort((a, b) => a.trial.program.ms - b.trial.program.ms);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

/**
 * Rounds alternate the baselines and the approaches, so a stretch of a busy machine
 * falls on both sides of a ratio; each figure is the median of its rounds.
 */
export async function burst(res: Resources, s: Session, sizes: number[], repeats: number, progress: (t: string) => void): Promise<BurstPoint[]> {
  const points: BurstPoint[] = [];
  const local = await res.tempDir();
  for (const mib of sizes) {
    const file = path.join(local, 'burst.bin');
    const localRun = async (mode: 'burst' | 'burst-fsync') => {
      await settleDisk();
      const l = await run('python3', [WRITER, mode, file, String(mib)], 600_000);
      if (l.code !== 0) throw new Error(`local write (${mode}): ${l.stderr}`);
      await run('rm', ['-f', file]);
      return l.ms;
    };
    const floorMs = ((mib * MiB) / (s.measuredMBps * 1e6)) * 1000;
    const count = floorMs <= REPEAT_MAX_FLOOR_MS ? repeats : 1;
    progress(`  burst ${mib} MiB (link floor ${(floorMs / 1000).toFixed(1)} s), ${count} round(s); each trial after its local runs (plain/with fsync):\n`);
    const rounds: BurstPoint['rounds'] = [];
    const byApproach = new Map<string, Run[]>();
    for (let round = 1; round <= count; round++) {
      const r: BurstPoint['rounds'][number] = { baselines: {}, responseMs: {}, turnaroundMs: {} };
      progress('   ');
      for (const a of s.approaches) {
        const baseline = { localMs: await localRun('burst'), localFsyncMs: await localRun('burst-fsync') };
        await settleDisk();
        const t = await startTrial(res, a, { kind: 'burst', mib }, { programMs: 3 * floorMs + 60_000, deliveryMs: 3 * floorMs + 90_000 }).done;
        byApproach.set(a.key, [...(byApproach.get(a.key) ?? []), { trial: t, baseline }]);
        r.baselines[a.key] = baseline;
        r.responseMs[a.key] = t.program.ms;
        r.turnaroundMs[a.key] = t.turnaroundMs;
        progress(` [${sec(baseline.localMs)}/${sec(baseline.localFsyncMs)}] ${a.key} ${(t.program.ms / 1000).toFixed(1)}/${t.turnaroundMs === null ? t.state : (t.turnaroundMs / 1000).toFixed(1)} s${busy(t)}`);
      }
      progress('\n');
      rounds.push(r);
    }
    const all = rounds.flatMap((r) => Object.values(r.baselines));
    const chosen = s.approaches.map((a) => [a.key, medianRun(byApproach.get(a.key)!)] as const);
    points.push({
      mib,
      localMs: median(all.map((b) => b.localMs)),
      localFsyncMs: median(all.map((b) => b.localFsyncMs)),
      floorMs,
      trials: chosen.map(([, run]) => run.trial),
      baselineOf: Object.fromEntries(chosen.map(([key, run]) => [key, run.baseline])),
      rounds,
    });
  }
  return points;
}
