import type { Ops, Stat } from 'fuse-native';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { KangarooError } from '../errors.js';
import { NameService } from '../gns/service.js';
import { Logger } from '../util/log.js';
import { errno, toErrno } from './errno.js';
import { RemoteFiles, RemoteHandle } from './remote.js';
import { REMOTE_DIR, Resolver, Target } from './resolve.js';
import { PathChecker } from './path-checker.js';
import { dirStat, infoStat, localStat, processIds } from './stat.js';

/**
 * The FUSE operations: per-handle state (the mapping chosen at open, the local
 * file or the remote write buffer) and the translation of each POSIX call.
 * Everything here is asynchronous: the handlers share the one JavaScript thread
 * with the relay client (and an embedded relay), so a synchronous call would
 * stall every other file.
 */

/** A writer's close stats the file through the mount when it wrote at least this much (see showAttributes). */
const SHOW_ATTRIBUTES_BYTES = 1024 * 1024;
/** Threads in libuv's pool (UV_THREADPOOL_SIZE, default 4): a stat through the mount holds one. */

type Handle =
  | { kind: 'remote'; h: RemoteHandle; target: Target }
  | { kind: 'buffer'; handle: number; role: 'read' | 'write'; name: string }
  | { kind: 'local'; fh: fsp.FileHandle; path: string }
  | { kind: 'dir' };

export interface OperationsContext {
  resolver: Resolver;
  remote: RemoteFiles;
  gns: NameService;
  backing: string;
  /** Where the mount is: a writer's close stats the file through it (see showAttributes). */
  mountpoint: string;
  log: Logger;
  /**
   * Added to the handle number of a pipe-mode open so the (patched) binding turns
   * on direct I/O for it; 0 when the whole mount already uses direct I/O.
   */
  directIoBit: number;
}

export class Operations {
  private handles = new Map<number, Handle>();
  private nextFd = 10;

  constructor(private readonly ctx: OperationsContext) {}

  /** Every open remote handle: unmount commits them. */
  openRemoteCount(): number {
    let n = 0;
    for (const h of this.handles.values()) if (h.kind === 'remote') n++;
    return n;
  }

  private add(h: Handle): number {
    const fd = this.nextFd++;
    // below bit 29 (write-behind) and bit 30 (direct I/O), which the binding reads in handle numbers
    if (this.nextFd > 0x1ffffff0) this.nextFd = 10;
    this.handles.set(fd, h);
    return fd;
  }

  /** The key of a handle number: the binding hands handles back with the write-behind bit set. */
  private key(fd: number): number {
    return fd & ~this.writeBehindBit;
  }

  private handle(fd: number): Handle | undefined {
    return this.handles.get(this.key(fd));
  }

  /**
   * libfuse's auto_cache keeps a file's page cache at open only if the size and time
   * it saw last still hold, and it sees them only in getattr replies: writes do not
   * tell it. After a writer's close, the first reader's open found them changed and
   * dropped the pages, so the second read came from the relay again. A stat through
   * the mount lets libfuse see them now (the time no longer changes at delivery: see
   * RemoteFiles.unstamped). Files written with less than SHOW_ATTRIBUTES_BYTES skip
   * it: re-reading those from the mount's block cache costs less than the stat costs.
   *
   * The close does not wait for the stat's answer (it took 3-27 ms of every large
   * close while the embedded relay's mover kept the event loop busy). An open of the
   * file waits for it instead (`shown`): libfuse looks at the pages only after our
   * open handler returns, so it then sees the new size and time as before.
   *
   * The stat is made by a child process (PathChecker): a thread of this process
   * blocked in a request to its own mount could not be killed. At most one is in
   * flight (a close that finds one running skips its own: the cache is an
   * optimisation), so a mount that stops answering holds back no more than that.
   */
  private showAttributes(p: string): void {
    if (this.showing) return;
    const answered = this.pathChecker.check(path.join(this.ctx.mountpoint, p));
    const showing = { path: p, answered };
    this.showing = showing;
    // cleared when the stat itself is answered, whoever waited for it
    void answered.then(() => {
      if (this.showing === showing) this.showing = undefined;
    });
  }

