import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { RelayClient } from '../../src/client/client.js';
import { startDelayProxy } from './delay-proxy.js';
import { startMount } from './mount-process.js';
import { RelayHandle, startRelay } from './relay-process.js';
import { Resources } from './resources.js';
import { MiB, now, Ratio, ratio, Series, series } from './stats.js';

/**
 * Many small files the way a user writes them (issue: small operations), each
 * mode in the same run:
 * - one `kangaroo put` of N files into a directory, with bulk frames (the
 *   default) and with `--unbatched` (each truncate its own frame, awaited), over
 *   loopback and again with the client behind a delay proxy (a link's round trips,
 *   which batching is for: over loopback one costs ~0.1 ms, and the command's
 *   start-up outweighs them);
 * - `cp -r` of the same N files into MOUNT/kangaroo/DEST/..., against `cp -r`
 *   to a local directory. The mount has no switch for its client's batching, so
 *   there is one mount figure (with the client's default, bulk frames).
 *
 * Ops count what reaches the relay for every file: a truncate and a put (the
 * mount also stats, and commits at each close). The command figures are wall
 * time of the whole process, as a user sees it; a `kangaroo put` of one file,
 * taken in the same run, is the fixed part (node start-up, connect, commit),
 * and "marginal" subtracts it: the cost of the files themselves.
 *
 * Fresh relays for each part. Before each timed command a warm-up command of a
 * few files runs (in both modes), and after each a push of its last file waits
 * until the files are at the destination, so delivery of one does not overlap
 * the next; every file is then counted at the destination.
 */

export interface CommandFigure {
  ms: number;
  opsPerSecond: number;
  filesPerSecond: number;
  /** `kangaroo put` of a single file in the same mode. */
  oneFileMs: number;
  /** ms minus oneFileMs, over the other files. */
  marginalOpsPerSecond: number;
  /** From the command's exit until the push of its last file returned. */
  deliveryMs: number;
}

export interface SmallFilesRun {
  files: number;
  fileBytes: number;
  putBatched: CommandFigure;
  putUnbatched: CommandFigure;
  /** The same commands with the client `delayMs` from its relay. */
  delayMs: number;
  putBatchedDelayed: CommandFigure;
  putUnbatchedDelayed: CommandFigure;
  /** Null when the mount is skipped (--no-mount). */
  mount: {
    cpMs: number;
    opsPerSecond: number;
    filesPerSecond: number;
    localCpMs: number;
    localFilesPerSecond: number;
    deliveryMs: number;
    /** Whether `kangaroo mount` can turn its client's batching off (it cannot yet: one figure). */
    batchingSwitch: boolean;
  } | null;
  verified: boolean;
}

