import Fuse from 'fuse-native';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { RelayClient } from '../client/client.js';
import { KangarooError } from '../errors.js';
import { NameService } from '../gns/service.js';
import { RelayStatus } from '../relay/status.js';
import { Logger } from '../util/log.js';
import { formatBytes } from '../util/units.js';
import { bindingThread, loadBinding, MAX_WRITE_REQUEST } from './binding.js';
import { BlockCache } from './block-cache.js';
import { BackgroundRelayOptions, deliveringNote, startBackgroundRelay } from './background-relay.js';
import { EmbeddedRelay } from './embedded-relay.js';
import { Operations } from './operations.js';
import { RelayLink } from './relay-link.js';
import { RemoteFiles } from './remote.js';
import { Resolver } from './resolve.js';
import { WRITE_BEHIND_BIT, WriteBehind } from './write-behind.js';

export interface MountOptions {
  mountpoint: string;
  relay: string;
  gnsFile?: string;
  backing: string;
  /** Spool of the embedded relay, used when no relay answers at `relay`. */
  embeddedSpool: string;
  /** Bytes per second the embedded relay sends on (a relay already running keeps its own). */
  embeddedBwlimit?: number;
  cacheBytes?: number;
  secret?: Buffer;
  /** The file `secret` came from: a background relay carrying on for the embedded one reads it. */
  secretFile?: string;
  /**
   * Answer writes to remote files on the FUSE thread and take them in 1 MiB blocks
   * (src/fs/write-behind.ts); default on. Off, every write waits for this process.
   */
  writeBehind?: boolean;
  log: Logger;
}

export interface UnmountResult {
  ok: boolean;
  message: string;
}

/**
 * One mounted directory: the FUSE session, its operations, its relay link and,
 * when no relay was running, the relay embedded in this process.
 *
 * Unmounting commits every write first; with push it also waits for delivery.
 * An embedded relay never takes undelivered data down with it: without push, a
 * background relay is started on the same spool to finish the job, and the
 * message says so.
 */
export class KangarooMount {
  private fuse!: Fuse;
  private ops!: Operations;
  private writeBehind: WriteBehind | undefined;
  private link!: RelayLink;
  private remote!: RemoteFiles;
  embedded: EmbeddedRelay | undefined;
  relayAddress = '';
  private unmounting: Promise<UnmountResult> | undefined;
  private readonly pushStopped = new AbortController();

  constructor(readonly options: MountOptions) {}

  get mountpoint(): string {
    return path.resolve(this.options.mountpoint);
  }

  async start(): Promise<void> {
    const o = this.options;
    this.relayAddress = o.relay;
    // a relay found running is kept connected from here on: one started with --exit-when-done
    // (another mount's background relay) must not take the connection's silence for the end of its job
    let found: RelayClient | undefined;
    try {
      found = await RelayClient.connect(o.relay, { connectTimeoutMs: 2000, secret: o.secret });
      if (o.embeddedBwlimit !== undefined) o.log.warn(`--bwlimit is for the relay a mount embeds: relay ${o.relay} keeps its own limit`);
    } catch (err) {
      const e = KangarooError.from(err);
      if (!e.transient) throw e;
      this.embedded = await EmbeddedRelay.start({ listen: o.relay, spoolDir: o.embeddedSpool, bwlimit: o.embeddedBwlimit, log: o.log, secret: o.secret });
      this.relayAddress = this.embedded.address;
      o.log.info(`no relay at ${o.relay} (${e.code}); started an embedded relay on ${this.relayAddress}, spool ${o.embeddedSpool}`);
    }
    await fsp.mkdir(o.backing, { recursive: true });
    const gns = new NameService(o.gnsFile, o.log);
    const embedded = this.embedded;
    // undefined: the link's default, TCP to the relay's address
    this.link = new RelayLink(this.relayAddress, o.log, o.secret, embedded && (() => embedded.connect()), found);
    this.remote = new RemoteFiles(this.link, new BlockCache(o.cacheBytes));
    const perFile = perFileDirectIo();
    if (!perFile) o.log.warn('fuse-native was not rebuilt with per-file direct I/O (see scripts/build-native.cjs): the whole mount uses direct I/O, so pipe mode works but MAP_SHARED mmap does not');
    this.ops = new Operations({
      resolver: new Resolver(o.backing, gns),
      remote: this.remote,
      gns,
      backing: o.backing,
      mountpoint: this.mountpoint,
      log: o.log,
      directIoBit: perFile ? DIRECT_IO_BIT : 0,
    });
    await fsp.mkdir(this.mountpoint, { recursive: true });
    this.fuse = new Fuse(this.mountpoint, this.ops.ops(), {
      // A push or a blocked pipe read may take minutes: no operation may time out.
      timeout: false,
      force: true,
      mkdir: true,
      // fuse-native joins its options into one -o list; this is how big writes get through.
      // max_write: 1 MiB where the binding was rebuilt with native/big-writes.c; libfuse cuts
      // it to 128 KiB on its own channel.
      // auto_cache: at each open libfuse compares the file's size and time with what the kernel
      // cached, and keeps the page cache when they match (a re-read is then memory speed).
      fsname: `kangaroo,big_writes,max_write=${MAX_WRITE_REQUEST},max_read=131072,auto_cache${perFile ? '' : ',direct_io'}`,
      autoCache: true,
    });
    await new Promise<void>((resolve, reject) => this.fuse.mount((err) => (err ? reject(KangarooError.from(err, `cannot mount ${this.mountpoint}`)) : resolve())));
    if (o.writeBehind === false) return;
    this.writeBehind = WriteBehind.attach(this.fuse, (fd, offset, data, release) => this.ops.writeBehind(fd, offset, data, release));
    if (this.writeBehind) this.ops.enableWriteBehind(WRITE_BEHIND_BIT);
    else o.log.warn('fuse-native was not rebuilt with write-behind (see scripts/build-native.cjs): each write waits for this process to take it, which halves the write speed');
  }

