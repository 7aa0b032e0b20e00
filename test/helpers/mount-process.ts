import { ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { expect, onTestFinished } from 'vitest';
import { CLI } from './relay-process.js';

/**
 * A real `kangaroo mount` in a child process, for tests. The test process never
 * touches the mount with synchronous fs calls (it does not serve it, but a hung
 * mount would still hang a synchronous call); programs run against it as child
 * processes. Cleanup unmounts (commit), then detaches lazily and kills the pid
 * if anything is left, pass or fail.
 */

export interface MountProcess {
  mountpoint: string;
  stateDir: string;
  child: ChildProcess;
  log: () => string;
  /** `kangaroo umount [--push]`; resolves with its exit code and output. */
  umount(push?: boolean): Promise<{ code: number; stderr: string }>;
  exited: Promise<number | null>;
}

export interface MountSpec {
  relay: string;
  gns?: string;
  backing?: string;
  extra?: string[];
  env?: NodeJS.ProcessEnv;
}

export function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string | Buffer; timeoutMs?: number } = {}) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const child = execFile(
      cmd,
      args,
      { cwd: opts.cwd, env: { ...process.env, ...opts.env }, maxBuffer: 256 * 1024 * 1024, timeout: opts.timeoutMs ?? 120_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    else child.stdin!.end();
  });
}

/** Runs a shell command line (bash -c), as a user's job script would. */
export function sh(script: string, opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}) {
  return run('bash', ['-c', script], opts);
}

export function isMounted(mountpoint: string): boolean {
  return fs.readFileSync('/proc/self/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === mountpoint);
}

export async function startMount(dir: string, name: string, spec: MountSpec): Promise<MountProcess> {
  const mountpoint = path.join(dir, name);
  const stateDir = path.join(dir, `${name}-state`);
  await fsp.mkdir(mountpoint, { recursive: true });
  const ready = path.join(dir, `${name}-ready`);
  const args = [CLI, 'mount', mountpoint, '--relay', spec.relay, '--ready-file', ready, '--log-level', 'debug'];
  if (spec.gns) args.push('--gns', spec.gns);
  if (spec.backing) args.push('--backing', spec.backing);
  args.push(...(spec.extra ?? []));
  const env = { ...process.env, XDG_STATE_HOME: stateDir, ...spec.env };
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const m: MountProcess = {
    mountpoint,
    stateDir,
    child,
    log: () => output,
    exited,
    async umount(push = false) {
      const r = await run(process.execPath, [CLI, 'umount', mountpoint, ...(push ? ['--push'] : [])], { env, timeoutMs: 180_000 });
      return { code: r.code, stderr: r.stderr };
    },
  };
  let connection: string | undefined;
  onTestFinished(async () => {
    const gone = (ms: number) => Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
    if (child.exitCode === null && child.signalCode === null) {
      // a mount that stopped answering would hold umount for its whole timeout: give it 30 s
      const umount = m.umount().catch(() => undefined);
      await Promise.race([umount, new Promise((r) => setTimeout(r, 30_000))]);
      if (!(await gone(10_000))) child.kill('SIGKILL');
    }
    if (isMounted(mountpoint)) await run('fusermount', ['-u', '-z', mountpoint]);
    // threads of a mount blocked in requests to itself keep even a killed process (and the
    // programs waiting on it) in the kernel until the connection is aborted
    if (!(await gone(5_000)) && connection) abortConnection(connection);
  });
  const deadline = Date.now() + 20_000;
  while (!fs.existsSync(ready)) {
    if (child.exitCode !== null) throw new Error(`mount exited with ${child.exitCode}:\n${output}`);
    if (Date.now() > deadline) throw new Error(`mount did not become ready:\n${output}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  connection = fuseConnection(mountpoint);
  return m;
}

/** The FUSE connection of a mount (/sys/fs/fuse/connections/N): the minor device number /proc's mountinfo gives it. */
function fuseConnection(mountpoint: string): string | undefined {
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f[4] === mountpoint && f[2]?.startsWith('0:')) return f[2].slice(2);
  }
  return undefined;
}

/** Ends every request pending on a FUSE connection, as `echo 1 > .../abort` does. */
function abortConnection(connection: string): void {
  const dir = '/sys/fs/fuse/connections';
  try {
    if (!fs.existsSync(path.join(dir, connection))) execFileSync('mount', ['-t', 'fusectl', 'none', dir], { stdio: 'ignore' });
    fs.writeFileSync(path.join(dir, connection, 'abort'), '1');
  } catch {
    // gone already, or no fusectl here: nothing more a test can do
  }
}

/** `kangaroo umount [--push]`, then waits for the mount process and checks nothing is left mounted. */
export async function unmountAndCheck(mount: MountProcess, push: boolean): Promise<{ code: number; stderr: string }> {
  const u = await mount.umount(push);
  await Promise.race([mount.exited, new Promise((r) => setTimeout(r, 20_000))]);
  expect(isMounted(mount.mountpoint), `${mount.mountpoint} still mounted`).toBe(false);
  return u;
}
