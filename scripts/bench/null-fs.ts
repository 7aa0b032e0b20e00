/// <reference path="../../src/types/fuse-native.d.ts" />
/**
 * The ceiling of a FUSE file system served by fuse-native on this machine: a file
 * system that accepts every write and throws it away, mounted with the same options
 * as kangaroo's mount. Run as its own process: `node null-fs.js MOUNTPOINT READYFILE`.
 */
import Fuse from 'fuse-native';
import fs from 'node:fs';

const [mnt, ready] = process.argv.slice(2) as [string, string];
const now = new Date();
const file = { mtime: now, atime: now, ctime: now, size: 0, mode: 0o100644, uid: 0, gid: 0, nlink: 1 };
const fuse = new Fuse(
  mnt,
  {
    getattr: (p, cb) => (p === '/' ? cb(0, { ...file, mode: 0o40755, size: 4096 }) : cb(0, file)),
    readdir: (_p, cb) => cb(0, []),
    open: (_p, _f, cb) => cb(0, 42),
    create: (_p, _m, cb) => cb(0, 42),
    truncate: (_p, _s, cb) => cb(0),
    write: (_p, _fd, _b, len, _pos, cb) => cb(len),
    read: (_p, _fd, _b, _len, _pos, cb) => cb(0),
    release: (_p, _fd, cb) => cb(0),
    flush: (_p, _fd, cb) => cb(0),
  },
  { timeout: false, force: true, mkdir: true, fsname: 'kangaroo-null,big_writes,max_write=131072,max_read=131072' },
);
fuse.mount((err) => {
  if (err) {
    process.stderr.write(`null fs: ${err.message}\n`);
    process.exit(1);
  }
  fs.writeFileSync(ready, 'ready\n');
});
const stop = () => fuse.unmount(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