  /** True when writes to remote files are answered by the binding and taken in blocks. */
  get writesBehind(): boolean {
    return this.writeBehind !== undefined;
  }

  /**
   * The write requests the kernel sent this mount: how many, their bytes and the largest
   * (1 MiB with native/big-writes.c, 128 KiB on libfuse's own channel); undefined when the
   * binding does not count them.
   */
  writeRequests(): { requests: number; bytes: number; largest: number } | undefined {
    const thread = bindingThread(this.fuse);
    const counts = thread ? loadBinding()?.kangaroo_write_requests?.(thread) : undefined;
    return counts && { requests: counts[0], bytes: counts[1], largest: counts[2] };
  }

  /** Writes the binding answered and still holds, handed over: before anything commits. */
  private takeWritesBehind(): void {
    this.writeBehind?.drain();
  }

  /** How the embedded relay is set up, for a relay to carry on with its spool; undefined without one. */
  embeddedSetup(): BackgroundRelayOptions | undefined {
    const o = this.options;
    return this.embedded && { address: this.embedded.address, spoolDir: o.embeddedSpool, bwlimit: o.embeddedBwlimit, secretFile: o.secretFile };
  }

  /**
   * Commits (and with push, delivers) everything, then unmounts. Safe to call more than
   * once; an unmount without push stops an unmount's wait for delivery (see stopPush).
   */
  unmount(push: boolean, onProgress?: (pendingBytes: number) => void): Promise<UnmountResult> {
    if (this.unmounting && !push) this.stopPush('a later umount without --push');
    this.unmounting ??= this.doUnmount(push, onProgress);
    return this.unmounting;
  }

  /**
   * Stops an unmount waiting for delivery (a destination that is down may take days):
   * it finishes as one without push, whatever is still on its way handed to the
   * background relay. Its answer says why.
   */
  stopPush(why: string): void {
    if (this.pushStopped.signal.aborted) return;
    this.options.log.info(`unmount of ${this.mountpoint}: no longer waiting for delivery (${why})`);
    this.pushStopped.abort(why);
  }

