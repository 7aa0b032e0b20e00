import { ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Argv } from 'yargs';
import { KangarooError } from '../../errors.js';
import { controlSocketPath, requestCommit, requestUnmount } from '../../fs/control.js';
import { parseGns } from '../../gns/format.js';
import { defaultStateDir, relayAddress, STDIO } from '../defaults.js';
import { Progress } from '../progress.js';

/**
 * `kangaroo run -- COMMAND ARGS...`: the Kangaroo paper's adaptation layer for a
 * whole program. The command runs with the preload shim (native/), which rewrites
 * literal /kangaroo/HOST/PATH names (and the name service's names) onto a mount;
 * when it exits, everything it wrote is committed before its own exit status is
 * returned. Without --mount, a mount is started for the command in a private
 * temporary directory, served by a child process (never by the process that
 * waits), and unmounted with a commit afterwards.
 */

const here = path.dirname(fileURLToPath(import.meta.url));
/** Where scripts/build-native.cjs (make -C native) puts the shim. */
export const PRELOAD_SHIM = path.resolve(here, '../../../native/build/libkangaroo-preload.so');
const CLI = path.resolve(here, '../main.js');

/** Statuses of `kangaroo run` itself, as env(1) and timeout(1) use them. */
const RUN_FAILED = 125;
const CANNOT_EXECUTE = 126;
const COMMAND_NOT_FOUND = 127;

/** Raised for a failure of `kangaroo run` itself (not of the command): exits 125. */
class RunFailure extends Error {}

export function register(y: Argv): Argv {
  return y.command(
    'run',
    'Run a command in which literal /kangaroo/HOST[:PORT]/PATH names work (a preload shim maps them onto a mount); commits its output when it exits and returns its exit status',
    (c) =>
      c
        .usage(
          '$0 run [--mount MOUNT] [--relay ADDR] [--gns FILE] [--push] -- COMMAND [ARGS...]\n\n' +
            'Runs COMMAND with a preload shim that maps literal /kangaroo/HOST[:PORT]/PATH names (and, with --gns, the name\n' +
            "service's names) onto a kangaroo mount; when it exits, commits its output and returns its exit status.",
        )
        .option('mount', { type: 'string', describe: 'use this running kangaroo mount, and its relay (default: start one for the command in a private temporary directory)' })
        .option('gns', { type: 'string', describe: 'name service file: its names work literally too (a mount started here also resolves them through it)' })
        .option('push', { type: 'boolean', default: false, describe: 'after the command, also wait until its output reached its destinations' })
        .option('verbose', { type: 'boolean', default: false, describe: 'say what the mount did (its log, the commit\'s outcome)' })
        .example('$0 run -- cp results.dat /kangaroo/archive.example/run7/', 'an unmodified program writes through the relay chain')
        .example('$0 run --mount /mnt/k -- ./job.sh', 'use a mount that is already running'),
    async (argv) => {
      const command = commandLine(argv._);
      try {
        if (command.length === 0) throw new RunFailure('name the command to run after --: kangaroo run [options] -- COMMAND [ARGS...]');
        if (!fs.existsSync(PRELOAD_SHIM)) {
          throw new RunFailure(
            `the preload shim is not built (${PRELOAD_SHIM} is missing). It needs a C compiler and make: ` +
              'install them (scripts/setup.sh does), then run: node scripts/build-native.cjs',
          );
        }
        if (/[\s:]/.test(PRELOAD_SHIM)) throw new RunFailure(`LD_PRELOAD cannot name ${PRELOAD_SHIM}: the path holds a space or a colon`);
        process.exitCode = await runWithShim(command, {
          mount: argv.mount,
          gns: argv.gns,
          push: argv.push,
          verbose: argv.verbose,
          relay: relayAddress(argv.relay as string | undefined),
          secretFile: argv['secret-file'] as string | undefined,
        });
      } catch (err) {
        const message = err instanceof RunFailure ? err.message : `${KangarooError.from(err).code}: ${KangarooError.from(err).message}`;
        process.stderr.write(`kangaroo run: ${message}\n`);
        process.exitCode = RUN_FAILED;
      }
    },
  );
}

/** The command after `--`, taken from the raw arguments so that nothing in it is parsed or coerced. */
function commandLine(parsed: (string | number)[]): string[] {
  const raw = process.argv.slice(2);
  const dashes = raw.indexOf('--');
  if (dashes >= 0) return raw.slice(dashes + 1);
  return parsed.slice(1).map((a) => (a === STDIO ? '-' : String(a)));
}

interface RunOptions {
  mount?: string;
  gns?: string;
  push: boolean;
  verbose: boolean;
  relay: string;
  secretFile?: string;
}

