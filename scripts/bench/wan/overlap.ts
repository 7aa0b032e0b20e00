import { Resources } from '../resources.js';
import { MiB } from '../stats.js';
import { run, settleDisk } from './exec.js';
import { Session } from './session.js';
import { TrialResult, WRITER, busy, startTrial } from './trial.js';

/**
 * The paper's figures 12 and 13: a program that alternates compute (a busy loop)
 * with writing an output, run at several link rates. The least any approach can
 * take is max(CPU time, transfer time): with overlap, turnaround stays near the
 * CPU time until the link falls below the program's output rate, and follows the
 * link below it; without overlap (staging) it is their sum.
 */

export interface OverlapSpec {
  outputs: number;
  mib: number;
  cpuMs: number;
  ratesMBps: number[];
}

export interface OverlapPoint {
  rateMBps: number;
  /** The rate the link gives at this setting (nominal x efficiency measured at the start). */
  effectiveMBps: number;
  /** The program's compute bursts, as measured by the program writing to local disk in this run. */
  cpuMs: number;
  /**
   * All the CPU time that run used (time.process_time): the bursts, and making and hashing
   * its outputs, which the bursts leave out. Information beside the floor (absent in older records).
   */
  programCpuMs?: number;
  /** The same program writing to local disk, start to exit. */
  localMs: number;
  transferMs: number;
  /** max(CPU, transfer): what perfect overlap would give. */
  floorMs: number;
  trials: TrialResult[];
}

/** The program's own output rate while it runs: its bytes over its compute time (decimal MB/s). */
export function programRateMBps(spec: OverlapSpec): number {
  return (spec.mib * MiB) / 1e6 / (spec.cpuMs / 1000);
}

export async function overlap(res: Resources, s: Session, spec: OverlapSpec, progress: (t: string) => void): Promise<OverlapPoint[]> {
  const bytes = spec.outputs * spec.mib * MiB;
  const points: OverlapPoint[] = [];
  const local = await res.tempDir();
  const startRate = s.link.rateMBps;
  try {
    for (const rate of spec.ratesMBps) {
      await s.link.setRate(rate);
      await settleDisk();
      const l = await run('python3', [WRITER, 'overlap', local, String(spec.outputs), String(spec.mib), String(spec.cpuMs)], 600_000);
      if (l.code !== 0) throw new Error(`local overlap run: ${l.stderr}`);
      await run('sh', ['-c', `rm -f ${local}/out-*.bin`]);
      const { cpuMs, processCpuMs: programCpuMs } = JSON.parse(l.stdout.trim().split('\n').pop()!) as { cpuMs: number; processCpuMs: number };
      const effectiveMBps = rate * s.efficiency;
      const transferMs = (bytes / (effectiveMBps * 1e6)) * 1000;
      const floorMs = Math.max(cpuMs, transferMs);
      const point: OverlapPoint = { rateMBps: rate, effectiveMBps, cpuMs, programCpuMs, localMs: l.ms, transferMs, floorMs, trials: [] };
      progress(`  overlap at ${rate} MB/s (CPU ${(cpuMs / 1000).toFixed(1)} s, transfer ${(transferMs / 1000).toFixed(1)} s):`);
      const budget = 3 * (cpuMs + transferMs) + 60_000;
      for (const a of s.approaches) {
        await settleDisk();
        const t = await startTrial(res, a, { kind: 'overlap', outputs: spec.outputs, mib: spec.mib, cpuMs: spec.cpuMs }, { programMs: budget, deliveryMs: budget + 30_000 }).done;
        point.trials.push(t);
        progress(` ${a.key} ${t.turnaroundMs === null ? t.state : (t.turnaroundMs / 1000).toFixed(1)} s${busy(t)}`);
      }
      progress('\n');
      points.push(point);
    }
  } finally {
    await s.link.setRate(startRate);
  }
  return points;
}
