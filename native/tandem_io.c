// tandem's one native helper: positional reads and writes that never block.
// preadv2/pwritev2 with RWF_NOWAIT do the I/O at once when the page cache can
// (the data is cached; the write needs no disk I/O or throttling) and otherwise
// fail with EAGAIN without waiting, so tandemd serves cache hits on its event
// loop and sends only misses to libuv's thread pool (src/storage/file.ts).
// Each call returns the bytes done, or -errno; it never throws.
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <sys/uio.h>

#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008
#endif

typedef ssize_t (*io_fn)(int, const struct iovec *, int, off_t, int);

static ssize_t do_read(int fd, const struct iovec *iov, int n, off_t off, int flags) {
  return preadv2(fd, iov, n, off, flags);
}

static ssize_t do_write(int fd, const struct iovec *iov, int n, off_t off, int flags) {
  return pwritev2(fd, iov, n, off, flags);
}

static napi_value result(napi_env env, double value) {
  napi_value out;
  napi_create_double(env, value, &out);
  return out;
}

// (fd, Uint8Array, offset) -> bytes done, or -errno (-EAGAIN: would block).
static napi_value nowait(napi_env env, napi_callback_info info, io_fn fn) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 3) return result(env, -EINVAL);
  int32_t fd;
  int64_t off;
  bool is_typed;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok) return result(env, -EINVAL);
  if (napi_get_value_int64(env, argv[2], &off) != napi_ok || off < 0) return result(env, -EINVAL);
  if (napi_is_typedarray(env, argv[1], &is_typed) != napi_ok || !is_typed) return result(env, -EINVAL);
  napi_typedarray_type type;
  size_t length;
  void *data;
  if (napi_get_typedarray_info(env, argv[1], &type, &length, &data, NULL, NULL) != napi_ok ||
      type != napi_uint8_array)
    return result(env, -EINVAL);
  struct iovec iov = {data, length};
  ssize_t n;
  do n = fn(fd, &iov, 1, (off_t)off, RWF_NOWAIT);
  while (n < 0 && errno == EINTR);
  return result(env, n < 0 ? -errno : (double)n);
}

static napi_value pread_nowait(napi_env env, napi_callback_info info) { return nowait(env, info, do_read); }
static napi_value pwrite_nowait(napi_env env, napi_callback_info info) { return nowait(env, info, do_write); }

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "preadNowait", NAPI_AUTO_LENGTH, pread_nowait, NULL, &fn);
  napi_set_named_property(env, exports, "preadNowait", fn);
  napi_create_function(env, "pwriteNowait", NAPI_AUTO_LENGTH, pwrite_nowait, NULL, &fn);
  napi_set_named_property(env, exports, "pwriteNowait", fn);
  return exports;
}
