// Small helpers every addon file uses around N-API calls into JS: a handle
// scope, a callback that hands back its exception instead of leaving it
// pending, and detaching a view that must not outlive the memory under it.
#ifndef VFIO_USER_NATIVE_JS_CALL_H
#define VFIO_USER_NATIVE_JS_CALL_H

#include <node_api.h>

namespace vfio_user {

// A handle scope: the values made while it lives die with it.
class HandleScope {
 public:
  explicit HandleScope(napi_env env) : env_(env) {
    ok_ = napi_open_handle_scope(env, &scope_) == napi_ok;
  }
  ~HandleScope() {
    if (ok_) {
      napi_close_handle_scope(env_, scope_);
    }
  }
  HandleScope(const HandleScope&) = delete;
  HandleScope& operator=(const HandleScope&) = delete;
  bool ok() const { return ok_; }

 private:
  napi_env env_;
  napi_handle_scope scope_ = nullptr;
  bool ok_;
};

// Calls fn through napi_make_callback (so queued ticks and promise jobs run
// after it). True when it returned; otherwise false, with the exception it
// threw taken off the environment into *exception (nullptr when there is
// none, as when the environment runs no more JS). result may be null.
bool CallJs(napi_env env, napi_async_context async_context, napi_value receiver, napi_value fn,
            size_t argc, const napi_value* argv, napi_value* result, napi_value* exception);

// Detaches the ArrayBuffer under a typed array or Buffer, so that JS keeps
// no way into memory it was only lent for one call.
void DetachView(napi_env env, napi_value view);

}  // namespace vfio_user

#endif