async function runWithShim(command: string[], o: RunOptions): Promise<number> {
  const names = o.gns ? await gnsNames(o.gns) : [];
  if (o.mount) {
    const mountpoint = path.resolve(o.mount);
    const socket = controlSocketPath(defaultStateDir(), mountpoint);
    if (!fs.existsSync(socket)) throw new RunFailure(`${mountpoint} is not served by a running kangaroo mount (start one with: kangaroo mount ${mountpoint})`);
    const status = await runCommand(command, mountpoint, names);
    const r = await withProgress(o.push, (p) => requestCommit(socket, o.push, p)).catch((err: unknown) => {
      const e = KangarooError.from(err);
      return { ok: false, message: `could not ask the mount process to commit (${e.code}: ${e.message})` };
    });
    return outcome(status, r, o.verbose);
  }
  const mount = await PrivateMount.start(o);
  let status: number;
  try {
    status = await runCommand(command, mount.mountpoint, names);
  } catch (err) {
    await mount.finish(false);
    throw err;
  }
  const r = await mount.finish(o.push);
  if (o.verbose || !r.ok) process.stderr.write(mount.log());
  return outcome(status, r, o.verbose);
}

/**
 * The command's status, unless its output could not be committed: then the
 * command's success would be a lie, and `kangaroo run` fails (125) instead.
 */
function outcome(status: number, r: { ok: boolean; message: string }, verbose: boolean): number {
  // a background relay left delivering is a process the user should know about
  if (verbose || !r.ok || r.message.includes('background relay')) {
    process.stderr.write(`kangaroo run: ${r.ok ? '' : 'commit incomplete: '}${r.message}\n`);
  }
  if (!r.ok && status === 0) return RUN_FAILED;
  return status;
}

/** A progress bar (on a terminal) while --push waits for delivery; a plain commit is quick and stays silent. */
async function withProgress<T>(push: boolean, fn: (progress: (pendingBytes: number) => void) => Promise<T>): Promise<T> {
  if (!push) return fn(() => undefined);
  const progress = new Progress('delivering', undefined);
  try {
    return await fn((n) => progress.update(n));
  } finally {
    progress.finish();
  }
}

/** The names of a name service file, as the shim lists them (a directory entry ends in "/"). */
async function gnsNames(file: string): Promise<string[]> {
  const parsed = parseGns(await fsp.readFile(file, 'utf8'));
  for (const p of parsed.problems) process.stderr.write(`kangaroo run: ${file}:${p.line}: ${p.message}\n`);
  const names: string[] = [];
  for (const e of parsed.entries) {
    if (e.name.includes(':')) {
      process.stderr.write(`kangaroo run: ${file}:${e.line}: ${e.name} holds a colon, which the shim's name list cannot carry; it will not work literally\n`);
      continue;
    }
    names.push(e.prefix ? `${e.name}/` : e.name);
  }
  return names;
}

/** The command's environment: the shim first in LD_PRELOAD (ahead of any other preload, so they see mount names). */
function shimEnv(mountpoint: string, names: string[]): NodeJS.ProcessEnv {
  const others = (process.env.LD_PRELOAD ?? '').split(/[\s:]+/).filter((p) => p && p !== PRELOAD_SHIM);
  const env: NodeJS.ProcessEnv = { ...process.env, LD_PRELOAD: [PRELOAD_SHIM, ...others].join(':'), KANGAROO_MOUNT: mountpoint };
  if (names.length > 0) env.KANGAROO_NAMES = names.join(':');
  else delete env.KANGAROO_NAMES;
  return env;
}

/**
 * Runs the command to its end; resolves with its exit status (128 + signal when a
 * signal ended it, 127 when it does not exist, 126 when it cannot be run).
 * SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 sent to `kangaroo run` are passed on; SIGINT
 * and SIGQUIT from a terminal reach the command directly (same process group), so
 * here they are only kept from ending `kangaroo run` before the commit.
 */
function runCommand(command: string[], mountpoint: string, names: string[]): Promise<number> {
  return new Promise((resolve) => {
    const [file, ...args] = command as [string, ...string[]];
    const child: ChildProcess = spawn(file, args, { stdio: 'inherit', env: shimEnv(mountpoint, names) });
    const forward = (sig: NodeJS.Signals) => () => void child.kill(sig);
    const handlers = new Map<NodeJS.Signals, () => void>();
    for (const sig of ['SIGTERM', 'SIGHUP', 'SIGUSR1', 'SIGUSR2'] as const) handlers.set(sig, forward(sig));
    for (const sig of ['SIGINT', 'SIGQUIT'] as const) handlers.set(sig, () => undefined);
    for (const [sig, h] of handlers) process.on(sig, h);
    const done = (status: number) => {
      for (const [sig, h] of handlers) process.off(sig, h);
      resolve(status);
    };
    child.once('error', (err: NodeJS.ErrnoException) => {
      const notFound = err.code === 'ENOENT';
      process.stderr.write(`kangaroo run: ${file}: ${notFound ? 'command not found' : err.code === 'EACCES' ? 'permission denied (cannot execute)' : err.message}\n`);
      done(notFound ? COMMAND_NOT_FOUND : CANNOT_EXECUTE);
    });
    child.once('exit', (code, signal) => done(signal ? 128 + (os.constants.signals[signal] ?? 0) : (code ?? RUN_FAILED)));
  });
}

