/*
 * kangaroo: 1 MiB write requests for fuse-native (inserted into fuse-native.c by
 * native/fuse-native-patches.cjs; it uses that file's includes).
 *
 * libfuse 2 predates the kernel's FUSE_MAX_PAGES (protocol 7.28): it reads the
 * device into 132 KiB buffers and never asks for more, so the kernel cuts every
 * write a program makes into 128 KiB requests and waits for the answer to each
 * before it sends the next. A program writing 1 MiB blocks made eight round trips
 * between its thread and the mount's per block; on 2 virtual cores that, more than
 * any copy, was what a burst through the mount cost over local disk.
 *
 * kbw_channel swaps the mount's channel for one that reads the device into buffers
 * of 1 MiB and a page (libfuse sizes its buffers, and the max_write it offers, by
 * the channel) and, where the kernel offers FUSE_MAX_PAGES, adds that flag and
 * max_pages for 1 MiB to libfuse's INIT reply. A kernel older than 7.28 gets the
 * reply unchanged, and 128 KiB requests as before. Everything else is what
 * libfuse's own channel does (lib/fuse_kern_chan.c).
 *
 * The channel also counts the write requests it reads, which the mount logs when
 * it unmounts: how a program's writes reached it is otherwise invisible.
 */

#include <sys/uio.h>
#include <fcntl.h>
#include <unistd.h>

#define KBW_MAX_WRITE (1024 * 1024)
#define KBW_BUFSIZE (KBW_MAX_WRITE + 4096)
#define KBW_FUSE_WRITE 16
#define KBW_FUSE_INIT 26
#define KBW_FUSE_MAX_PAGES (1u << 22)

/* the parts of the protocol's structures (linux/fuse.h) this looks at */
struct kbw_in_header { uint32_t len; uint32_t opcode; uint64_t unique; uint64_t nodeid; uint32_t uid, gid, pid, padding; };
struct kbw_init_in { uint32_t major, minor, max_readahead, flags; };
struct kbw_write_in { uint64_t fh, offset; uint32_t size, write_flags; };
struct kbw_out_header { uint32_t len; int32_t error; uint64_t unique; };
/* fuse_init_out up to max_pages (7.28); libfuse 2 sends its first 24 bytes, the 7.19 layout */
struct kbw_init_out {
  uint32_t major, minor, max_readahead, flags;
  uint16_t max_background, congestion_threshold;
  uint32_t max_write, time_gran;
  uint16_t max_pages, map_alignment;
};

/* One per mount, kept by its fuse_thread_t (as write-behind's state is): the counts outlive the channel. */
typedef struct {
  /* the kernel's INIT request until its reply is sent (nothing else comes before that reply) */
  uint64_t init_unique;
  int offers_max_pages;
  /* write requests read, their bytes and the largest; updated by every FUSE thread */
  uint64_t writes;
  uint64_t write_bytes;
  uint64_t largest_write;
} kbw_t;

