import path from 'node:path';
import { Resources } from '../resources.js';
import { MiB } from '../stats.js';
import { run } from './exec.js';
import { Session } from './session.js';
import { TrialResult, WRITER, startTrial } from './trial.js';

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

export interface BurstPoint {
  mib: number;
  /** The same program writing to local disk, start to exit (no fsync: the data may still be in the page cache). */
  localMs: number;
  /** The same, with fsync before close: local disk giving close the promise a kangaroo mount gives it. */
  localFsyncMs: number;
  /** Bytes / measured link rate. */
  floorMs: number;
  trials: TrialResult[];
}

export async function burst(res: Resources, s: Session, sizes: number[], progress: (t: string) => void): Promise<BurstPoint[]> {
  const points: BurstPoint[] = [];
  const local = await res.tempDir();
  for (const mib of sizes) {
    const file = path.join(local, 'burst.bin');
    const localRun = async (mode: 'burst' | 'burst-fsync') => {
      const l = await run('python3', [WRITER, mode, file, String(mib)], 600_000);
      if (l.code !== 0) throw new Error(`local write (${mode}): ${l.stderr}`);
      await run('rm', ['-f', file]);
      return l.ms;
    };
    const localMs = await localRun('burst');
    const localFsyncMs = await localRun('burst-fsync');
    const floorMs = ((mib * MiB) / (s.measuredMBps * 1e6)) * 1000;
    const point: BurstPoint = { mib, localMs, localFsyncMs, floorMs, trials: [] };
    progress(`  burst ${mib} MiB (local ${(localMs / 1000).toFixed(2)} s, with fsync ${(localFsyncMs / 1000).toFixed(2)} s, link floor ${(floorMs / 1000).toFixed(1)} s):`);
    for (const a of s.approaches) {
      const t = await startTrial(res, a, { kind: 'burst', mib }, { programMs: 3 * floorMs + 60_000, deliveryMs: 3 * floorMs + 90_000 }).done;
      point.trials.push(t);
      progress(` ${a.key} ${(t.program.ms / 1000).toFixed(1)}/${t.turnaroundMs === null ? t.state : (t.turnaroundMs / 1000).toFixed(1)} s`);
    }
    progress('\n');
    points.push(point);
  }
  return points;
}
