'use strict';
/*
 * The changes kangaroo makes to fuse-native's C source (fuse-native.c, v2.2.6), applied
 * by scripts/build-native.cjs before it rebuilds the binding:
 *
 * 1. Per-file direct I/O. In the replies to open, create and opendir, a handle number
 *    with bit 30 set clears that bit and sets `direct_io` on the open file. The kernel
 *    then hands every read of that file to the file system instead of serving it from
 *    the page cache up to the size getattr reported, which is what a reader of a
 *    growing pipe-mode file needs. Files opened without the bit keep the page cache.
 * 2. utimens passed the access time twice; the modification time never reached
 *    JavaScript (so `touch -d`, `cp -p` and `tar -x` set the wrong time).
 */
const PATCHES = [
  {
    marker: 'kangaroo: handle numbers with bit 30 set',
    original: `  NAPI_ARGV_INT32(fd, 2)
  if (fd != 0) {
    l->info->fh = fd;
  }`,
    patched: `  NAPI_ARGV_INT32(fd, 2)
  if (fd != 0) {
    /* kangaroo: handle numbers with bit 30 set ask for direct I/O on this open file */
    if (fd & 0x40000000) {
      fd &= ~0x40000000;
      l->info->direct_io = 1;
    }
    l->info->fh = fd;
  }`,
  },
  {
    marker: 'kangaroo: the modification time, not the access time again',
    original: `  FUSE_UINT64_TO_INTS_ARGV(l->atime, 3)
  FUSE_UINT64_TO_INTS_ARGV(l->atime, 5)`,
    patched: `  FUSE_UINT64_TO_INTS_ARGV(l->atime, 3)
  /* kangaroo: the modification time, not the access time again */
  FUSE_UINT64_TO_INTS_ARGV(l->mtime, 5)`,
  },
];

/** A name for this set of patches: the build is redone when it changes. */
const VERSION = PATCHES.map((p) => p.marker).join(' | ');

function isPatched(text) {
  return PATCHES.every((p) => text.includes(p.marker));
}

function patchSource(text) {
  for (const p of PATCHES) {
    if (text.includes(p.marker)) continue;
    if (!text.includes(p.original)) throw new Error(`fuse-native.c is not the version these patches know (2.2.6): ${p.marker}`);
    text = text.split(p.original).join(p.patched);
  }
  return text;
}

module.exports = { patchSource, isPatched, VERSION, DIRECT_IO_BIT: 0x40000000 };
