import fsp from 'node:fs/promises';
import path from 'node:path';
import { CodeInfo, MachineInfo } from '../machine.js';
import { BurstPoint } from './burst.js';
import { FaultRun } from './faults.js';
import { OverlapPoint, OverlapSpec } from './overlap.js';
import { turnaroundSvg } from './plot.js';
import { writeResultFiles } from '../report.js';
import { TargetCheck } from './targets.js';
import { TrialResult } from './trial.js';

/** The wide-area comparison's record: a table on stdout, JSON and an SVG in bench-results/. */

export interface WanRecord {
  benchmark: 'wan';
  startedAt: string;
  durationSeconds: number;
  mode: 'quick' | 'normal';
  machine: MachineInfo;
  code: CodeInfo;
  /** sshfs -V, rclone version, ssh -V, kernel. */
  tools: Record<string, string>;
  link: { kind: 'netns' | 'loopback'; rateMBps: number; measuredMBps: number; efficiency: number; cutMethod: string; note: string };
  approaches: { key: string; label: string; settings: string }[];
  burst: BurstPoint[];
  overlapSpec: OverlapSpec | null;
  overlap: OverlapPoint[];
  faults: FaultRun[];
  /** The issue's targets (a), (b), (c) for kangaroo, each ok, BELOW or ABOVE. */
  targets: TargetCheck[];
  /** How often the destination was looked at (turnaround is late by up to this). */
  pollMs: number;
  /** What could not be run, and why. */
  skipped: string[];
}