  private readonly pathChecker = new PathChecker();

  /** Ends the child that makes showAttributes' stats (at unmount). */
  stopPathChecker(): void {
    this.pathChecker.stop();
  }

  /** Before an open of `p` answers: the stat its writer's close started, bounded to 1 s (a busy mount does not hold the open). */
  private async shown(p: string): Promise<void> {
    const s = this.showing;
    if (s?.path !== p) return;
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => (timer = setTimeout(resolve, 1000)));
    await Promise.race([s.answered, bound]);
    clearTimeout(timer);
  }

  /** The stat showAttributes has in flight, and the path it is for. */
  private showing: { path: string; answered: Promise<void> } | undefined;

  /** Set once the binding writes behind (src/fs/write-behind.ts): remote files are opened with it. */
  private writeBehindBit = 0;

  enableWriteBehind(bit: number): void {
    this.writeBehindBit = bit;
  }

  /** Where the binding's write-behind blocks go: the remote file's write buffer, in order. */
  writeBehind(fd: number, offset: number, data: Buffer, release: () => void): void {
    const h = this.handle(fd);
    if (h?.kind === 'remote') return h.h.writeBehind(data, offset, release);
    release();
    this.ctx.log.error(`write-behind data for handle ${fd}, which is not an open remote file: ${data.length} bytes at ${offset} dropped`);
  }

  /** Runs an async handler and answers FUSE with 0/result or a negative errno, logging unexpected failures. */
  private run<T>(what: string, work: () => Promise<T>, done: (err: number, value?: T) => void): void {
    work().then(
      (v) => done(0, v),
      (err) => {
        const code = toErrno(err);
        const e = KangarooError.from(err);
        if (e.code !== 'NOT_FOUND' && e.code !== 'EXISTS') this.ctx.log.warn(`${what}: ${e.code}: ${e.message}`);
        done(code);
      },
    );
  }

  private async stat(t: Target, p: string): Promise<Stat> {
    switch (t.kind) {
      case 'root':
      case 'hosts':
        return dirStat();
      case 'remote':
        if (t.isHostRoot) return dirStat();
        return infoStat(await this.ctx.remote.stat(t.file));
      case 'local':
        try {
          // scratch area: lstat, a symbolic link is reported as one (the kernel checks the type);
          // a name-service target that is itself a link is followed
          return localStat(await (t.mapped ? fsp.stat(t.path) : fsp.lstat(t.path)));
        } catch (err) {
          // directories that exist only because the name service maps names below them
          if (!t.mapped && (err as NodeJS.ErrnoException).code === 'ENOENT' && (await this.ctx.gns.hasEntriesUnder(p))) return dirStat();
          throw err;
        }
      case 'buffer': {
        // the bytes written so far; readers do not stop here (direct I/O), they read until the writer closes
        const client = await this.ctx.remote.link.get();
        const st = await client.bufStat(t.host, t.name);
        const now = new Date();
        return { mtime: now, atime: now, ctime: now, size: st.size, mode: 0o100644, uid: processIds.uid, gid: processIds.gid, nlink: 1 };
      }
    }
  }

  private notSupported(what: string): KangarooError {
    return new KangarooError('UNKNOWN_OP', `${what} is not supported here`);
  }

  ops(): Ops {
    const r = this.ctx.resolver;
    return {
      init: (cb) => cb(0),
      statfs: (_p, cb) =>
        this.run('statfs', async () => {
          const s = await fsp.statfs(this.ctx.backing);
          return { bsize: s.bsize, frsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree, favail: s.ffree, fsid: 0, flag: 0, namemax: 255 };
        }, cb),
      getattr: (p, cb) => this.run(`getattr ${p}`, async () => this.stat(await r.resolve(p), p), cb),
      fgetattr: (p, fd, cb) =>
        this.run(`fgetattr ${p}`, async () => {
          const h = this.handle(fd);
          if (h?.kind === 'local') return localStat(await h.fh.stat());
          return this.stat(await r.resolve(p), p);
        }, cb),
      access: (p, _mode, cb) => this.run(`access ${p}`, async () => void (await this.stat(await r.resolve(p), p)), (e) => cb(e)),
      readdir: (p, cb) =>
        this.run(`readdir ${p}`, async () => this.readdir(await r.resolve(p), p), (err, v) => cb(err, v ?? [])),
      open: (p, flags, cb) =>
        this.run(`open ${p}`, async () => {
          const fd = await this.openTarget(await r.resolve(p), flags, false);
          await this.shown(p);
          return fd;
        }, cb),
      create: (p, mode, cb) => this.run(`create ${p}`, async () => this.openTarget(await r.resolve(p), fs.constants.O_RDWR | fs.constants.O_CREAT, true, mode), cb),
      read: (p, fd, buf, len, pos, cb) =>
        this.run(`read ${p}`, async () => {
          const h = this.handle(fd);
          if (!h) throw new KangarooError('BAD_ARGUMENT', 'unknown handle');
          if (h.kind === 'local') return (await h.fh.read(buf, 0, len, pos)).bytesRead;
          if (h.kind === 'remote') return this.ctx.remote.read(h.h.file, buf, len, pos);
          if (h.kind === 'buffer') {
            if (h.role !== 'read') throw Object.assign(new Error('opened for writing'), { code: 'EBADF' });
            const client = await this.ctx.remote.link.get();
            const data = await client.bufRead(h.handle, pos, len);
            data.copy(buf, 0, 0, Math.min(len, data.length));
            return Math.min(len, data.length);
          }
          throw new KangarooError('IS_DIR', 'is a directory');
        }, (err, n) => cb(err < 0 ? err : (n ?? 0))),
      write: (p, fd, buf, len, pos, cb) =>
        this.run(`write ${p}`, async () => {
          const h = this.handle(fd);
          if (!h) throw new KangarooError('BAD_ARGUMENT', 'unknown handle');
          if (h.kind === 'local') return (await h.fh.write(buf, 0, len, pos)).bytesWritten;
          if (h.kind === 'remote') {
            await h.h.write(buf.subarray(0, len), pos);
            return len;
          }
          if (h.kind === 'buffer') {
            if (h.role !== 'write') throw Object.assign(new Error('opened for reading'), { code: 'EBADF' });
            const client = await this.ctx.remote.link.get();
            await client.bufWrite(h.handle, pos, Buffer.from(buf.subarray(0, len)));
            return len;
          }
          throw new KangarooError('IS_DIR', 'is a directory');
        }, (err, n) => cb(err < 0 ? err : (n ?? 0))),
      flush: (p, fd, cb) =>
        this.run(`close ${p}`, async () => {
          const h = this.handle(fd);
          if (h?.kind === 'remote' && (await h.h.commit()) >= SHOW_ATTRIBUTES_BYTES) this.showAttributes(p);
        }, (e) => cb(e)),
      fsync: (p, _datasync, fd, cb) =>
        this.run(`fsync ${p}`, async () => {
          const h = this.handle(fd);
          if (h?.kind === 'remote') await h.h.push();
          else if (h?.kind === 'local') await h.fh.sync();
        }, (e) => cb(e)),
      release: (p, fd, cb) =>
        this.run(`release ${p}`, async () => {
          const h = this.handle(fd);
          this.handles.delete(this.key(fd));
          if (h?.kind === 'local') await h.fh.close();
          if (h?.kind === 'buffer') {
            const client = await this.ctx.remote.link.get();
            await client.bufClose(h.handle);
          }
          if (h?.kind === 'remote') {
            try {
              await h.h.commit();
            } finally {
              this.ctx.remote.release(h.h);
            }
          }
        }, (e) => cb(e)),
      truncate: (p, size, cb) =>
        this.run(`truncate ${p}`, async () => {
          const t = await r.resolve(p);
          if (t.kind === 'local') return fsp.truncate(t.path, size);
          if (t.kind === 'remote' && !t.isHostRoot) return this.ctx.remote.truncate(t.file, size);
          if (t.kind === 'buffer' && size === 0) return; // a writer's O_TRUNC: a buffer starts empty
          throw this.notSupported('truncate');
        }, (e) => cb(e)),
      ftruncate: (p, fd, size, cb) =>
        this.run(`ftruncate ${p}`, async () => {
          const h = this.handle(fd);
          if (h?.kind === 'local') return h.fh.truncate(size);
          if (h?.kind === 'remote') {
            await h.h.sendBuffered();
            h.h.dirty = true;
            return this.ctx.remote.truncate(h.h.file, size);
          }
          if (h?.kind === 'buffer' && size === 0) return;
          throw this.notSupported('truncate');
        }, (e) => cb(e)),
      mkdir: (p, mode, cb) =>
        this.run(`mkdir ${p}`, async () => {
          const t = await r.resolve(p);
          if (t.kind === 'local') return fsp.mkdir(t.path, { mode });
          if (t.kind === 'remote' && !t.isHostRoot) {
            const exists = await this.ctx.remote.stat(t.file).then(() => true, () => false);
            if (exists) throw new KangarooError('EXISTS', `${p} exists`);
            return this.ctx.remote.mkdir(t.file, mode);
          }
          throw new KangarooError('PERMISSION', `cannot create ${p}: hosts appear under /${REMOTE_DIR} by name`);
        }, (e) => cb(e)),
      rmdir: (p, cb) =>
        this.run(`rmdir ${p}`, async () => {
          const t = await r.resolve(p);
          if (t.kind === 'local') return fsp.rmdir(t.path);
          if (t.kind === 'remote' && !t.isHostRoot) return this.ctx.remote.rmdir(t.file);
          throw new KangarooError('PERMISSION', `cannot remove ${p}`);
        }, (e) => cb(e)),
      unlink: (p, cb) =>
        this.run(`unlink ${p}`, async () => {
          const t = await r.resolve(p);
          if (t.kind === 'local') return fsp.unlink(t.path);
          if (t.kind === 'remote' && !t.isHostRoot) return this.ctx.remote.unlink(t.file);
          throw new KangarooError('PERMISSION', `cannot remove ${p}`);
        }, (e) => cb(e)),
      rename: (from, to, cb) =>
        this.run(`rename ${from}`, async () => {
          const a = await r.resolve(from);
          const b = await r.resolve(to);
          if (a.kind === 'local' && b.kind === 'local') return fsp.rename(a.path, b.path);
          if (a.kind === 'remote' && b.kind === 'remote' && a.file.host === b.file.host && !a.isHostRoot && !b.isHostRoot) {
            return this.ctx.remote.rename(a.file, b.file);
          }
          // across hosts or between local and remote: programs such as mv then copy and delete
          throw Object.assign(new Error('rename across file systems'), { code: 'EXDEV' });
        }, (e) => cb(e)),
      utimens: (p, atimeArg, mtimeArg, cb) =>
        this.run(`utimens ${p}`, async () => {
          const t = await r.resolve(p);
          // fuse-native passes milliseconds; UTIME_NOW (and UTIME_OMIT) arrive as about 1073 ms: "now"
          const ms = (v: unknown) => {
            const n = v instanceof Date ? v.getTime() : Number(v);
            return n < 100_000 ? Date.now() : n;
          };
          const atime = new Date(ms(atimeArg)); // both are right only with the patched binding (native/fuse-native-patches.cjs)
          const mtime = new Date(ms(mtimeArg));
          if (t.kind === 'local') return fsp.lutimes(t.path, atime, mtime);
          if (t.kind === 'remote' && !t.isHostRoot) return this.ctx.remote.setattr(t.file, { mtimeMs: mtime.getTime() });
          if (t.kind === 'root' || t.kind === 'hosts' || (t.kind === 'remote' && t.isHostRoot)) return;
          throw this.notSupported('utimens');
        }, (e) => cb(e)),
      chmod: (p, mode, cb) =>
        this.run(`chmod ${p}`, async () => {
          const t = await r.resolve(p);
          if (t.kind === 'local') return fsp.chmod(t.path, mode);
          if (t.kind === 'remote' && !t.isHostRoot) return this.ctx.remote.setattr(t.file, { mode: mode & 0o7777 });
          throw this.notSupported('chmod');
        }, (e) => cb(e)),
      chown: (p, uid, gid, cb) =>
        this.run(`chown ${p}`, async () => {
          const t = await r.resolve(p);
          if (t.kind === 'local') return fsp.chown(t.path, uid, gid);
          // remote files belong to whoever runs the mount; asking for exactly that is not a change
          const same = (uid === processIds.uid || uid === -1 || uid === 0xffffffff) && (gid === processIds.gid || gid === -1 || gid === 0xffffffff);
          if (!same) throw new KangarooError('PERMISSION', 'remote files cannot change owner');
        }, (e) => cb(e)),
      symlink: (src, dest, cb) =>
        this.run(`symlink ${dest}`, async () => {
          const t = await r.resolve(dest);
          if (t.kind === 'local') return fsp.symlink(src, t.path);
          throw Object.assign(new Error('symbolic links are not supported on remote files'), { code: 'EPERM' });
        }, (e) => cb(e)),
      readlink: (p, cb) =>
        this.run(`readlink ${p}`, async () => {
          const t = await r.resolve(p);
          if (t.kind === 'local') return fsp.readlink(t.path);
          throw Object.assign(new Error('not a symbolic link'), { code: 'EINVAL' });
        }, cb),
      link: (_src, _dest, cb) => cb(errno('EPERM')),
      mknod: (_p, _mode, _dev, cb) => cb(errno('EPERM')),
    };
  }

  private async readdir(t: Target, p: string): Promise<string[]> {
    const extra = (await this.ctx.gns.namesIn(p)).map((e) => path.posix.basename(e.name));
    switch (t.kind) {
      case 'root': {
        const names = await fsp.readdir(this.ctx.backing).catch(() => [] as string[]);
        return [...new Set([REMOTE_DIR, ...names.filter((n) => n !== REMOTE_DIR), ...extra])];
      }
      case 'hosts':
        return [];
      case 'remote':
        return (await this.ctx.remote.list(t.file)).map((e) => e.name);
      case 'local': {
        let names: string[] = [];
        try {
          names = await fsp.readdir(t.path);
        } catch (err) {
          if (t.mapped || (err as NodeJS.ErrnoException).code !== 'ENOENT' || extra.length === 0) throw err;
        }
        return [...new Set([...names, ...extra])];
      }
      case 'buffer':
        throw new KangarooError('NOT_DIR', `${p} is a buffer`);
    }
  }

  private async openTarget(t: Target, flags: number, create: boolean, mode = 0o644): Promise<number> {
    switch (t.kind) {
      case 'root':
      case 'hosts':
        return this.add({ kind: 'dir' });
      case 'local': {
        const fh = await fsp.open(t.path, create ? fs.constants.O_RDWR | fs.constants.O_CREAT : flags & ~fs.constants.O_CREAT, mode);
        return this.add({ kind: 'local', fh, path: t.path });
      }
      case 'remote': {
        if (t.isHostRoot) return this.add({ kind: 'dir' });
        const h = this.ctx.remote.handle(t.file);
        if (create) {
          // creating is truncating to zero: the destination makes the file (and its parents)
          await this.ctx.remote.truncate(t.file, 0);
          if (mode & 0o7777 && (mode & 0o7777) !== 0o644) await this.ctx.remote.setattr(t.file, { mode: mode & 0o7777 });
          h.dirty = true;
        }
        return this.add({ kind: 'remote', h, target: t }) | this.writeBehindBit;
      }
      case 'buffer': {
        const acc = flags & 3; // O_ACCMODE
        const role = create || acc !== fs.constants.O_RDONLY ? 'write' : 'read';
        const client = await this.ctx.remote.link.get();
        const r = await client.bufOpen(t.host, t.name, role);
        return this.add({ kind: 'buffer', handle: r.handle, role, name: t.name }) | this.ctx.directIoBit;
      }
    }
  }

  /** Sends and commits every open remote handle's writes (unmount and signals). */
  async commitAll(): Promise<void> {
    await this.ctx.remote.commitAll();
  }

  closeLocalHandles(): Promise<void[]> {
    const closing: Promise<void>[] = [];
    for (const h of this.handles.values()) if (h.kind === 'local') closing.push(h.fh.close().catch(() => undefined));
    return Promise.all(closing);
  }
}
