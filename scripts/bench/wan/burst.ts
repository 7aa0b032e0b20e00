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
 */

/** Bursts whose link floor is longer than this run once: repeating them would add minutes for little. */
export const REPEAT_MAX_FLOOR_MS = 30_000;

export interface BurstPoint {
  mib: number;
  /** The same program writing to local disk, start to exit (no fsync: the data may still be in the page cache); median of the rounds. */
  localMs: number;
  /** The same, with fsync before close: local disk giving close the promise a kangaroo mount gives it; median of the rounds. */
  localFsyncMs: number;
  /** Bytes / measured link rate. */
  floorMs: number;
  /** Per approach, the round whose response was the median (its turnaround is that round's). */
  trials: TrialResult[];
  /** Every round's figures, in order: the baselines and each approach's response and turnaround. */
  rounds: { localMs: number; localFsyncMs: number; responseMs: Record<string, number>; turnaroundMs: Record<string, number | null> }[];
}

/** The trial whose response is the median of its approach's rounds (the lower middle of an even count). */
function medianTrial(trials: TrialResult[]): TrialResult {
  const sorted = [...trials].sort((a, b) => a.program.ms - b.program.ms);
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
    progress(`  burst ${mib} MiB (link floor ${(floorMs / 1000).toFixed(1)} s), ${count} round(s):\n`);
    const rounds: BurstPoint['rounds'] = [];
    const byApproach = new Map<string, TrialResult[]>();
    for (let round = 1; round <= count; round++) {
      const localMs = await localRun('burst');
      const localFsyncMs = await localRun('burst-fsync');
      progress(`    local ${(localMs / 1000).toFixed(2)} s, with fsync ${(localFsyncMs / 1000).toFixed(2)} s;`);
      const r: BurstPoint['rounds'][number] = { localMs, localFsyncMs, responseMs: {}, turnaroundMs: {} };
      for (const a of s.approaches) {
        await settleDisk();
        const t = await startTrial(res, a, { kind: 'burst', mib }, { programMs: 3 * floorMs + 60_000, deliveryMs: 3 * floorMs + 90_000 }).done;
        byApproach.set(a.key, [...(byApproach.get(a.key) ?? []), t]);
        r.responseMs[a.key] = t.program.ms;
        r.turnaroundMs[a.key] = t.turnaroundMs;
        progress(` ${a.key} ${(t.program.ms / 1000).toFixed(1)}/${t.turnaroundMs === null ? t.state : (t.turnaroundMs / 1000).toFixed(1)} s${busy(t)}`);
      }
      progress('\n');
      rounds.push(r);
    }
    points.push({
      mib,
      localMs: median(rounds.map((r) => r.localMs)),
      localFsyncMs: median(rounds.map((r) => r.localFsyncMs)),
      floorMs,
      trials: s.approaches.map((a) => medianTrial(byApproach.get(a.key)!)),
      rounds,
    });
  }
  return points;
}