  private async doUnmount(push: boolean, onProgress?: (pendingBytes: number) => void): Promise<UnmountResult> {
    const log = this.options.log;
    let problem: string | undefined;
    await new Promise<void>((resolve) => {
      // fuse-native reports the unmount from the exit of the `fusermount -uz` it runs; once, under
      // load, that exit was never reported (the shell left as a zombie) and the unmount waited for
      // ever. The detach is lazy, so committing can go on without the report.
      const timer = setTimeout(() => {
        log.warn(`unmount of ${this.mountpoint}: no word from fusermount within ${UNMOUNT_REPORT_MS / 1000} s; committing anyway`);
        resolve();
      }, UNMOUNT_REPORT_MS);
      this.fuse.unmount((err) => {
        clearTimeout(timer);
        if (err) log.warn(`unmount of ${this.mountpoint}: ${err.message}`);
        resolve();
      });
    });
    const writes = this.writeRequests();
    if (writes) log.debug(`write requests from the kernel: ${writes.requests} (${formatBytes(writes.bytes)}, largest ${formatBytes(writes.largest)})`);
    await this.ops.closeLocalHandles();
    this.ops.stopPathChecker();
    this.takeWritesBehind();
    try {
      await this.ops.commitAll();
    } catch (err) {
      const e = KangarooError.from(err);
      problem = `commit failed: ${e.code}: ${e.message}`;
    }
    let pending = await this.pendingOnRelay();
    let stopped = '';
    if (push && !problem) {
      try {
        pending = await this.pushPending(pending.files, onProgress, this.pushStopped.signal);
      } catch (err) {
        const e = KangarooError.from(err);
        problem = `push failed: ${e.code}: ${e.message}`;
      }
      if (this.pushStopped.signal.aborted && !problem) {
        stopped = `stopped waiting for delivery (${String(this.pushStopped.signal.reason)}); `;
        push = false;
      }
    }
    await this.link.close();
    let message: string;
    if (problem) {
      message = `${problem}; ${pending.files.length} file(s), ${formatBytes(pending.bytes)} still spooled at ${this.relayAddress}`;
    } else if (pending.files.length === 0) {
      message = push ? 'everything written is delivered to its destination' : 'everything written is committed and delivered';
    } else if (push) {
      message = `${pending.files.length} file(s) still pending`;
      problem = message;
    } else {
      message = `everything written is committed; ${pending.files.length} file(s), ${formatBytes(pending.bytes)} still on the way`;
    }
    message = stopped + message;
    const setup = this.embeddedSetup();
    if (this.embedded && setup) {
      const { address: addr, spoolDir } = setup;
      // another mount (or put, or status) that found this relay at its address keeps using it
      const others = this.embedded.otherClients();
      await this.embedded.close();
      if (pending.files.length > 0 || others > 0) {
        const bg = await startBackgroundRelay(setup);
        if (bg.state === 'failed') {
          problem = `the background relay that was to carry on could not start (see ${bg.log})`;
          message += `; ${problem}` + (pending.files.length > 0 ? `: it waits in ${spoolDir} for \`kangaroo relay --spool ${spoolDir}\`` : '');
        } else if (pending.files.length > 0) {
          message += `; ${deliveringNote(bg, addr)}`;
        } else {
          message += `; a background relay (pid ${bg.pid}) on ${addr} carries on for the ${others} other client(s) of this mount's relay`;
          if (bg.state === 'starting') message += `; it is still starting (its log: ${bg.log})`;
        }
      }
    } else if (pending.files.length > 0) {
      message += ` (relay ${this.relayAddress} delivers it; kangaroo status shows progress)`;
    }
    return { ok: !problem, message };
  }

  /**
   * Commits everything written through the mount and keeps it mounted (`kangaroo run --mount`
   * after its command exits); with push, also waits until the relay has delivered it.
   */
  async commit(push: boolean, onProgress?: (pendingBytes: number) => void): Promise<UnmountResult> {
    if (this.unmounting) return { ok: false, message: 'the mount is being unmounted' };
    try {
      this.takeWritesBehind();
      await this.ops.commitAll();
      if (!push) return { ok: true, message: 'everything written is committed' };
      const pending = await this.pushPending((await this.pendingOnRelay()).files, onProgress);
      if (pending.files.length === 0) return { ok: true, message: 'everything written is delivered to its destination' };
      return { ok: false, message: `${pending.files.length} file(s), ${formatBytes(pending.bytes)} still pending at ${this.relayAddress}` };
    } catch (err) {
      const e = KangarooError.from(err);
      return { ok: false, message: `${push ? 'commit or push' : 'commit'} failed: ${e.code}: ${e.message}` };
    }
  }

  /** Pushes each file the relay still holds (until `stop`); resolves with what is pending afterwards. */
  private async pushPending(files: { host: string; path: string }[], onProgress?: (pendingBytes: number) => void, stop?: AbortSignal) {
    const client = await this.link.get();
    const timer = setInterval(() => void this.pendingOnRelay().then((p) => onProgress?.(p.bytes)), 500);
    const stopped = new Promise<void>((resolve) => stop?.addEventListener('abort', () => resolve(), { once: true }));
    try {
      for (const f of files) {
        if (stop?.aborted) break;
        // a push given up on is answered (or fails) later, on a link about to close
        await Promise.race([client.push(f.host, f.path), stopped]);
      }
    } finally {
      clearInterval(timer);
    }
    return this.pendingOnRelay();
  }

  private async pendingOnRelay(): Promise<{ bytes: number; files: { host: string; path: string }[] }> {
    try {
      const client = await this.link.get();
      const s = (await client.status()) as RelayStatus;
      return { bytes: s.files.reduce((n, f) => n + f.pendingBytes, 0), files: s.files.map((f) => ({ host: f.host, path: f.path })) };
    } catch {
      return { bytes: 0, files: [] };
    }
  }
}

/** How long an unmount waits for fuse-native to report fusermount's exit. */
const UNMOUNT_REPORT_MS = 10_000;

/** Bit 30 of a handle number asks the patched binding for direct I/O (native/fuse-native-patches.cjs). */
const DIRECT_IO_BIT = 0x40000000;

function perFileDirectIo(): boolean {
  try {
    const require = createRequire(import.meta.url);
    const dir = path.dirname(require.resolve('fuse-native/package.json'));
    return fs.existsSync(path.join(dir, 'build', 'Release', 'kangaroo-direct-io')) && fs.existsSync(path.join(dir, 'build', 'Release', 'fuse.node'));
  } catch {
    return false;
  }
}
