import fs from 'node:fs';

/**
 * CPU time of every process on the machine (/proc/PID/stat's utime + stime), so a
 * trial can say which processes used the CPU while its program ran: the approach's
 * own (a mount, an sftp server), the program, or something left over from an
 * earlier trial. Diagnostics only; empty where there is no /proc.
 */

export type CpuSnapshot = Map<number, { name: string; ticks: number }>;

export interface ProcessCpu {
  pid: number;
  name: string;
  ms: number;
}

const TICK_MS = 10; // USER_HZ is 100 on Linux

export function cpuSnapshot(): CpuSnapshot {
  const snap: CpuSnapshot = new Map();
  let pids: string[];
  try {
    pids = fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return snap;
  }
  for (const pid of pids) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      // the name is in parentheses and may hold spaces: the fields after it are counted from its end
      const close = stat.lastIndexOf(')');
      const name = stat.slice(stat.indexOf('(') + 1, close);
      const fields = stat.slice(close + 2).split(' ');
      // fields[0] is the state (field 3); utime and stime are fields 14 and 15
      snap.set(Number(pid), { name, ticks: Number(fields[11]) + Number(fields[12]) });
    } catch {
      // gone meanwhile
    }
  }
  return snap;
}

/** The processes that used the most CPU between two snapshots (new ones counted from zero), busiest first. */
export function topCpu(before: CpuSnapshot, after: CpuSnapshot, count = 6): ProcessCpu[] {
  const used: ProcessCpu[] = [];
  for (const [pid, a] of after) {
    const b = before.get(pid);
    const ticks = a.ticks - (b && b.name === a.name ? b.ticks : 0);
    if (ticks > 0) used.push({ pid, name: a.name, ms: ticks * TICK_MS });
  }
  return used.sort((x, y) => y.ms - x.ms).slice(0, count);
}
