import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { RelayClient } from '../../src/client/client.js';
import { endBackgroundRelay } from './mount-process.js';
import { freePort } from './ports.js';
import { startRelay } from './relay-process.js';
import { Resources } from './resources.js';
import { mbps, MiB, now } from './stats.js';

/**
 * The mount's figures (issue: FUSE adaptation layer), each against a baseline of
 * the same run:
 * - dd bs=1M into MOUNT/kangaroo/DEST/... with the first hop throttled to 10 MB/s,
 *   against dd to local disk with conv=fsync (both end with the data safe: close
 *   on the mount commits to the first hop's spool), and against a null FUSE file
 *   system (the ceiling of any fuse-native file system here), and against the same
 *   dd through a mount with --no-write-behind (what answering writes in the binding gains);
 * - the same dd through a mount with no relay running, which embeds its own (throttled
 *   alike with --bwlimit): the first hop in the mount's process, reached without a socket;
 * - re-reading a file that is in the cache, against reading a local file from the
 *   disk (O_DIRECT) and from the page cache.
 */

export interface MountRun {
  localWriteMbps: number;
  nullFuseWriteMbps: number;
  mountWriteMbps: number;
  /** The same dd through a mount started with --no-write-behind (every write answered from JavaScript). */
  mountNoWriteBehindMbps: number;
  /** The same dd through a mount with its embedded relay. */
  mountEmbeddedWriteMbps: number;
  localDiskReadMbps: number;
  localCachedReadMbps: number;
  mountFirstReadMbps: number;
  mountRereadMbps: number;
  verified: boolean;
}

