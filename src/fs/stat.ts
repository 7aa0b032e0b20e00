import type { Stat } from 'fuse-native';
import fs from 'node:fs';
import { FileInfo } from '../protocol/messages.js';
import { MAX_WRITE_REQUEST } from './binding.js';

/** Stat records in the shape fuse-native wants. Files belong to the user running the mount. */
const uid = process.getuid?.() ?? 0;
const gid = process.getgid?.() ?? 0;

export function dirStat(mtime = new Date()): Stat {
  return { mtime, atime: mtime, ctime: mtime, size: 4096, mode: 0o40755, uid, gid, nlink: 2 };
}

/**
 * The I/O size remote files advertise: the largest write request the mount takes.
 * Programs size their buffers by it (python's buffered files, cp, cat), so each of
 * their writes is one request to the mount rather than several.
 */
export const REMOTE_BLKSIZE = MAX_WRITE_REQUEST;

export function infoStat(info: FileInfo): Stat {
  if (info.kind === 'dir') return dirStat(new Date(info.mtimeMs));
  const t = new Date(info.mtimeMs);
  return {
    mtime: t,
    atime: t,
    ctime: t,
    size: info.size,
    mode: 0o100000 | (info.mode & 0o7777 || 0o644),
    uid,
    gid,
    nlink: 1,
    blocks: Math.ceil(info.size / 512),
    blksize: REMOTE_BLKSIZE,
  };
}

export function localStat(st: fs.Stats): Stat {
  return {
    mtime: st.mtime,
    atime: st.atime,
    ctime: st.ctime,
    size: st.size,
    mode: st.mode,
    uid: st.uid,
    gid: st.gid,
    nlink: st.nlink,
    blocks: st.blocks,
    blksize: st.blksize,
    ino: st.ino,
  };
}

export const processIds = { uid, gid };
