/*
 * kangaroo-malloc.node: tunes glibc's allocator for a process that moves data in
 * 1 MiB buffers (a relay receiving puts, a mount sending them).
 *
 * By default glibc serves each 1 MiB buffer with its own mmap and gives it back with
 * munmap when the buffer is freed, so every frame a relay receives lands in memory
 * the kernel must fault in and zero again: in a 1 GiB write through a mount, the
 * first hop took 70-78 thousand page faults. With the heap serving such buffers and
 * keeping freed memory for the next ones, it took about 36 thousand, and its CPU time
 * fell from 2.8-3.9 s to 1.9 s (scripts/bench, measurement 6).
 *
 * The price is memory: up to `trim` bytes of freed heap stay with the process.
 * Built by native/Makefile as a Node-API module; tune() returns false where the C
 * library has no mallopt (not glibc), and the process then runs untuned.
 */
#include <node_api.h>
#include <stdint.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

static int32_t arg_int32 (napi_env env, napi_value v) {
  int32_t n = 0;
  napi_get_value_int32(env, v, &n);
  return n;
}

/* tune(mmapThreshold, trimThreshold, topPad): mallopt each; true if all three took */
static napi_value tune (napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int ok = 0;
#if defined(__GLIBC__)
  if (argc == 3) {
    ok = mallopt(M_MMAP_THRESHOLD, arg_int32(env, argv[0])) == 1
      && mallopt(M_TRIM_THRESHOLD, arg_int32(env, argv[1])) == 1
      && mallopt(M_TOP_PAD, arg_int32(env, argv[2])) == 1;
  }
#endif
  napi_value result;
  napi_get_boolean(env, ok, &result);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "tune", NAPI_AUTO_LENGTH, tune, NULL, &fn);
  napi_set_named_property(env, exports, "tune", fn);
  return exports;
}
