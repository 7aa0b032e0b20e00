/*
 * kangaroo: write-behind for fuse-native (inserted into fuse-native.c by
 * native/fuse-native-patches.cjs; it uses that file's types and macros).
 *
 * Without it every 128 KiB write the kernel sends waits for a round trip to the
 * JavaScript thread: the FUSE thread wakes the event loop, JavaScript copies the
 * data and answers, the FUSE thread wakes again. That round trip, not the copy,
 * capped dd through the mount at about half of local disk.
 *
 * A file opened with bit 29 of its handle number set is written behind: the FUSE
 * thread copies each write into a 1 MiB block (contiguous writes to the same
 * handle fill the same block) and answers the kernel at once. Full blocks go to
 * JavaScript in bulk through an async handle. Before any other operation reaches
 * JavaScript every queued block is handed over first, the one being filled
 * included, so a flush, fsync, read, stat or truncate sees every write the kernel
 * answered before it. At most KWB_MAX_BLOCKS blocks exist: queued or held by
 * JavaScript until it releases them (once the data is on its socket). A writer
 * beyond that waits here, which is how a slow relay slows the program down.
 *
 * Errors cannot be returned by a write that was already answered: JavaScript
 * keeps them and returns them from the next flush or fsync (as NFS does), so
 * close(2) and fsync(2) still report them.
 */

#define KWB_BIT 0x20000000
#define KWB_BLOCK (1024 * 1024)
#define KWB_MAX_BLOCKS 16
#define KWB_MAGIC 0x6b776231u

typedef struct kwb_block {
  uint32_t magic;
  struct kwb_block *next;
  uint64_t fh;
  off_t offset;
  size_t len;
  /* no more writes go into a sealed block: it may be handed to JavaScript once no copy into it is running */
  int sealed;
  int copying;
  char data[KWB_BLOCK];
} kwb_block_t;

typedef struct {
  pthread_mutex_t mut;
  pthread_cond_t room;
  /* blocks written and not yet handed to JavaScript, oldest first */
  kwb_block_t *head;
  kwb_block_t *tail;
  /* released blocks kept for reuse: memory this process has touched before is much faster to fill */
  kwb_block_t *spare;
  /* blocks queued or held by JavaScript */
  int outstanding;
  uv_async_t async;
  napi_env env;
  napi_ref ctx;
  napi_ref callback;
} kwb_t;

static kwb_block_t *kwb_block_of (void *data) {
  kwb_block_t *b = (kwb_block_t *) ((char *) data - offsetof(kwb_block_t, data));
  return b->magic == KWB_MAGIC ? b : NULL;
}

/* FUSE thread: copies one write into blocks and answers at once (waiting only for room). */
static int kwb_write (kwb_t *w, uint64_t fh, const char *buf, size_t len, off_t offset) {
  size_t total = len;
  pthread_mutex_lock(&w->mut);
  while (len > 0) {
    kwb_block_t *t = w->tail;
    if (t != NULL && !t->sealed && t->fh == fh && t->offset + (off_t) t->len == offset && t->len < KWB_BLOCK) {
      size_t n = KWB_BLOCK - t->len;
      if (n > len) n = len;
      char *into = t->data + t->len;
      t->len += n;
      if (t->len == KWB_BLOCK) t->sealed = 1;
      /* the copy runs unlocked: JavaScript releasing a block never waits for it */
      t->copying++;
      pthread_mutex_unlock(&w->mut);
      memcpy(into, buf, n);
      pthread_mutex_lock(&w->mut);
      t->copying--;
      if (t->sealed && t->copying == 0) uv_async_send(&w->async);
      buf += n;
      len -= n;
      offset += n;
      continue;
    }
    if (t != NULL && !t->sealed) {
      /* another file or a seek: the block being filled is complete */
      t->sealed = 1;
      if (t->copying == 0) uv_async_send(&w->async);
    }
    while (w->outstanding >= KWB_MAX_BLOCKS) pthread_cond_wait(&w->room, &w->mut);
    kwb_block_t *b = w->spare;
    if (b != NULL) {
      w->spare = b->next;
    } else {
      b = (kwb_block_t *) malloc(sizeof(kwb_block_t));
      if (b == NULL) {
        pthread_mutex_unlock(&w->mut);
        /* what was copied is queued; the kernel retries the rest or the program sees the error */
        return total == len ? -ENOMEM : (int) (total - len);
      }
      b->magic = KWB_MAGIC;
    }
    b->next = NULL;
    b->fh = fh;
    b->offset = offset;
    b->len = 0;
    b->sealed = 0;
    b->copying = 0;
    if (w->tail != NULL) w->tail->next = b;
    else w->head = b;
    w->tail = b;
    w->outstanding++;
  }
  pthread_mutex_unlock(&w->mut);
  return (int) total;
}

