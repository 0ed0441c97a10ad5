// copyBytes(target, targetOffset, source, sourceOffset, length): a memcpy
// between two Uint8Arrays at offsets. JavaScript can only copy part of one
// typed array into another through a new view object; device.dma's reads
// into a caller's buffer use this instead and allocate nothing.
#include "copy_bytes.h"

#include <cstring>

namespace vfio_user {

namespace {

bool BytesArg(napi_env env, napi_value value, uint8_t** data, size_t* length) {
  napi_typedarray_type type;
  void* bytes = nullptr;
  return napi_get_typedarray_info(env, value, &type, length, &bytes, nullptr, nullptr) == napi_ok &&
         type == napi_uint8_array && ((*data = static_cast<uint8_t*>(bytes)), true);
}

bool IndexArg(napi_env env, napi_value value, size_t* out) {
  int64_t index;
  if (napi_get_value_int64(env, value, &index) != napi_ok || index < 0) {
    return false;
  }
  *out = static_cast<size_t>(index);
  return true;
}

napi_value CopyBytes(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  uint8_t *target, *source;
  size_t target_length, source_length, target_offset, source_offset, length;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 5 ||
      !BytesArg(env, argv[0], &target, &target_length) || !IndexArg(env, argv[1], &target_offset) ||
      !BytesArg(env, argv[2], &source, &source_length) || !IndexArg(env, argv[3], &source_offset) ||
      !IndexArg(env, argv[4], &length)) {
    napi_throw_type_error(env, nullptr,
                          "copyBytes(target, targetOffset, source, sourceOffset, length) takes "
                          "Uint8Arrays and non-negative integers");
    return nullptr;
  }
  // A detached buffer has length 0 and fails here like any short one.
  if (target_offset > target_length || length > target_length - target_offset ||
      source_offset > source_length || length > source_length - source_offset) {
    napi_throw_range_error(env, nullptr, "copyBytes: the range is outside an array");
    return nullptr;
  }
  std::memmove(target + target_offset, source + source_offset, length);
  return nullptr;
}

}  // namespace

Napi::Function CreateCopyBytes(Napi::Env env) {
  napi_value fn;
  napi_create_function(env, "copyBytes", NAPI_AUTO_LENGTH, CopyBytes, nullptr, &fn);
  return Napi::Function(env, fn);
}

}  // namespace vfio_user