function run(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<{ ms: number; stderr: string }> {
  const t0 = now();
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { env: { ...process.env, ...env }, maxBuffer: 16 * MiB }, (err, _out, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${stderr || err.message}`));
      else resolve({ ms: now() - t0, stderr: String(stderr) });
    }),
  );
}

async function waitFile(file: string, what: string, child: { exitCode: number | null }): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!fs.existsSync(file)) {
    if (child.exitCode !== null) throw new Error(`${what} exited before it was ready`);
    if (Date.now() > deadline) throw new Error(`${what} was not ready within 20 s`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function detach(mnt: string): Promise<void> {
  await run('fusermount', ['-u', '-z', mnt]).catch(() => undefined);
}

const dd = (args: string[]) => run('dd', [...args, 'status=none']);

export async function mountFigures(cli: string, res: Resources, mib: number, bwlimit: string): Promise<MountRun> {
  const dir = await res.tempDir();
  const local = path.join(dir, 'local.bin');
  // baseline: local disk, data on stable storage at the end
  const lw = await dd(['if=/dev/zero', `of=${local}`, 'bs=1M', `count=${mib}`, 'conv=fsync']);
  const dr = await dd([`if=${local}`, 'of=/dev/null', 'bs=1M', 'iflag=direct']);
  await dd([`if=${local}`, 'of=/dev/null', 'bs=1M']);
  const cr = await dd([`if=${local}`, 'of=/dev/null', 'bs=1M']);
  await fsp.rm(local, { force: true });

  // ceiling: a null FUSE file system with the same options
  const nullMnt = path.join(dir, 'null');
  const nullReady = path.join(dir, 'null-ready');
  const nullFs = spawn(process.execPath, [path.join(path.dirname(new URL(import.meta.url).pathname), 'null-fs.js'), nullMnt, nullReady], { stdio: 'ignore' });
  res.track({ name: 'null fs', child: nullFs, output: () => '' });
  let nullMs: number;
  try {
    await waitFile(nullReady, 'null fs', nullFs);
    nullMs = (await dd(['if=/dev/zero', `of=${path.join(nullMnt, 'x')}`, 'bs=1M', `count=${mib}`])).ms;
  } finally {
    await detach(nullMnt);
  }

  // kangaroo: a throttled first hop in front of a destination, a mount on the first hop
  const dest = await startRelay(cli, res, 'destination', { export: true });
  const hop = await startRelay(cli, res, 'first hop', { bwlimit, maxSpoolBytes: 3 * mib * MiB + 64 * MiB });
  const env = { ...process.env, XDG_STATE_HOME: path.join(dir, 'state') };
  const startMount = async (name: string, extra: string[], relay = hop.address) => {
    const mnt = path.join(dir, name);
    const ready = path.join(dir, `${name}-ready`);
    const child = spawn(process.execPath, [cli, 'mount', mnt, '--relay', relay, '--ready-file', ready, '--log-level', 'warn', ...extra], { env, stdio: 'ignore' });
    res.track({ name, child, output: () => '' });
    await waitFile(ready, name, child);
    return mnt;
  };

  // without write-behind first, so both dd runs find the first hop's spool equally empty
  const offMnt = await startMount('mnt-no-write-behind', ['--no-write-behind']);
  let offMs: number;
  try {
    const remote = path.join(offMnt, 'kangaroo', dest.address, 'bench');
    await run('mkdir', ['-p', remote]);
    offMs = (await dd(['if=/dev/zero', `of=${path.join(remote, 'dd-no-write-behind.bin')}`, 'bs=1M', `count=${mib}`])).ms;
    await run(process.execPath, [cli, 'umount', offMnt], env);
  } finally {
    await detach(offMnt);
  }

  // a mount with no relay at its address embeds one; its spool is its own (the state directory)
  const embeddedMnt = await startMount('mnt-embedded', ['--bwlimit', bwlimit], `127.0.0.1:${await freePort()}`);
  let embeddedMs: number;
  try {
    const remote = path.join(embeddedMnt, 'kangaroo', dest.address, 'bench');
    await run('mkdir', ['-p', remote]);
    embeddedMs = (await dd(['if=/dev/zero', `of=${path.join(remote, 'dd-embedded.bin')}`, 'bs=1M', `count=${mib}`])).ms;
    // still on its way: the mount hands its spool to a background relay, which this run ends
    endBackgroundRelay((await run(process.execPath, [cli, 'umount', embeddedMnt], env)).stderr);
  } finally {
    await detach(embeddedMnt);
  }

  const mnt = await startMount('mnt', []);
  try {
    const remote = path.join(mnt, 'kangaroo', dest.address, 'bench');
    await run('mkdir', ['-p', remote]);
    const target = path.join(remote, 'dd.bin');
    const mw = await dd(['if=/dev/zero', `of=${target}`, 'bs=1M', `count=${mib}`]);
    // re-read: a file that fits the read cache, read once (from the relay), then again
    const small = Math.min(mib, 128);
    const cached = path.join(remote, 'reread.bin');
    await dd(['if=/dev/urandom', `of=${cached}`, 'bs=1M', `count=${small}`]);
    const first = await dd([`if=${cached}`, 'of=/dev/null', 'bs=1M']);
    const again = await dd([`if=${cached}`, 'of=/dev/null', 'bs=1M']);
    await run(process.execPath, [cli, 'umount', mnt], env);
    // after unmount (commit), the relay chain accounts for every byte, delivered or not
    const client = await RelayClient.connect(hop.address);
    const sizeOk = (await client.stat(dest.address, '/bench/dd.bin')).size === mib * MiB;
    client.destroy();
    return {
      localWriteMbps: mbps(mib * MiB, lw.ms),
      nullFuseWriteMbps: mbps(mib * MiB, nullMs),
      mountWriteMbps: mbps(mib * MiB, mw.ms),
      mountNoWriteBehindMbps: mbps(mib * MiB, offMs),
      mountEmbeddedWriteMbps: mbps(mib * MiB, embeddedMs),
      localDiskReadMbps: mbps(mib * MiB, dr.ms),
      localCachedReadMbps: mbps(mib * MiB, cr.ms),
      mountFirstReadMbps: mbps(small * MiB, first.ms),
      mountRereadMbps: mbps(small * MiB, again.ms),
      verified: sizeOk,
    };
  } finally {
    await detach(mnt);
  }
}