/*
 * JavaScript thread: hands the sealed blocks at the head of the queue to the
 * callback as one flat array [fh, offset, buffer, ...]; with `all`, seals the
 * block being filled first, so nothing written before this call stays behind.
 * A block still being copied into belongs to a write the kernel has not been
 * answered for, so nothing dispatched now can depend on it: it and the blocks
 * after it follow when the copy ends.
 */
static void kwb_deliver (kwb_t *w, int all) {
  pthread_mutex_lock(&w->mut);
  if (all && w->tail != NULL) w->tail->sealed = 1;
  kwb_block_t *first = w->head;
  kwb_block_t *last = NULL;
  uint32_t count = 0;
  for (kwb_block_t *b = w->head; b != NULL && b->sealed && b->copying == 0; b = b->next) {
    last = b;
    count++;
  }
  if (last != NULL) {
    w->head = last->next;
    if (w->head == NULL) w->tail = NULL;
    last->next = NULL;
  }
  pthread_mutex_unlock(&w->mut);
  if (count == 0) return;

  napi_env env = w->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value ctx, callback, list;
  napi_get_reference_value(env, w->ctx, &ctx);
  napi_get_reference_value(env, w->callback, &callback);
  napi_create_array_with_length(env, count * 3, &list);
  uint32_t i = 0;
  for (kwb_block_t *b = first; b != NULL; b = b->next) {
    napi_value fh, offset, data;
    napi_create_double(env, (double) b->fh, &fh);
    napi_create_double(env, (double) b->offset, &offset);
    napi_create_external_buffer(env, b->len, b->data, NULL, NULL, &data);
    napi_set_element(env, list, i++, fh);
    napi_set_element(env, list, i++, offset);
    napi_set_element(env, list, i++, data);
  }
  napi_value argv[1] = { list };
  NAPI_MAKE_CALLBACK(env, NULL, ctx, callback, 1, argv, NULL)
  napi_close_handle_scope(env, scope);
}

static void kwb_on_async (uv_async_t *handle) {
  kwb_deliver((kwb_t *) handle->data, 0);
}

/* kangaroo_wb_attach(thread, callback): turns write-behind on for handles with bit 29 set. */
NAPI_METHOD(kangaroo_wb_attach) {
  NAPI_ARGV(2)
  NAPI_ARGV_BUFFER_CAST(fuse_thread_t *, ft, 0);
  if (ft->kwb != NULL) return NULL;
  kwb_t *w = (kwb_t *) calloc(1, sizeof(kwb_t));
  if (w == NULL) {
    napi_throw_error(env, "ENOMEM", "no memory for write-behind");
    return NULL;
  }
  pthread_mutex_init(&w->mut, NULL);
  pthread_cond_init(&w->room, NULL);
  w->env = env;
  napi_create_reference(env, argv[0], 1, &w->ctx);
  napi_create_reference(env, argv[1], 1, &w->callback);
  uv_async_init(uv_default_loop(), &w->async, kwb_on_async);
  w->async.data = w;
  /* queued blocks never keep the process alive: unmount drains them explicitly */
  uv_unref((uv_handle_t *) &w->async);
  ft->kwb = w;
  return NULL;
}

/* kangaroo_wb_release(thread, buffer): JavaScript is done with a block's data. */
NAPI_METHOD(kangaroo_wb_release) {
  NAPI_ARGV(2)
  NAPI_ARGV_BUFFER_CAST(fuse_thread_t *, ft, 0);
  kwb_t *w = (kwb_t *) ft->kwb;
  void *data;
  size_t len;
  if (w == NULL || napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok || data == NULL) return NULL;
  kwb_block_t *b = kwb_block_of(data);
  if (b == NULL) {
    napi_throw_error(env, "EINVAL", "not a write-behind block");
    return NULL;
  }
  /* a stray use of the data after this would read a reused block: detach the view instead */
  napi_value arraybuffer;
  if (IS_ARRAY_BUFFER_DETACH_SUPPORTED == 1 && napi_get_typedarray_info(env, argv[1], NULL, NULL, NULL, &arraybuffer, NULL) == napi_ok) {
    napi_detach_arraybuffer(env, arraybuffer);
  }
  pthread_mutex_lock(&w->mut);
  b->next = w->spare;
  w->spare = b;
  w->outstanding--;
  pthread_cond_broadcast(&w->room);
  pthread_mutex_unlock(&w->mut);
  return NULL;
}

/* kangaroo_wb_drain(thread): hands every queued block to JavaScript now (commit, unmount). */
NAPI_METHOD(kangaroo_wb_drain) {
  NAPI_ARGV(1)
  NAPI_ARGV_BUFFER_CAST(fuse_thread_t *, ft, 0);
  if (ft->kwb != NULL) kwb_deliver((kwb_t *) ft->kwb, 1);
  return NULL;
}
