/**
 * A disk whose fsync fails: a FUSE file system that passes every call through to
 * a backing directory, except that fsync answers EIO while a trigger file exists.
 * With `refuse-direct` it also refuses opens with O_DIRECT (EINVAL), as file systems
 * without direct I/O do. Run as its own process (plain JavaScript, so node runs it
 * without a build):
 *
 *   node failing-disk.mjs MOUNTPOINT BACKING_DIR TRIGGER_FILE READY_FILE [refuse-direct]
 *
 * It writes READY_FILE once mounted and unmounts on SIGTERM/SIGINT. Only async
 * fs calls, never sync ones: this process serves the mount and must not block.
 */
import Fuse from 'fuse-native';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
// the mount's own conversion of a local stat to fuse-native's shape (built by npm run build)
import { localStat } from '../../dist/fs/stat.js';

const [mnt, backing, trigger, ready, mode] = process.argv.slice(2);
const refuseDirect = mode === 'refuse-direct';
const real = (p) => path.join(backing, p);
const handles = new Map();
let nextFd = 10;

/** A Node fs error as fuse-native wants it: a negative errno. */
function errno(err) {
  const n = err && err.code ? os.constants.errno[err.code] : undefined;
  return typeof n === 'number' ? -n : Fuse.EIO;
}

/** Runs an async call and answers cb(0) or cb(-errno). */
function call(cb, work) {
  work().then(
    () => cb(0),
    (err) => cb(errno(err)),
  );
}

async function openHandle(p, create, mode) {
  // Opened read-write without O_APPEND: the kernel gives every write its position
  // (the file's end for an O_APPEND descriptor on the mount).
  const h = await fsp.open(real(p), create ? 'w+' : 'r+', mode);
  const fd = nextFd++;
  handles.set(fd, h);
  return fd;
}

const ops = {
  getattr: (p, cb) => fsp.lstat(real(p)).then((st) => cb(0, localStat(st)), (err) => cb(errno(err))),
  fgetattr: (p, fd, cb) => {
    const h = handles.get(fd);
    (h ? h.stat() : fsp.lstat(real(p))).then((st) => cb(0, localStat(st)), (err) => cb(errno(err)));
  },
  access: (p, _mode, cb) => call(cb, () => fsp.access(real(p))),
  statfs: (p, cb) =>
    fsp.statfs(real(p)).then(
      (s) => cb(0, { bsize: s.bsize, frsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree, favail: s.ffree, fsid: 0, flag: 0, namemax: 255 }),
      (err) => cb(errno(err)),
    ),
  readdir: (p, cb) => fsp.readdir(real(p)).then((names) => cb(0, names), (err) => cb(errno(err))),
  open: (p, flags, cb) => {
    if (refuseDirect && flags & fsp.constants.O_DIRECT) return cb(Fuse.EINVAL);
    openHandle(p, false).then((fd) => cb(0, fd), (err) => cb(errno(err)));
  },
  create: (p, mode, cb) => openHandle(p, true, mode).then((fd) => cb(0, fd), (err) => cb(errno(err))),
  read: (_p, fd, buf, len, pos, cb) => {
    const h = handles.get(fd);
    if (!h) return cb(Fuse.EIO);
    h.read(buf, 0, len, pos).then((r) => cb(r.bytesRead), (err) => cb(errno(err)));
  },
  write: (_p, fd, buf, len, pos, cb) => {
    const h = handles.get(fd);
    if (!h) return cb(Fuse.EIO);
    // fuse-native's buffer is only valid during the call: copy it before the async write
    h.write(Buffer.from(buf.subarray(0, len)), 0, len, pos).then((r) => cb(r.bytesWritten), (err) => cb(errno(err)));
  },
  fsync: (_p, _datasync, fd, cb) =>
    call(cb, async () => {
      const failing = await fsp.access(trigger).then(() => true, () => false);
      if (failing) throw Object.assign(new Error('fsync failed (injected)'), { code: 'EIO' });
      const h = handles.get(fd);
      if (h) await h.sync();
    }),
  flush: (_p, _fd, cb) => cb(0),
  release: (_p, fd, cb) => {
    const h = handles.get(fd);
    handles.delete(fd);
    if (!h) return cb(0);
    call(cb, () => h.close());
  },
  truncate: (p, size, cb) => call(cb, () => fsp.truncate(real(p), size)),
  ftruncate: (p, fd, size, cb) => {
    const h = handles.get(fd);
    call(cb, () => (h ? h.truncate(size) : fsp.truncate(real(p), size)));
  },
  unlink: (p, cb) => call(cb, () => fsp.unlink(real(p))),
  rename: (src, dest, cb) => call(cb, () => fsp.rename(real(src), real(dest))),
  mkdir: (p, mode, cb) => call(cb, () => fsp.mkdir(real(p), { mode })),
  rmdir: (p, cb) => call(cb, () => fsp.rmdir(real(p))),
  utimens: (p, atime, mtime, cb) => call(cb, () => fsp.utimes(real(p), new Date(atime), new Date(mtime))),
  chmod: (p, mode, cb) => call(cb, () => fsp.chmod(real(p), mode)),
};

const fuse = new Fuse(mnt, ops, { timeout: false, force: true, mkdir: true, fsname: 'kangaroo-failing-disk' });
fuse.mount(async (err) => {
  if (err) {
    process.stderr.write(`failing disk: ${err.message}\n`);
    process.exit(1);
  }
  await fsp.writeFile(ready, 'ready\n');
});
const stop = () => fuse.unmount(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
