import { execFile } from 'node:child_process';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Argv } from 'yargs';
import { RelayClient } from '../../client/client.js';
import { KangarooError } from '../../errors.js';
import { controlSocketPath, requestUnmount, serveControl } from '../../fs/control.js';
import { deliveringNote, startBackgroundRelay } from '../../fs/background-relay.js';
import { MountRecord, readMountRecord, removeMountRecord, writeMountRecord } from '../../fs/mount-record.js';
import { createLogger, LogLevel } from '../../util/log.js';
import { tuneMalloc } from '../../util/malloc-tuning.js';
import { parseBytes } from '../../util/units.js';
import { defaultSpoolDir, defaultStateDir, relayAddress, secretFilePath, secretFrom } from '../defaults.js';
import { Progress } from '../progress.js';
import { writeReadyFile } from '../run.js';

/** mount and umount: the FUSE adaptation layer on the command line. */
export function register(y: Argv): Argv {
  return y
    .command(
      'mount <mountpoint>',
      'Mount a directory where MOUNT/kangaroo/HOST/PATH is a remote file and name-service entries follow their mapping (runs in the foreground)',
      (c) =>
        c
          .positional('mountpoint', { type: 'string', demandOption: true })
          .option('gns', { type: 'string', describe: 'name service file (NAME MODE TARGET lines); edits apply at the next open' })
          .option('backing', { type: 'string', describe: 'where other names under the mount are stored (default: a directory of the mount\'s own)' })
          .option('ready-file', { type: 'string', describe: 'write this file once mounted (for scripts)' })
          .option('stdin-lifeline', {
            type: 'boolean',
            default: false,
            hidden: true,
            describe: 'unmount (committing everything) when standard input closes: the mount ends with the process that started it (kangaroo run)',
          })
          .option('cache', { type: 'string', default: '256MiB', describe: 'read cache size' })
          .option('bwlimit', { type: 'string', describe: 'cap the bytes per second the embedded relay sends on (e.g. 10MB); a relay already running keeps its own' })
          .option('write-behind', {
            type: 'boolean',
            default: true,
            describe: 'answer writes to remote files at once and take them in 1 MiB blocks (a failed write is then reported by close or fsync); --no-write-behind: every write waits for this process',
          })
          .option('log-level', { choices: ['debug', 'info', 'warn', 'error'] as const, default: 'info' as const })
          .example('$0 mount /mnt/k', 'then: cp data.bin /mnt/k/kangaroo/archive.example/run7/'),
      async (argv) => {
        const log = createLogger('mount', argv['log-level'] as LogLevel);
        // the mount's embedded relay (in this process) takes 1 MiB puts too
        log.debug(tuneMalloc());
        const state = defaultStateDir();
        const mountpoint = path.resolve(argv.mountpoint);
        const key = Buffer.from(mountpoint).toString('hex').slice(-24);
        // loaded here so the other commands work where fuse-native is not installed
        const { KangarooMount } = await import('../../fs/mount.js');
        const mount = new KangarooMount({
          mountpoint,
          relay: relayAddress(argv.relay as string | undefined),
          gnsFile: argv.gns ? path.resolve(argv.gns) : undefined,
          backing: path.resolve(argv.backing ?? path.join(state, 'backing', key)),
          embeddedSpool: defaultSpoolDir(),
          embeddedBwlimit: argv.bwlimit ? parseBytes(argv.bwlimit) : undefined,
          cacheBytes: parseBytes(argv.cache),
          secret: secretFrom(argv['secret-file'] as string | undefined),
          secretFile: secretFilePath(argv['secret-file'] as string | undefined),
          writeBehind: argv['write-behind'],
          log,
        });
        // a mount whose process died is left behind as a directory that fails every call with ENOTCONN
        await fsp.stat(mountpoint).catch((err: NodeJS.ErrnoException) => {
          if (err.code === 'ENOTCONN') throw new KangarooError('BUSY', `${mountpoint} is a dead mount (the process that served it is gone): run kangaroo umount ${argv.mountpoint} first`);
        });
        await mount.start();
        const socketPath = controlSocketPath(state, mountpoint);
        let finishing = false;
        // One unmount, however many ask for it (a plain umount while an umount --push waits, a
        // signal): each gets its answer before the process exits.
        let finished: Promise<{ ok: boolean; message: string }> | undefined;
        const finish = (push: boolean, progress: (n: number) => void = () => undefined) => {
          finishing = true;
          const first = !finished;
          finished ??= (async () => {
            const r = await mount.unmount(push, progress);
            log.info(`unmounted ${mountpoint}: ${r.message}`);
            server.close();
            await fsp.rm(socketPath, { force: true });
            await removeMountRecord(socketPath);
            setImmediate(() => process.exit(r.ok ? 0 : 1));
            return r;
          })();
          if (!first) void mount.unmount(push, progress);
          return finished;
        };
        const server = await serveControl(
          socketPath,
          finish,
          (push, progress) => mount.commit(push, progress),
          () => mount.stopPush('the umount --push waiting for it was interrupted'),
        );
        await writeMountRecord(socketPath, { pid: process.pid, mountpoint, embedded: mount.embeddedSetup() ?? null });
        process.stdout.write(
          `kangaroo: mounted ${mountpoint} (relay ${mount.relayAddress}${mount.embedded ? ', embedded' : ''}; backing ${mount.options.backing}` +
            `${mount.options.gnsFile ? `; name service ${mount.options.gnsFile}` : ''}${mount.writesBehind ? '; writes behind' : ''})\n`,
        );
        if (argv['ready-file']) await writeReadyFile(argv['ready-file'], mountpoint);
        if (argv['stdin-lifeline']) {
          process.stdin.on('data', () => undefined);
          process.stdin.once('close', () => {
            if (!finishing) void finish(false);
          });
        }
        for (const sig of ['SIGINT', 'SIGTERM'] as const) {
          process.on(sig, () => {
            if (!finishing) void finish(false);
          });
        }
      },
    )
    .command(
      'umount <mountpoint>',
      'Commit everything written through a mount, then unmount it; with --push, wait until it reached its destinations',
      (c) =>
        c
          .positional('mountpoint', { type: 'string', demandOption: true })
          .option('push', { type: 'boolean', default: false, describe: 'wait for delivery to the destinations' }),
      async (argv) => {
        const mountpoint = path.resolve(argv.mountpoint);
        const socketPath = controlSocketPath(defaultStateDir(), mountpoint);
        const progress = new Progress(`delivering`, undefined);
        try {
          const r = await requestUnmount(socketPath, argv.push, (n) => progress.update(n));
          progress.finish();
          process.stderr.write(`kangaroo: ${r.ok ? 'unmounted' : 'unmount incomplete'} ${mountpoint}: ${r.message}\n`);
          if (!r.ok) process.exitCode = 1;
        } catch (err) {
          const e = KangarooError.from(err);
          if (e.code !== 'NOT_FOUND') throw e;
          // No control socket here. Only a mount whose process is gone may be detached: a live one
          // (started by another user, or with another XDG_STATE_HOME) still holds uncommitted writes.
          if (!(await isFuseMount(mountpoint))) throw new KangarooError('NOT_FOUND', `${mountpoint} is not a kangaroo mount`);
          const state = await probeMount(mountpoint);
          if (state === 'answers') {
            throw new KangarooError(
              'BAD_ARGUMENT',
              `${mountpoint} is served by a running process, but its control socket is not at ${socketPath}: run kangaroo umount as the user and with the XDG_STATE_HOME the mount was started with, or send that process SIGTERM (it commits everything, then unmounts)`,
            );
          }
          if (state === 'silent') {
            throw new KangarooError(
              'TIMEOUT',
              `${mountpoint} does not answer and no control socket for it is at ${socketPath}; if its process is gone, detach it with: fusermount -u -z ${mountpoint}`,
            );
          }
          const detached = await new Promise<boolean>((resolve) => execFile('fusermount', ['-u', '-z', mountpoint], (error) => resolve(!error)));
          if (!detached) throw new KangarooError('NOT_FOUND', `${mountpoint} could not be detached (fusermount -u -z failed)`);
          const record = await readMountRecord(socketPath);
          await fsp.rm(socketPath, { force: true });
          await removeMountRecord(socketPath);
          process.stderr.write(
            `kangaroo: ${mountpoint} had no serving process (it had crashed or was killed); detached the dead mount. Anything its programs had not closed or fsync'd is lost; ` +
              (await carryOnForDeadMount(record)) +
              '\n',
          );
        }
      },
    );
}

