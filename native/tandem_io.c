// tandem's one native helper: positional reads that never block. preadv2 with
// RWF_NOWAIT reads at once what the page cache holds and otherwise fails with
// EAGAIN without waiting, so tandemd serves cache hits on its event loop and
// sends only misses to libuv's thread pool (src/storage/file.ts). The call
// returns the bytes read, or -errno; it never throws. (Buffered writes with
// RWF_NOWAIT get EOPNOTSUPP on ext4, so there is no write counterpart.)
#define _GNU_SOURCE
#define _FILE_OFFSET_BITS 64
#include <errno.h>
#include <node_api.h>
#include <sys/uio.h>

// Offsets past 2 GiB must not wrap where long is 32 bits.
_Static_assert(sizeof(off_t) == 8, "off_t must be 64 bits");

#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008
#endif


static napi_value result(napi_env env, double value) {
  napi_value out;
  napi_create_double(env, value, &out);
  return out;
}

// preadNowait(fd, Uint8Array, offset) -> bytes read, or -errno (-EAGAIN: not cached).
static napi_value pread_nowait(napi_env env, napi_callback_info info) {
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
  do n = preadv2(fd, &iov, 1, (off_t)off, RWF_NOWAIT);
  while (n < 0 && errno == EINTR);
  return result(env, n < 0 ? -errno : (double)n);
}


NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "preadNowait", NAPI_AUTO_LENGTH, pread_nowait, NULL, &fn);
  napi_set_named_property(env, exports, "preadNowait", fn);
  return exports;
}
