import { ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { Resources } from '../resources.js';
import { now } from '../stats.js';

/**
 * Running the peers' commands: short commands awaited with a deadline, long-lived
 * ones tracked by the measurement's Resources (killed by pid when it ends).
 */

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a command to its end (or kills it at the deadline); never throws for a non-zero exit. */
export function run(cmd: string, args: string[], timeoutMs = 60_000, env?: NodeJS.ProcessEnv): Promise<RunResult> {
  const t0 = now();
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024, env: env ?? process.env }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: number | string; signal?: NodeJS.Signals }) | null;
      resolve({
        code: e ? (typeof e.code === 'number' ? e.code : null) : 0,
        signal: e?.signal ?? null,
        stdout: String(stdout),
        stderr: String(stderr) || (e && typeof e.code === 'string' ? e.message : ''),
        ms: now() - t0,
      });
    });
  });
}

/**
 * Writes out the local disk's dirty pages before a measurement. Staging and rclone
 * leave tens of MiB in the page cache that the kernel writes back some 30 s later,
 * in the middle of whichever run comes next; a program that fsyncs (kangaroo's
 * close, the local write + fsync baseline) then queues behind another approach's
 * writes. Only the file system holding the temporary directories (spools, caches,
 * destinations) is synced: a plain sync would also reach the FUSE mounts, and one
 * of them may be hanging on purpose (the link-cut fault).
 */
export async function settleDisk(): Promise<void> {
  await run('sync', ['-f', os.tmpdir()], 300_000);
}

/** Runs a command that must succeed: throws with its stderr otherwise. */
export async function must(cmd: string, args: string[], timeoutMs = 60_000): Promise<string> {
  const r = await run(cmd, args, timeoutMs);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.signal ? `killed (${r.signal})` : `exit ${r.code}`}: ${r.stderr.trim()}`);
  return r.stdout;
}

const MAX_LOG = 64 * 1024;

export interface Started {
  child: ChildProcess;
  output: () => string;
  exited: () => boolean;
}

/** Starts a long-lived process, tracked by `res` (killed by pid when the measurement ends). */
export function start(res: Resources, name: string, cmd: string, args: string[], env?: NodeJS.ProcessEnv): Started {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
  let output = '';
  const keep = (d: Buffer) => {
    if (output.length < MAX_LOG) output += d.toString();
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  child.on('error', (err) => keep(Buffer.from(`spawn failed: ${err.message}\n`)));
  res.track({ name, child, output: () => output });
  // what it forked may outlive it and hold its output pipe open (sshfs's ssh does,
  // keeping this process alive): kill those too, by pid, when the measurement ends
  const orphans = () => {
    if (child.pid !== undefined) for (const p of descendants(child.pid)) killQuietly(p);
  };
  res.defer({ name: `children of ${name}`, run: async () => orphans(), runSync: orphans });
  return { child, output: () => output, exited: () => child.exitCode !== null || child.signalCode !== null };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `ready` until it holds; throws after `timeoutMs`, or at once when `failed` says the process is gone. */
export async function waitUntil(what: string, ready: () => boolean | Promise<boolean>, timeoutMs: number, failed?: () => string | undefined): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await ready()) return;
    const why = failed?.();
    if (why) throw new Error(`${what}: ${why}`);
    if (Date.now() > deadline) throw new Error(`${what}: not within ${Math.round(timeoutMs / 1000)} s`);
    await sleep(50);
  }
}

export function isMounted(mountpoint: string): boolean {
  return fs.readFileSync('/proc/self/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === mountpoint);
}

/** Every descendant of a process (children first found, then theirs), from /proc. */
export function descendants(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      // the command name may hold spaces and parentheses: the fields follow the last ')'
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parent.set(Number(e), Number(fields[1]));
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift()!;
    for (const [c, pp] of parent) if (pp === p) {
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** SIGKILLs a process this harness started together with everything it forked. */
export function killTree(pid: number): void {
  for (const p of [pid, ...descendants(pid)]) killQuietly(p);
}

/** Lazily detaches a FUSE mount (fusermount, or fusermount3 after the sshfs install). */
export async function detach(mountpoint: string): Promise<void> {
  if (isMounted(mountpoint)) await run('fusermount', ['-u', '-z', mountpoint], 10_000);
}

/**
 * Unmounts `mountpoint` when the measurement ends, before its processes are
 * killed (a FUSE daemon killed first leaves a dead mount point behind).
 */
export function deferUnmount(res: Resources, name: string, mountpoint: string): void {
  res.defer({
    name: `unmount ${name}`,
    run: () => detach(mountpoint),
    runSync: () => {
      if (isMounted(mountpoint)) execFileSync('fusermount', ['-u', '-z', mountpoint], { stdio: 'ignore' });
    },
  });
}