static void kbw_count_write (kbw_t *k, uint64_t size) {
  __atomic_add_fetch(&k->writes, 1, __ATOMIC_RELAXED);
  __atomic_add_fetch(&k->write_bytes, size, __ATOMIC_RELAXED);
  uint64_t largest = __atomic_load_n(&k->largest_write, __ATOMIC_RELAXED);
  while (size > largest && !__atomic_compare_exchange_n(&k->largest_write, &largest, size, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
}

static int kbw_receive (struct fuse_chan **chp, char *buf, size_t size) {
  struct fuse_chan *ch = *chp;
  struct fuse_session *se = fuse_chan_session(ch);
  ssize_t res;
  int err;
  do {
    res = read(fuse_chan_fd(ch), buf, size);
    err = errno;
    if (fuse_session_exited(se)) return 0;
    /* ENOENT: the request was interrupted, read the next */
  } while (res == -1 && err == ENOENT);
  if (res == -1) {
    if (err == ENODEV) {
      /* unmounted */
      fuse_session_exit(se);
      return 0;
    }
    if (err != EINTR && err != EAGAIN) perror("fuse: reading device");
    return -err;
  }
  if ((size_t) res < sizeof(struct kbw_in_header)) {
    fprintf(stderr, "short read on fuse device\n");
    return -EIO;
  }
  const struct kbw_in_header *in = (const struct kbw_in_header *) buf;
  kbw_t *k = (kbw_t *) fuse_chan_data(ch);
  if (in->opcode == KBW_FUSE_WRITE && (size_t) res >= sizeof(*in) + sizeof(struct kbw_write_in)) {
    kbw_count_write(k, ((const struct kbw_write_in *) (buf + sizeof(*in)))->size);
  } else if (in->opcode == KBW_FUSE_INIT && (size_t) res >= sizeof(*in) + sizeof(struct kbw_init_in)) {
    const struct kbw_init_in *init = (const struct kbw_init_in *) (buf + sizeof(*in));
    k->offers_max_pages = init->major == 7 && init->minor >= 28 && (init->flags & KBW_FUSE_MAX_PAGES);
    k->init_unique = in->unique;
  }
  return (int) res;
}

static int kbw_send (struct fuse_chan *ch, const struct iovec iov[], size_t count) {
  if (iov == NULL) return 0;
  kbw_t *k = (kbw_t *) fuse_chan_data(ch);
  struct kbw_out_header out;
  struct kbw_init_out init;
  struct iovec extended[2];
  if (k->init_unique != 0 && count == 2 && iov[0].iov_len == sizeof(out)) {
    memcpy(&out, iov[0].iov_base, sizeof(out));
    if (out.unique == k->init_unique) {
      k->init_unique = 0;
      if (out.error == 0 && k->offers_max_pages && iov[1].iov_len <= sizeof(init)) {
        memset(&init, 0, sizeof(init));
        memcpy(&init, iov[1].iov_base, iov[1].iov_len);
        init.flags |= KBW_FUSE_MAX_PAGES;
        init.max_pages = (uint16_t) (KBW_MAX_WRITE / getpagesize());
        if (init.max_write > KBW_MAX_WRITE) init.max_write = KBW_MAX_WRITE;
        out.len = sizeof(out) + sizeof(init);
        extended[0].iov_base = &out;
        extended[0].iov_len = sizeof(out);
        extended[1].iov_base = &init;
        extended[1].iov_len = sizeof(init);
        iov = extended;
      }
    }
  }
  ssize_t res = writev(fuse_chan_fd(ch), iov, count);
  if (res == -1) {
    int err = errno;
    /* ENOENT: the request was interrupted, nobody waits for the answer */
    if (!fuse_session_exited(fuse_chan_session(ch)) && err != ENOENT) perror("fuse: writing device");
    return -err;
  }
  return 0;
}

static void kbw_destroy (struct fuse_chan *ch) {
  int fd = fuse_chan_fd(ch);
  if (fd != -1) close(fd);
}

static struct fuse_chan_ops kbw_ops = { .receive = kbw_receive, .send = kbw_send, .destroy = kbw_destroy };

/* The channel fuse_mount made, replaced by one on the same device; `ch` itself when that cannot be had. */
static struct fuse_chan *kbw_channel (struct fuse_chan *ch, fuse_thread_t *ft) {
  kbw_t *k = (kbw_t *) calloc(1, sizeof(kbw_t));
  /* A copy of the descriptor: destroying libfuse's channel closes its own. Close-on-exec:
     libfuse receives it from fusermount without, so every child of the mount (the stat
     checker's sh, a background relay) held the device open. A mount killed while such a
     child waited on it was then never aborted by the kernel: the child waited for an
     answer only the dead mount could give, and every later call on the mount hung. */
  int fd = k == NULL ? -1 : fcntl(fuse_chan_fd(ch), F_DUPFD_CLOEXEC, 0);
  struct fuse_chan *big = fd == -1 ? NULL : fuse_chan_new(&kbw_ops, fd, KBW_BUFSIZE, k);
  if (big == NULL) {
    if (fd != -1) close(fd);
    free(k);
    fcntl(fuse_chan_fd(ch), F_SETFD, FD_CLOEXEC);
    return ch;
  }
  fuse_chan_destroy(ch);
  ft->kbw = k;
  return big;
}

/* kangaroo_write_requests(thread): [requests, bytes, largest] the kernel sent as writes; undefined without the channel. */
NAPI_METHOD(kangaroo_write_requests) {
  NAPI_ARGV(1)
  NAPI_ARGV_BUFFER_CAST(fuse_thread_t *, ft, 0);
  kbw_t *k = (kbw_t *) ft->kbw;
  if (k == NULL) return NULL;
  double counts[3] = {
    (double) __atomic_load_n(&k->writes, __ATOMIC_RELAXED),
    (double) __atomic_load_n(&k->write_bytes, __ATOMIC_RELAXED),
    (double) __atomic_load_n(&k->largest_write, __ATOMIC_RELAXED),
  };
  napi_value list;
  napi_create_array_with_length(env, 3, &list);
  for (uint32_t i = 0; i < 3; i++) {
    napi_value n;
    napi_create_double(env, counts[i], &n);
    napi_set_element(env, list, i, n);
  }
  return list;
}