const s = (ms: number | null) => (ms === null ? '-' : `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`);
const x = (v: number | null) => (v === null || !Number.isFinite(v) ? '-' : `${v >= 10 ? v.toFixed(0) : v.toFixed(2)}x`);

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd();
  return [line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

function seen(t: TrialResult): string {
  const p = t.program;
  const prog = p.status === 'ok' ? `nothing (exit 0 after ${s(p.ms)})` : p.status === 'hang' ? `hang (still running at ${s(p.ms)})` : `error at ${s(p.ms)}: ${p.message}`;
  return t.copy && t.copy.code !== 0 ? `${prog}; scp failed: ${t.copy.message}` : prog;
}

export function formatWan(rec: WanRecord): string {
  const label = (k: string) => rec.approaches.find((a) => a.key === k)?.label ?? k;
  const out: string[] = [];
  const l = rec.link;
  out.push(
    `kangaroo ${rec.code.version} wide-area comparison, ${rec.mode} mode (Kangaroo paper, HPDC 2001, figures 10-13, small)`,
    `link: ${l.kind === 'netns' ? `network namespace + veth, htb on both ends at ${l.rateMBps} MB/s nominal, measured ${l.measuredMBps.toFixed(2)} MB/s (TCP copy)` : `loopback, ${l.note}`}; cut by ${l.cutMethod}`,
    `tools: ${Object.entries(rec.tools).map(([k, v]) => `${k} ${v}`).join('; ')}`,
    `approaches: ${rec.approaches.map((a) => `${a.label} [${a.settings}]`).join('; ')}`,
    '',
  );
  if (rec.burst.length > 0) {
    const rows = [['burst: write N MiB, close', 'approach', 'response', 'speed vs local+fsync', 'vs local', 'turnaround', 'vs link floor', 'destination']];
    const r = (v: number) => v.toFixed(2);
    for (const p of rec.burst) {
      const rounds = p.rounds?.length ?? 1;
      rows.push([`${p.mib} MiB (${rounds > 1 ? `median of ${rounds} rounds; ` : ''}local runs' median ${s(p.localMs)}, with fsync ${s(p.localFsyncMs)}; floor ${s(p.floorMs)})`, '', '', '', '', '', '', '']);
      for (const t of p.trials) {
        const b = p.baselineOf[t.approach] ?? p;
        rows.push([`  local just before: ${s(b.localMs)}, with fsync ${s(b.localFsyncMs)}`, label(t.approach), s(t.program.ms), r(b.localFsyncMs / t.program.ms), r(b.localMs / t.program.ms), s(t.turnaroundMs), x(t.turnaroundMs === null ? null : t.turnaroundMs / p.floorMs), t.program.status === 'ok' ? t.state : `${t.state} (${t.program.status})`]);
      }
    }
    out.push(table(rows));
    for (const p of rec.burst.filter((q) => (q.rounds?.length ?? 1) > 1)) {
      const each = p.rounds.map((q) => (q.responseMs.kangaroo === undefined || !q.baselines.kangaroo ? '-' : r(q.baselines.kangaroo.localFsyncMs / q.responseMs.kangaroo)));
      out.push(`${p.mib} MiB, kangaroo's response vs local+fsync round by round: ${each.join(' ')}`);
    }
    out.push('');
  }
  if (rec.overlap.length > 0 && rec.overlapSpec) {
    const o = rec.overlapSpec;
    const rows = [[`overlap: ${o.outputs} x (${o.cpuMs} ms CPU, ${o.mib} MiB out)`, 'approach', 'response', 'turnaround', 'from program start', 'vs max(CPU, transfer)', 'destination']];
    for (const p of rec.overlap) {
      const whole = p.programCpuMs === undefined ? '' : `, all its CPU ${s(p.programCpuMs)}`;
      rows.push([`${p.rateMBps} MB/s (CPU ${s(p.cpuMs)}${whole}, transfer ${s(p.transferMs)})`, '', '', '', '', '', '']);
      for (const t of p.trials) {
        const fromStart = t.turnaroundMs === null ? null : t.turnaroundMs - (t.program.startedMs ?? 0);
        rows.push(['', label(t.approach), s(t.program.ms), s(t.turnaroundMs), s(fromStart), x(fromStart === null ? null : fromStart / p.floorMs), t.state]);
      }
    }
    out.push(table(rows), '');
  }
  if (rec.faults.length > 0) {
    const rows = [['fault during a burst', 'approach', 'what the program saw', 'destination', 'when (from start)']];
    for (const f of rec.faults) {
      rows.push([`${f.description} (at ${s(f.faultAtMs)}, over at ${s(f.faultEndMs)})`, '', '', '', '']);
      for (const t of f.trials) {
        const file = t.files[0]!;
        const when = t.turnaroundMs !== null ? `complete at ${s(t.turnaroundMs)}` : `${(file.bytes / 2 ** 20).toFixed(1)} of ${(file.expectedBytes / 2 ** 20).toFixed(0)} MiB at the end`;
        rows.push(['', label(t.approach), seen(t), t.state, when]);
      }
    }
    out.push(table(rows), '');
  }
  if (rec.targets.length > 0) {
    const rows = [['target (kangaroo)', 'point', 'measure', 'value', 'bound', 'verdict']];
    for (const c of rec.targets) {
      const bound = `${c.good === 'atLeast' ? '>=' : c.good === 'atMost' ? '<=' : '<'} ${c.bound.toFixed(2)}`;
      rows.push([c.target, c.point, c.what, c.value === null ? '-' : c.value.toFixed(2), c.verdict === 'info' ? '' : bound, c.verdict]);
    }
    out.push(table(rows), '');
  }
  const notes = [
    'response: the program\'s wall time, close included; speed vs local: local ms / response (1.00 = as fast as local disk); kangaroo\'s close returns once the data is fsync\'d in the first hop\'s spool, so local+fsync is its fair baseline',
    `turnaround: from the program's spawn until every file is at the destination with the right size and sha256 (the destination is looked at every ${rec.pollMs} ms); from program start: less the interpreter's start-up, which the floors leave out (targets b and c are judged on it)`,
    'link floor: bytes / measured link rate; max(CPU, transfer): the least any approach can take (CPU as the program measured it, transfer at the measured rate)',
    'faults: the four approaches run at once and share the link, so their times there are outcomes, not figures',
  ];
  out.push(...notes);
  if (rec.skipped.length > 0) out.push('', ...rec.skipped.map((t) => `not run: ${t}`));
  return out.join('\n') + '\n';
}

/** Writes wan-<stamp>.json, wan-latest.json and the overlap plot; copies the plot to docs/turnaround.svg. */
export async function writeWan(root: string, rec: WanRecord): Promise<{ json: string; svg: string | null }> {
  const { file: json, dir, stamp } = await writeResultFiles(root, 'wan', 'wan-latest.json', rec.startedAt, rec);
  if (rec.overlap.length === 0 || !rec.overlapSpec) return { json, svg: null };
  const o = rec.overlapSpec;
  const title = `Overlap: ${o.outputs} x (${o.cpuMs} ms CPU + ${o.mib} MiB output), ${rec.mode} run ${rec.startedAt.slice(0, 10)}`;
  const svg = turnaroundSvg(rec.overlap, title, Object.fromEntries(rec.approaches.map((a) => [a.key, a.label])));
  const file = path.join(dir, `wan-turnaround-${stamp}.svg`);
  await fsp.writeFile(file, svg);
  await fsp.mkdir(path.join(root, 'docs'), { recursive: true });
  await fsp.writeFile(path.join(root, 'docs', 'turnaround.svg'), svg);
  return { json, svg: file };
}
