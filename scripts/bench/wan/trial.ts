import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fileSha256 } from '../data.js';
import { Resources } from '../resources.js';
import { MiB, now } from '../stats.js';
import { Approach } from './approach.js';
import { run, sleep, start } from './exec.js';
import { burstTag, expectedSha256, overlapName, overlapTag } from './expected.js';
import { cpuSnapshot, ProcessCpu, topCpu } from './process-cpu.js';

/**
 * One run of the program against one approach: the program's own view (response
 * time, exit status, error message, or a hang) and the destination's (when every
 * file was there with the right size and sha256, or what was there at the end).
 */

export type Workload = { kind: 'burst'; mib: number } | { kind: 'overlap'; outputs: number; mib: number; cpuMs: number };

export interface ProgramOutcome {
  /** ok: exit 0; error: non-zero exit (message is what it printed); hang: still running at its deadline. */
  status: 'ok' | 'error' | 'hang';
  exitCode: number | null;
  message: string;
  /** Response time: start to exit (close included), or to the deadline for a hang. */
  ms: number;
  /** CPU time the program spent in its compute loops (overlap). */
  cpuMs: number;
  /**
   * Per file, as the program timed its calls (ms from its own start, a few ms after
   * the trial's): open began / returned, last write returned, fsync and close returned.
   */
  fileTimes: { name: string; t: Record<string, number> }[];
  /** When the program's own clock started, ms after the trial's start (interpreter start-up); null if it did not say. */
  startedMs: number | null;
  /** All the CPU time the program used (its compute, and making and hashing its output); 0 if it did not say. */
  processCpuMs: number;
  /**
   * Share of all cores busy (not idle or waiting on I/O) from the program's spawn to its
   * exit, everything on the machine counted: how much the program, the approach's own
   * processes and anything else competed for the CPU.
   */
  machineBusy: number | null;
  /** The processes that used the most CPU from the program's spawn to its exit (the program itself excepted: it reports its own). */
  topProcesses: ProcessCpu[];
}

export type FileState = 'complete' | 'truncated' | 'wrong content' | 'missing';

export interface TrialResult {
  approach: string;
  workload: Workload;
  program: ProgramOutcome;
  /** Staging's copy after the program: exit status and message. */
  copy: { code: number | null; message: string; ms: number } | null;
  /** Start of the program until every file was complete at the destination; null if that never happened. */
  turnaroundMs: number | null;
  /** The worst file's state at the end, and every file's. */
  state: FileState;
  files: { name: string; bytes: number; expectedBytes: number; state: FileState; completeMs: number | null }[];
  /** Milliseconds from the start at which the destination held its first byte (for fault timing). */
  firstByteMs: number | null;
}

export interface TrialHandle {
  /** Bytes at the destination so far. */
  destBytes(): number;
  done: Promise<TrialResult>;
}

const here = path.dirname(fileURLToPath(import.meta.url));
// the program is not compiled: it lives next to the sources (dist-bench/scripts/bench/wan -> scripts/bench/wan)
export const WRITER = path.resolve(here, '../../../../scripts/bench/wan/writer.py');

/**
 * How often the destination is looked at. Turnaround is the start of the first
 * look that finds every file complete, so it is late by up to this much (half on
 * average), for every approach alike. A look is a stat per file; a file is hashed
 * only once it has its full size, and again only after it changed.
 */
export const POLL_MS = 20;

let runs = 0;

interface Expected {
  name: string;
  bytes: number;
  sha256: string;
}

function expectedFiles(w: Workload): Expected[] {
  if (w.kind === 'burst') return [{ name: 'burst.bin', bytes: w.mib * MiB, sha256: expectedSha256(burstTag, w.mib) }];
  return Array.from({ length: w.outputs }, (_, k) => ({ name: overlapName(k), bytes: w.mib * MiB, sha256: expectedSha256(overlapTag(k), w.mib) }));
}

/** For progress lines: the machine's busy share while the program ran. */
export function busy(t: TrialResult): string {
  return t.program.machineBusy === null ? '' : ` (CPU ${Math.round(t.program.machineBusy * 100)}%)`;
}