/**
 * What a dead mount committed is in its relay's spool. A relay it used that runs on
 * delivers it; a relay it embedded died with it, so one is started on its spool, as
 * a clean unmount would have (it exits once everything is delivered).
 */
async function carryOnForDeadMount(record: MountRecord | undefined): Promise<string> {
  if (!record?.embedded) return "what they committed is in its relay's spool, which that relay delivers.";
  const e = record.embedded;
  try {
    const c = await RelayClient.connect(e.address, { connectTimeoutMs: 2000, secret: e.secretFile ? secretFrom(e.secretFile) : undefined });
    await c.close();
    return `what they committed is in ${e.spoolDir}; a relay answers at ${e.address} again, and delivers it if it runs on that spool (kangaroo status --relay ${e.address}).`;
  } catch {
    // nothing there (or not a relay we may use): start one on the spool
  }
  const bg = await startBackgroundRelay(e);
  if (bg.state === 'failed') {
    process.exitCode = 1;
    return `what they committed is in ${e.spoolDir}, but the relay started to deliver it could not start (see ${bg.log}): start one with kangaroo relay --spool ${e.spoolDir}`;
  }
  return `what they committed is in ${e.spoolDir}: ${deliveringNote(bg, e.address)}.`;
}

/** Whether the kernel lists a FUSE file system mounted at `mountpoint` (/proc/mounts escapes spaces as \040). */
async function isFuseMount(mountpoint: string): Promise<boolean> {
  const table = await fsp.readFile('/proc/mounts', 'utf8').catch(() => '');
  return table.split('\n').some((line) => {
    const [, where, type] = line.split(' ');
    return type !== undefined && type.startsWith('fuse') && where?.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))) === mountpoint;
  });
}

/**
 * How a FUSE mount point answers a listing of its root (a stat could be answered from the
 * kernel's cache). When its serving process has died the kernel fails at once with ENOTCONN
 * ('dead'); a live process answers ('answers'); a hung one does not answer within two seconds
 * ('silent'). This process does not serve the mount, so it may read it.
 */
async function probeMount(mountpoint: string): Promise<'answers' | 'dead' | 'silent'> {
  let timer: NodeJS.Timeout | undefined;
  const silent = new Promise<'silent'>((resolve) => (timer = setTimeout(() => resolve('silent'), 2000)));
  const answer = fsp.readdir(mountpoint).then(
    () => 'answers' as const,
    (err: NodeJS.ErrnoException) => (err.code === 'ENOTCONN' ? ('dead' as const) : ('answers' as const)),
  );
  const state = await Promise.race([answer, silent]);
  clearTimeout(timer);
  return state;
}
