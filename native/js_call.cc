#include "js_call.h"

namespace vfio_user {

bool CallJs(napi_env env, napi_async_context async_context, napi_value receiver, napi_value fn,
            size_t argc, const napi_value* argv, napi_value* result, napi_value* exception) {
  napi_value value;
  *exception = nullptr;
  if (napi_make_callback(env, async_context, receiver, fn, argc, argv, &value) == napi_ok) {
    if (result != nullptr) {
      *result = value;
    }
    return true;
  }
  bool pending = false;
  napi_value thrown;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending &&
      napi_get_and_clear_last_exception(env, &thrown) == napi_ok) {
    *exception = thrown;
  }
  return false;
}

void DetachView(napi_env env, napi_value view) {
  napi_value array_buffer;
  if (napi_get_typedarray_info(env, view, nullptr, nullptr, nullptr, &array_buffer, nullptr) ==
      napi_ok) {
    napi_detach_arraybuffer(env, array_buffer);
  }
}

}  // namespace vfio_user
