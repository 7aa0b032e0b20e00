import { ChildProcess, execFile, spawn } from 'node:child_process';
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
  onTestFinished(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      await m.umount().catch(() => undefined);
      const done = await Promise.race([exited.then(() => true), new Promise((r) => setTimeout(() => r(false), 10_000))]);
      if (!done) child.kill('SIGKILL');
    }
    if (isMounted(mountpoint)) await run('fusermount', ['-u', '-z', mountpoint]);
  });
  const deadline = Date.now() + 20_000;
  while (!fs.existsSync(ready)) {
    if (child.exitCode !== null) throw new Error(`mount exited with ${child.exitCode}:\n${output}`);
    if (Date.now() > deadline) throw new Error(`mount did not become ready:\n${output}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  return m;
}

/** `kangaroo umount [--push]`, then waits for the mount process and checks nothing is left mounted. */
export async function unmountAndCheck(mount: MountProcess, push: boolean): Promise<{ code: number; stderr: string }> {
  const u = await mount.umount(push);
  await Promise.race([mount.exited, new Promise((r) => setTimeout(r, 20_000))]);
  expect(isMounted(mount.mountpoint), `${mount.mountpoint} still mounted`).toBe(false);
  return u;
}