/**
 * A mount for one command, in a private temporary directory, served by a
 * `kangaroo mount` child process. The child has its own process group (a
 * terminal's Ctrl-C is for the command, not for the mount) and a lifeline on its
 * stdin: should this process die, the mount commits and unmounts by itself.
 */
class PrivateMount {
  private constructor(
    readonly dir: string,
    readonly mountpoint: string,
    private readonly child: ChildProcess,
    private readonly exited: Promise<void>,
  ) {}

  static async start(o: RunOptions): Promise<PrivateMount> {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'kangaroo-run-'));
    const mountpoint = path.join(dir, 'mnt');
    const ready = path.join(dir, 'ready');
    const args = [CLI, 'mount', mountpoint, '--relay', o.relay, '--backing', path.join(dir, 'backing'), '--ready-file', ready, '--stdin-lifeline'];
    if (o.gns) args.push('--gns', path.resolve(o.gns));
    if (o.secretFile) args.push('--secret-file', path.resolve(o.secretFile));
    const env = { ...process.env };
    delete env.KANGAROO_MOUNT;
    const out = fs.openSync(path.join(dir, 'mount.log'), 'a');
    const child = spawn(process.execPath, args, { detached: true, env, stdio: ['pipe', out, out] });
    fs.closeSync(out);
    child.stdin!.on('error', () => undefined);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const m = new PrivateMount(dir, mountpoint, child, exited);
    const deadline = Date.now() + 60_000;
    while (!fs.existsSync(ready)) {
      if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
        const log = m.log();
        child.kill('SIGKILL');
        await m.cleanup();
        throw new RunFailure(`the mount for the command did not start:\n${log}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    return m;
  }

  /** What the mount process wrote (kept when its directory is removed). */
  log(): string {
    try {
      this.lastLog = fs.readFileSync(path.join(this.dir, 'mount.log'), 'utf8');
    } catch {
      /* removed: the copy taken before */
    }
    return this.lastLog;
  }

  private lastLog = '';

  /** Commits (with push: delivers) everything, unmounts, and removes the directory. */
  async finish(push: boolean): Promise<{ ok: boolean; message: string }> {
    const socket = controlSocketPath(defaultStateDir(), this.mountpoint);
    let r: { ok: boolean; message: string };
    // Ctrl-C while --push waits (a destination that is down may take days): stop waiting; the
    // unmount finishes without push and says who delivers the rest. A second Ctrl-C ends run.
    const stopWaiting = () => {
      process.stderr.write('kangaroo run: no longer waiting for delivery (interrupted); the output is committed\n');
      void requestUnmount(socket, false, () => undefined).catch(() => undefined);
    };
    if (push) process.once('SIGINT', stopWaiting);
    try {
      r = await withProgress(push, (p) => requestUnmount(socket, push, p));
    } catch (err) {
      const e = KangarooError.from(err);
      r = { ok: false, message: `could not ask the mount to commit (${e.code}: ${e.message})` };
    } finally {
      process.off('SIGINT', stopWaiting);
    }
    const gone = await Promise.race([this.exited.then(() => true), new Promise<boolean>((res) => setTimeout(() => res(false), 30_000).unref())]);
    if (!gone) this.child.kill('SIGKILL');
    this.child.stdin?.destroy();
    this.log();
    await this.cleanup();
    return r;
  }

  private async cleanup(): Promise<void> {
    if (isMounted(this.mountpoint)) {
      await new Promise<void>((resolve) => spawn('fusermount', ['-u', '-z', this.mountpoint], { stdio: 'ignore' }).once('close', () => resolve()).once('error', () => resolve()));
    }
    // never a recursive removal through a live mount: only remove the mount point once it is detached
    if (isMounted(this.mountpoint)) {
      process.stderr.write(`kangaroo run: ${this.mountpoint} is still mounted; detach it with: fusermount -u -z ${this.mountpoint}\n`);
      return;
    }
    await fsp.rmdir(this.mountpoint).catch(() => undefined);
    await fsp.rm(path.join(this.dir, 'backing'), { recursive: true, force: true }).catch(() => undefined);
    for (const f of ['ready', 'mount.log']) await fsp.rm(path.join(this.dir, f), { force: true }).catch(() => undefined);
    await fsp.rmdir(this.dir).catch(() => undefined);
  }
}

/** Whether something is mounted there; when the mount table cannot be read, assume so (nothing is removed then). */
function isMounted(mountpoint: string): boolean {
  let table: string;
  try {
    table = fs.readFileSync('/proc/self/mounts', 'utf8');
  } catch {
    return true;
  }
  const escaped = mountpoint.replace(/[\\ \t\n]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
  return table.split('\n').some((l) => l.split(' ')[1] === escaped);
}