function run(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<number> {
  const t0 = now();
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { env: { ...process.env, ...env }, maxBuffer: 16 * MiB }, (err, _out, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.slice(0, 4).join(' ')} …: ${String(stderr) || err.message}`));
      else resolve(now() - t0);
    }),
  );
}

async function makeSources(res: Resources, files: number, fileBytes: number): Promise<{ dir: string; names: string[] }> {
  const dir = path.join(await res.tempDir(), 'src');
  await fsp.mkdir(dir);
  const names = Array.from({ length: files }, (_, i) => `f${String(i).padStart(6, '0')}`);
  for (const n of names) await fsp.writeFile(path.join(dir, n), crypto.randomBytes(fileBytes));
  return { dir, names };
}

/**
 * Waits until `last`, the file written last, is delivered (ops leave the first hop
 * in order, so everything written before it is there too), then checks the files of `dir`.
 */
async function delivered(hop: RelayHandle, dest: RelayHandle, last: string, dir: string, names: string[], fileBytes: number): Promise<number> {
  const t0 = now();
  const client = await RelayClient.connect(hop.address);
  try {
    await client.push(dest.address, last);
  } finally {
    client.destroy();
  }
  const ms = now() - t0;
  const there = path.join(dest.exportDir!, dir);
  const sizes = await Promise.all(names.map((n) => fsp.stat(path.join(there, n)).then((st) => st.size, () => -1)));
  const good = sizes.filter((size) => size === fileBytes).length;
  if (good !== names.length) throw new Error(`small files: ${good} of ${names.length} files in ${dir} complete at the destination`);
  return ms;
}

async function putCommands(cli: string, res: Resources, src: { dir: string; names: string[] }, fileBytes: number, delayMs: number) {
  const dest = await startRelay(cli, res, 'destination', { export: true });
  const hop = await startRelay(cli, res, 'first hop');
  const proxy = await startDelayProxy(hop.address, delayMs);
  const files = src.names.length;
  const put = (relay: string, flags: string[], names: string[], to: string) =>
    run(process.execPath, [cli, 'put', '--relay', relay, ...flags, ...names.map((n) => path.join(src.dir, n)), `kangaroo://${dest.address}${to}`]);
  const figure = async (label: string, relay: string, flags: string[]): Promise<CommandFigure> => {
    await put(relay, flags, src.names.slice(0, 10), `/warm-${label}/`);
    const oneFileMs = await put(relay, flags, src.names.slice(0, 1), `/one-${label}/`);
    const ms = await put(relay, flags, src.names, `/${label}/`);
    // the command sends the files in the order given
    const deliveryMs = await delivered(hop, dest, `/${label}/${src.names[files - 1]}`, `/${label}`, src.names, fileBytes);
    return {
      ms,
      opsPerSecond: (2 * files) / (ms / 1000),
      filesPerSecond: files / (ms / 1000),
      oneFileMs,
      marginalOpsPerSecond: (2 * (files - 1)) / (Math.max(1, ms - oneFileMs) / 1000),
      deliveryMs,
    };
  };
  try {
    const putUnbatched = await figure('unbatched', hop.address, ['--unbatched']);
    const putBatched = await figure('batched', hop.address, []);
    const putUnbatchedDelayed = await figure('unbatched-delayed', proxy.address, ['--unbatched']);
    const putBatchedDelayed = await figure('batched-delayed', proxy.address, []);
    return { putBatched, putUnbatched, putBatchedDelayed, putUnbatchedDelayed };
  } finally {
    await proxy.close();
  }
}

async function mountCopy(cli: string, res: Resources, src: { dir: string; names: string[] }, fileBytes: number): Promise<NonNullable<SmallFilesRun['mount']>> {
  const files = src.names.length;
  const local = path.join(await res.tempDir(), 'local');
  const localCpMs = await run('cp', ['-r', src.dir, local]);
  const dest = await startRelay(cli, res, 'destination', { export: true });
  const hop = await startRelay(cli, res, 'first hop');
  const gns = path.join(await res.tempDir(), 'empty.gns');
  await fsp.writeFile(gns, '');
  const mount = await startMount(cli, res, 'small files', hop.address, gns);
  const remote = path.join(mount.mountpoint, 'kangaroo', dest.address);
  // warm-up: a few files through the same path (lookups, creates, commits)
  const warm = path.join(await res.tempDir(), 'warm');
  await fsp.mkdir(warm);
  for (const n of src.names.slice(0, 10)) await fsp.copyFile(path.join(src.dir, n), path.join(warm, n));
  await run('cp', ['-r', warm, path.join(remote, 'warm')]);
  const cpMs = await run('cp', ['-r', src.dir, path.join(remote, 'cp')]);
  // cp takes the files in directory order, not by name: a file written after it marks the end
  await run('cp', [path.join(src.dir, src.names[0]!), path.join(remote, 'after-cp')]);
  const deliveryMs = await delivered(hop, dest, '/after-cp', '/cp', src.names, fileBytes);
  return {
    cpMs,
    opsPerSecond: (2 * files) / (cpMs / 1000),
    filesPerSecond: files / (cpMs / 1000),
    localCpMs,
    localFilesPerSecond: files / (localCpMs / 1000),
    deliveryMs,
    batchingSwitch: false,
  };
}

export async function smallFiles(cli: string, res: Resources, files: number, fileBytes: number, withMount: boolean, delayMs: number): Promise<SmallFilesRun> {
  const src = await makeSources(res, files, fileBytes);
  const puts = await putCommands(cli, res, src, fileBytes, delayMs);
  const mount = withMount ? await mountCopy(cli, res, src, fileBytes) : null;
  return { files, fileBytes, ...puts, delayMs, mount, verified: true };
}

export interface SmallFilesSummary {
  putBatchedOpsPerSecond: Series;
  putUnbatchedOpsPerSecond: Series;
  /** Wall time of the whole command, per mode, over loopback (start-up weighs most). */
  putBatchedVsUnbatched: Ratio;
  putBatchedDelayedOpsPerSecond: Series;
  putUnbatchedDelayedOpsPerSecond: Series;
  /** The same with the client behind the delay proxy (the target: at least 5x). */
  putBatchedVsUnbatchedDelayed: Ratio;
  /** The same without the one-file command's time (start-up, connect, commit). */
  putBatchedVsUnbatchedMarginal: Ratio;
  oneFileMs: Series;
  mount: {
    filesPerSecond: Series;
    opsPerSecond: Series;
    localFilesPerSecond: Series;
    vsLocalCp: Ratio;
    vsPutBatched: Ratio;
    batchingSwitch: boolean;
  } | null;
  verifiedEveryRun: boolean;
  runs: SmallFilesRun[];
}

export function smallFilesSummary(runs: SmallFilesRun[]): SmallFilesSummary {
  const pick = (f: (r: SmallFilesRun) => number) => runs.map(f);
  const on = pick((r) => r.putBatched.opsPerSecond);
  const off = pick((r) => r.putUnbatched.opsPerSecond);
  const mounted = runs.filter((r) => r.mount !== null);
  const m = (f: (x: NonNullable<SmallFilesRun['mount']>) => number) => mounted.map((r) => f(r.mount!));
  return {
    putBatchedOpsPerSecond: series('ops/s', on),
    putUnbatchedOpsPerSecond: series('ops/s', off),
    putBatchedVsUnbatched: ratio('kangaroo put of many small files (bulk frames)', 'the same command with --unbatched', on, off, null),
    putBatchedDelayedOpsPerSecond: series('ops/s', pick((r) => r.putBatchedDelayed.opsPerSecond)),
    putUnbatchedDelayedOpsPerSecond: series('ops/s', pick((r) => r.putUnbatchedDelayed.opsPerSecond)),
    putBatchedVsUnbatchedDelayed: ratio(
      'kangaroo put of many small files (bulk frames), client behind the delay proxy',
      'the same command with --unbatched',
      pick((r) => r.putBatchedDelayed.opsPerSecond),
      pick((r) => r.putUnbatchedDelayed.opsPerSecond),
      5,
    ),
    putBatchedVsUnbatchedMarginal: ratio(
      'kangaroo put of many small files, less a one-file put (bulk frames)',
      'the same with --unbatched',
      pick((r) => r.putBatched.marginalOpsPerSecond),
      pick((r) => r.putUnbatched.marginalOpsPerSecond),
      null,
    ),
    oneFileMs: series('ms', pick((r) => r.putBatched.oneFileMs)),
    mount:
      mounted.length === 0
        ? null
        : {
            filesPerSecond: series('files/s', m((x) => x.filesPerSecond)),
            opsPerSecond: series('ops/s', m((x) => x.opsPerSecond)),
            localFilesPerSecond: series('files/s', m((x) => x.localFilesPerSecond)),
            vsLocalCp: ratio('cp -r of small files into MOUNT/kangaroo/DEST', 'cp -r to a local directory', m((x) => x.filesPerSecond), m((x) => x.localFilesPerSecond), null),
            vsPutBatched: ratio('cp -r into the mount', 'kangaroo put of the same files', m((x) => x.opsPerSecond), mounted.map((r) => r.putBatched.opsPerSecond), null),
            batchingSwitch: mounted.every((r) => r.mount!.batchingSwitch),
          },
    verifiedEveryRun: runs.every((r) => r.verified),
    runs,
  };
}
