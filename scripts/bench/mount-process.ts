import { execFile, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Resources } from './resources.js';

/**
 * A `kangaroo mount` in a child process, started the way a user starts one. The
 * benchmark never touches the mount itself (its programs are child processes).
 * When the measurement ends the mount is unmounted with `kangaroo umount`, and
 * detached lazily if that did not work, before any process is killed: a killed
 * mount process would leave a dead mount point behind.
 */

export interface MountHandle {
  mountpoint: string;
  pid: number;
}

const MAX_LOG = 64 * 1024;

function isMounted(mountpoint: string): boolean {
  return fs.readFileSync('/proc/self/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === mountpoint);
}

function runQuiet(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<string> {
  return new Promise((resolve) => execFile(cmd, args, { env, timeout: timeoutMs }, (_err, stdout, stderr) => resolve(`${stdout}${stderr}`)));
}

/**
 * Ends the background relay an unmount reported starting (an embedded relay still
 * holding data hands its spool to one): the benchmark caused it, so it ends it.
 */
export function endBackgroundRelay(umountOutput: string): void {
  const background = /a background relay \(pid (\d+)\)/.exec(umountOutput);
  if (!background) return;
  try {
    process.kill(Number(background[1]), 'SIGTERM');
  } catch {
    // already gone
  }
}

/** With no relay at `relay` the mount embeds one (`extra` may carry its --bwlimit). */
export async function startMount(cli: string, res: Resources, name: string, relay: string, gns: string, extra: string[] = []): Promise<MountHandle> {
  const dir = await res.tempDir();
  const mountpoint = path.join(dir, 'mnt');
  const ready = path.join(dir, 'ready');
  await fsp.mkdir(mountpoint);
  // the control socket lives in the state directory: one of its own per mount
  const env = { ...process.env, XDG_STATE_HOME: path.join(dir, 'state') };
  const args = [cli, 'mount', mountpoint, '--relay', relay, '--gns', gns, '--ready-file', ready, '--log-level', 'warn', ...extra];
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (d: Buffer) => {
    if (output.length < MAX_LOG) output += d.toString();
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  res.track({ name: `mount ${name}`, child, output: () => output });
  res.defer({
    name: `unmount ${name}`,
    run: async () => {
      if (child.exitCode === null && child.signalCode === null) endBackgroundRelay(await runQuiet(process.execPath, [cli, 'umount', mountpoint], env, 20_000));
      if (isMounted(mountpoint)) await runQuiet('fusermount', ['-u', '-z', mountpoint], env, 10_000);
    },
    runSync: () => {
      if (isMounted(mountpoint)) execFileSync('fusermount', ['-u', '-z', mountpoint], { stdio: 'ignore' });
    },
  });
  const deadline = Date.now() + 20_000;
  while (!fs.existsSync(ready)) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`mount ${name} exited (${child.exitCode ?? child.signalCode}) before it was ready`);
    if (Date.now() > deadline) throw new Error(`mount ${name} was not ready within 20 s`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return { mountpoint, pid: child.pid! };
}
