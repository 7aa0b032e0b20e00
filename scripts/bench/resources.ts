import { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/**
 * What one measurement starts (child processes, temporary directories) and must
 * leave behind clean: children are killed by their pid and directories removed
 * when the measurement ends, fails, times out, or the benchmark is interrupted.
 */

export interface Tracked {
  name: string;
  child: ChildProcess;
  /** Output so far (capped), shown when a measurement fails. */
  output: () => string;
}

const live = new Set<Resources>();
let interruptedBy: NodeJS.Signals | undefined;

/** The signal that stopped the benchmark, if one did (later failures are its consequence). */
export function interrupted(): NodeJS.Signals | undefined {
  return interruptedBy;
}

/**
 * Something to undo before the children are killed (a FUSE mount: killing its
 * process would leave a dead mount point). `run` is tried first; `runSync` is the
 * last resort in an exit handler.
 */
export interface Undo {
  name: string;
  run: () => Promise<void>;
  runSync: () => void;
}

export class Resources {
  private children: Tracked[] = [];
  private dirs: string[] = [];
  private undos: Undo[] = [];
  private released = false;

  constructor(readonly label: string) {
    live.add(this);
  }

  async tempDir(): Promise<string> {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), `kangaroo-bench-${this.label}-`));
    this.dirs.push(dir);
    return dir;
  }

  track(t: Tracked): void {
    if (this.released) {
      killByPid(t.child);
      throw new Error(`${this.label}: already released`);
    }
    this.children.push(t);
  }

  /** Registers an undo, run (newest first) before the children are killed. */
  defer(u: Undo): void {
    if (this.released) {
      u.runSync();
      throw new Error(`${this.label}: already released`);
    }
    this.undos.push(u);
  }

  /** Logs of the children, for an error report. */
  logs(): string {
    return this.children
      .map((c) => ({ name: c.name, pid: c.child.pid, text: c.output().trim() }))
      .filter((c) => c.text)
      .map((c) => `--- ${c.name} (pid ${c.pid}) ---\n${c.text}`)
      .join('\n');
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    live.delete(this);
    for (const u of this.undos.reverse()) {
      await u.run().catch((err: unknown) => process.stderr.write(`\n${this.label}: undo ${u.name}: ${err instanceof Error ? err.message : String(err)}\n`));
    }
    await Promise.all(this.children.map((c) => killAndWait(c.child)));
    await Promise.all(this.dirs.map((d) => fsp.rm(d, { recursive: true, force: true })));
  }

  /** Last resort in an exit handler: no awaiting possible. */
  releaseSync(): void {
    if (this.released) return;
    this.released = true;
    live.delete(this);
    for (const u of this.undos.reverse()) {
      try {
        u.runSync();
      } catch {
        // best effort on the way out
      }
    }
    for (const c of this.children) killByPid(c.child);
    for (const d of this.dirs) fs.rmSync(d, { recursive: true, force: true });
  }
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function killByPid(child: ChildProcess): void {
  if (child.pid === undefined || exited(child)) return;
  try {
    process.kill(child.pid, 'SIGKILL');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

async function killAndWait(child: ChildProcess): Promise<void> {
  if (child.pid === undefined || exited(child)) return;
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  killByPid(child);
  await gone;
}

/**
 * Runs a measurement with its own resources, released afterwards whatever happens.
 * A measurement that takes longer than `timeoutMs` is failed (its children are
 * killed, which also unblocks any client waiting on them).
 */
export async function withResources<T>(label: string, timeoutMs: number, body: (res: Resources) => Promise<T>): Promise<T> {
  const res = new Resources(label);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${label}: no result within ${Math.round(timeoutMs / 1000)} s`)), timeoutMs);
  });
  const work = body(res);
  work.catch(() => undefined); // once timed out, its later failure is expected
  try {
    return await Promise.race([work, timeout]);
  } catch (err) {
    const logs = res.logs();
    const e = err instanceof Error ? err : new Error(String(err));
    if (logs) e.message += `\n${logs}`;
    throw e;
  } finally {
    clearTimeout(timer);
    await res.release();
  }
}

/** Releases everything on Ctrl-C, kill and exit, so no relay outlives the benchmark. */
export function installExitHandlers(): void {
  const onSignal = (sig: NodeJS.Signals) => {
    interruptedBy = sig;
    process.stderr.write(`\n${sig}: stopping relays and removing temporary directories\n`);
    void Promise.all([...live].map((r) => r.release())).finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('exit', () => {
    for (const r of [...live]) r.releaseSync();
  });
}
