'use strict';
/*
 * The changes kangaroo makes to fuse-native's C source (fuse-native.c, v2.2.6), applied
 * by scripts/build-native.cjs before it rebuilds the binding:
 *
 * 1. Per-file direct I/O. In the replies to open, create and opendir, a handle number
 *    with bit 30 set clears that bit and sets `direct_io` on the open file; so does a
 *    write-only open of a handle with bit 29 (write-behind, below). The kernel
 *    then hands every read of that file to the file system instead of serving it from
 *    the page cache up to the size getattr reported, which is what a reader of a
 *    growing pipe-mode file needs. Files opened without the bit keep the page cache.
 * 2. utimens passed the access time twice; the modification time never reached
 *    JavaScript (so `touch -d`, `cp -p` and `tar -x` set the wrong time).
 * 3. Write-behind (native/write-behind.c, inserted whole): a handle number with
 *    bit 29 set has its writes copied and answered on the FUSE thread and handed to
 *    JavaScript in 1 MiB blocks; every other operation first hands over what is
 *    queued. Three functions are added to the binding: kangaroo_wb_attach,
 *    kangaroo_wb_release and kangaroo_wb_drain.
 * 4. 1 MiB write requests (native/big-writes.c, inserted whole): the mount's channel
 *    reads the device into 1 MiB buffers and asks the kernel for FUSE_MAX_PAGES,
 *    which libfuse 2 cannot, so a program's 1 MiB write is one request, not eight.
 *    It counts the write requests it reads: kangaroo_write_requests.
 */
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');

const WRITE_BEHIND = fs.readFileSync(path.join(__dirname, 'write-behind.c'), 'utf8');
const BIG_WRITES = fs.readFileSync(path.join(__dirname, 'big-writes.c'), 'utf8');

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
    /* a write-only open of a file written behind (bit 29) skips the page cache too: the
       kernel would copy every write there as well, for nobody (such a descriptor cannot
       be read or mapped shared); other opens of the file keep the cache */
    if ((fd & 0x20000000) && (l->info->flags & O_ACCMODE) == O_WRONLY) l->info->direct_io = 1;
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
  {
    marker: 'kangaroo: where write-behind keeps its state',
    original: `  uv_async_t async;
  uv_mutex_t mut;
  uv_sem_t sem;
} fuse_thread_t;`,
    patched: `  uv_async_t async;
  uv_mutex_t mut;
  uv_sem_t sem;

  /* kangaroo: where write-behind keeps its state (NULL until kangaroo_wb_attach) */
  void *kwb;
} fuse_thread_t;`,
  },
  {
    marker: 'kangaroo: write-behind for fuse-native',
    original: `static fuse_thread_locals_t* get_thread_locals();
`,
    patched: `static fuse_thread_locals_t* get_thread_locals();

#include <stddef.h>
#include <errno.h>
#include <fcntl.h>
${WRITE_BEHIND}
`,
  },
  {
    marker: 'kangaroo: the 1 MiB channel keeps its counts here',
    original: `  void *kwb;
} fuse_thread_t;`,
    patched: `  void *kwb;
  /* kangaroo: the 1 MiB channel keeps its counts here (NULL without it) */
  void *kbw;
} fuse_thread_t;`,
  },
  {
    marker: 'kangaroo: 1 MiB write requests for fuse-native',
    original: `static void* start_fuse_thread (void *data) {`,
    patched: `#include <fuse_lowlevel.h>
${BIG_WRITES}
static void* start_fuse_thread (void *data) {`,
  },
  {
    marker: 'kangaroo: a channel that takes 1 MiB writes',
    original: `  struct fuse_chan *ch = fuse_mount(mnt, &args);

  if (ch == NULL) {
    napi_throw_error(env, "fuse failed", "fuse failed");
    return NULL;
  }
`,
    patched: `  struct fuse_chan *ch = fuse_mount(mnt, &args);

  if (ch == NULL) {
    napi_throw_error(env, "fuse failed", "fuse failed");
    return NULL;
  }

  /* kangaroo: a channel that takes 1 MiB writes */
  ch = kbw_channel(ch, ft);
`,
  },
  {
    marker: 'kangaroo: writes queued behind are handed over before any other operation',
    original: `  void (*fn)(uv_async_t *, fuse_thread_locals_t *, fuse_thread_t *) = l->op_fn;

  fn(handle, l, ft);`,
    patched: `  void (*fn)(uv_async_t *, fuse_thread_locals_t *, fuse_thread_t *) = l->op_fn;

  /* kangaroo: writes queued behind are handed over before any other operation */
  if (ft->kwb != NULL) kwb_deliver((kwb_t *) ft->kwb, 1);
  fn(handle, l, ft);`,
  },
  {
    marker: 'kangaroo: write-behind handles are answered on the FUSE thread',
    original: `NAPI_METHOD(fuse_native_mount) {`,
    patched: `/* kangaroo: write-behind handles are answered on the FUSE thread */
static int kangaroo_write (const char *path, const char *buf, size_t len, off_t offset, struct fuse_file_info *info) {
  fuse_thread_t *ft = (fuse_thread_t *) fuse_get_context()->private_data;
  if ((info->fh & KWB_BIT) && ft->kwb != NULL) return kwb_write((kwb_t *) ft->kwb, info->fh, buf, len, offset);
  return fuse_native_write(path, buf, len, offset, info);
}

NAPI_METHOD(fuse_native_mount) {`,
  },
  {
    marker: 'kangaroo: writes go through kangaroo_write',
    original: `  if (implemented[op_write]) ops.write = fuse_native_write;`,
    patched: `  /* kangaroo: writes go through kangaroo_write */
  if (implemented[op_write]) ops.write = kangaroo_write;`,
  },
  {
    marker: 'kangaroo: the write-behind functions',
    original: `  NAPI_EXPORT_FUNCTION(fuse_native_unmount)
`,
    patched: `  NAPI_EXPORT_FUNCTION(fuse_native_unmount)
  /* kangaroo: the write-behind functions */
  NAPI_EXPORT_FUNCTION(kangaroo_wb_attach)
  NAPI_EXPORT_FUNCTION(kangaroo_wb_release)
  NAPI_EXPORT_FUNCTION(kangaroo_wb_drain)
  /* kangaroo: what the kernel sent as writes */
  NAPI_EXPORT_FUNCTION(kangaroo_write_requests)
`,
  },
];

/** A name for this set of patches: the build is redone when it changes. */
const VERSION = `${PATCHES.map((p) => p.marker).join(' | ')} | ${crypto.createHash('sha256').update(JSON.stringify(PATCHES)).digest('hex').slice(0, 12)}`;

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

module.exports = { patchSource, isPatched, VERSION, DIRECT_IO_BIT: 0x40000000, WRITE_BEHIND_BIT: 0x20000000 };
