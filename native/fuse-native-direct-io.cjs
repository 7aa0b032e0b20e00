'use strict';
/*
 * The one change kangaroo makes to fuse-native's C source (fuse-native.c, v2.2.6):
 * in the replies to open, create and opendir, a handle number with bit 30 set
 * clears that bit and sets `direct_io` on the open file. The kernel then hands
 * every read of that file to the file system instead of serving it from the page
 * cache up to the size getattr reported, which is what a reader of a growing
 * pipe-mode file needs. Files opened without the bit keep the page cache.
 */
const MARKER = 'kangaroo: handle numbers with bit 30 set';

const ORIGINAL = `  NAPI_ARGV_INT32(fd, 2)
  if (fd != 0) {
    l->info->fh = fd;
  }`;

const PATCHED = `  NAPI_ARGV_INT32(fd, 2)
  if (fd != 0) {
    /* ${MARKER} ask for direct I/O on this open file */
    if (fd & 0x40000000) {
      fd &= ~0x40000000;
      l->info->direct_io = 1;
    }
    l->info->fh = fd;
  }`;

function patchSource(text) {
  if (text.includes(MARKER)) return text;
  if (!text.includes(ORIGINAL)) throw new Error('fuse-native.c is not the version this patch knows (2.2.6)');
  return text.split(ORIGINAL).join(PATCHED);
}

module.exports = { patchSource, MARKER, DIRECT_IO_BIT: 0x40000000 };