/** Starts the program; the destination is watched until `deliveryDeadlineMs` after the start. */
export function startTrial(res: Resources, a: Approach, w: Workload, deadlines: { programMs: number; deliveryMs: number }): TrialHandle {
  const runDir = `run-${process.pid}-${++runs}`;
  const expected = expectedFiles(w);
  const seen = new Map<string, { size: number; mtimeMs: number; ok: boolean }>();
  /** When each file was first seen complete (ms from the start): where the time of a run went. */
  const completeAt = new Map<string, number>();
  let destBytes = 0;
  let firstByteMs: number | null = null;
  let t0 = now();
  let wallT0 = Date.now();

  /** One look at the destination: true when every file is complete. */
  const look = async (): Promise<boolean> => {
    const at = now() - t0;
    let total = 0;
    let all = true;
    for (const e of expected) {
      const file = path.join(a.destDir, runDir, e.name);
      let st: fs.Stats | undefined;
      try {
        st = await fs.promises.stat(file);
      } catch {
        all = false;
        continue;
      }
      total += st.size;
      const prev = seen.get(e.name);
      if (prev && prev.size === st.size && prev.mtimeMs === st.mtimeMs) {
        if (!prev.ok) all = false;
        continue;
      }
      // hash only a file of the right size, and again only once it has changed
      const ok = st.size === e.bytes && (await fileSha256(file)) === e.sha256;
      seen.set(e.name, { size: st.size, mtimeMs: st.mtimeMs, ok });
      if (ok && !completeAt.has(e.name)) completeAt.set(e.name, at);
      if (!ok) all = false;
    }
    destBytes = total;
    if (total > 0 && firstByteMs === null) firstByteMs = now() - t0;
    return all;
  };

  const done = (async (): Promise<TrialResult> => {
    const mk = await run('mkdir', ['-p', path.join(a.writeDir, runDir)], 60_000);
    if (mk.code !== 0) throw new Error(`${a.label}: mkdir: ${mk.stderr.trim()}`);
    const args =
      w.kind === 'burst'
        ? ['burst', path.join(a.writeDir, runDir, 'burst.bin'), String(w.mib)]
        : ['overlap', path.join(a.writeDir, runDir), String(w.outputs), String(w.mib), String(w.cpuMs)];
    const cpuAtStart = cpuTimes();
    const processesAtStart = cpuSnapshot();
    t0 = now();
    wallT0 = Date.now();
    const p = start(res, `program (${a.key})`, 'python3', [WRITER, ...args]);
    let turnaroundMs: number | null = null;
    let programEnd: number | null = null;
    const exit = new Promise<void>((r) => p.child.once('exit', () => r()));
    // watch the destination while the program runs: turnaround may come first (it never does, but a hang might)
    // once the program or the copy has failed, nothing is left to move the data (none
    // of them retries): stop watching when the destination has not changed for 3 s
    let gaveUp = false;
    let lastBytes = -1;
    let stableSince = now();
    const watch = (async () => {
      while (now() - t0 < deadlines.deliveryMs) {
        const at = now();
        if (await look()) {
          turnaroundMs = at - t0;
          return;
        }
        if (destBytes !== lastBytes) {
          lastBytes = destBytes;
          stableSince = now();
        } else if (gaveUp && now() - stableSince > 3000) return;
        await sleep(POLL_MS);
      }
    })();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exit, new Promise<void>((r) => (timer = setTimeout(r, deadlines.programMs)))]);
    clearTimeout(timer);
    programEnd = now();
    const program = outcome(p.child.exitCode, p.exited(), p.output(), programEnd - t0, wallT0, busyShare(cpuAtStart, cpuTimes()), topCpu(processesAtStart, cpuSnapshot()));
    if (program.status === 'hang') p.child.kill('SIGKILL');
    let copy: TrialResult['copy'] = null;
    if (a.afterProgram && program.status === 'ok') {
      const r = await a.afterProgram(runDir);
      copy = { code: r.code, message: r.code === 0 ? '' : (r.stderr.trim() || `killed (${r.signal})`).split('\n').slice(-2).join(' / '), ms: r.ms };
    }
    gaveUp = program.status !== 'ok' || (copy !== null && copy.code !== 0);
    await watch;
    await look();
    const files = expected.map((e) => {
      const s = seen.get(e.name);
      const state: FileState = !s ? 'missing' : s.ok ? 'complete' : s.size < e.bytes ? 'truncated' : 'wrong content';
      return { name: e.name, bytes: s?.size ?? 0, expectedBytes: e.bytes, state, completeMs: state === 'complete' ? (completeAt.get(e.name) ?? null) : null };
    });
    const order: FileState[] = ['missing', 'truncated', 'wrong content', 'complete'];
    const state = order.find((s) => files.some((f) => f.state === s)) ?? 'complete';
    return { approach: a.key, workload: w, program, copy, turnaroundMs, state, files, firstByteMs };
  })();
  return { destBytes: () => destBytes, done };
}

/** The machine's CPU counters (/proc/stat's first line, in ticks): busy and all; undefined where there is no /proc. */
function cpuTimes(): { busy: number; all: number } | undefined {
  try {
    const ticks = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const all = ticks.reduce((a, b) => a + b, 0);
    // idle and iowait are the 4th and 5th
    return { busy: all - (ticks[3] ?? 0) - (ticks[4] ?? 0), all };
  } catch {
    return undefined;
  }
}

function busyShare(a: ReturnType<typeof cpuTimes>, b: ReturnType<typeof cpuTimes>): number | null {
  if (!a || !b || b.all === a.all) return null;
  return (b.busy - a.busy) / (b.all - a.all);
}

function outcome(code: number | null, exited: boolean, output: string, ms: number, wallT0: number, machineBusy: number | null, topProcesses: ProcessCpu[]): ProgramOutcome {
  const line = output.trim().split('\n').reverse().find((l) => l.startsWith('{'));
  let parsed: { error?: string; cpuMs?: number; processCpuMs?: number; epochMs?: number; files?: { name: string; t?: Record<string, number> }[] } = {};
  try {
    if (line) parsed = JSON.parse(line) as typeof parsed;
  } catch {
    // not the program's report: keep the raw text below
  }
  const fileTimes = (parsed.files ?? []).map((f) => ({ name: f.name, t: f.t ?? {} }));
  const startedMs = parsed.epochMs !== undefined ? Math.round((parsed.epochMs - wallT0) * 10) / 10 : null;
  const base = { ms, cpuMs: parsed.cpuMs ?? 0, processCpuMs: parsed.processCpuMs ?? 0, fileTimes, startedMs, machineBusy, topProcesses };
  if (!exited) return { status: 'hang', exitCode: null, message: 'still running at the deadline', ...base };
  if (code === 0) return { status: 'ok', exitCode: 0, message: '', ...base };
  const message = parsed.error ?? (output.trim().split('\n').slice(-1)[0] || `exit ${code}`);
  return { status: 'error', exitCode: code, message, ...base };
}
