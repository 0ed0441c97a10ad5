// FdWatcher: watching an fd from JS with a uv_poll_t.
#include "fd_watcher.h"

#include "args.h"
#include "errors.h"
#include "js_call.h"

namespace vfio_user {

Napi::Function FdWatcher::Define(Napi::Env env) {
  return DefineClass(env, "FdWatcher",
                     {
                         InstanceMethod<&FdWatcher::Start>("start"),
                         InstanceMethod<&FdWatcher::Stop>("stop"),
                         InstanceMethod<&FdWatcher::Close>("close"),
                         InstanceMethod<&FdWatcher::DoRef>("ref"),
                         InstanceMethod<&FdWatcher::DoUnref>("unref"),
                     });
}

FdWatcher::FdWatcher(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<FdWatcher>(info),
      env_(info.Env()),
      addon_(info.Env().GetInstanceData<AddonData>()),
      poll_(addon_->loop, addon_->handles, OnPoll, this) {
  Napi::Env env = info.Env();
  addon_->watchers.insert(this);
  if (!FdArg(info, 0, &fd_)) {
    return;
  }
  if (!info[1].IsFunction()) {
    ThrowType(env, "onEvent must be a function");
    return;
  }
  on_event_ = Napi::Persistent(info[1].As<Napi::Function>());
  napi_value name;
  napi_create_string_utf8(env, "vfio-user:FdWatcher", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, info.This(), name, &async_context_);
}

FdWatcher::~FdWatcher() {
  poll_.Close();
  if (async_context_ != nullptr) {
    napi_async_destroy(env_, async_context_);
  }
  addon_->watchers.erase(this);
}

void FdWatcher::CloseForTeardown() {
  closed_ = true;
  poll_.Close();
  KeepAlive(false);
}

void FdWatcher::KeepAlive(bool keep) {
  if (keep != kept_alive_) {
    kept_alive_ = keep;
    if (keep) {
      Ref();
    } else {
      Unref();
    }
  }
}

Napi::Value FdWatcher::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_) {
    ThrowErrno(env, EBADF, "FdWatcher.start");
    return env.Undefined();
  }
  int events = (info[0].ToBoolean().Value() ? UV_READABLE : 0) |
               (info[1].ToBoolean().Value() ? UV_WRITABLE : 0);
  if (events == 0) {
    poll_.Stop();
    KeepAlive(false);
    return env.Undefined();
  }
  int err = poll_.Watch(fd_, events, false);
  if (err != 0) {
    ThrowErrno(env, -err, "uv_poll_start");
    return env.Undefined();
  }
  KeepAlive(true);
  return env.Undefined();
}

Napi::Value FdWatcher::Stop(const Napi::CallbackInfo& info) {
  poll_.Stop();
  KeepAlive(false);
  return info.Env().Undefined();
}

Napi::Value FdWatcher::Close(const Napi::CallbackInfo& info) {
  closed_ = true;
  poll_.Close();
  KeepAlive(false);
  // No callback follows a close: end the async resource now rather than at GC.
  if (async_context_ != nullptr) {
    napi_async_destroy(env_, async_context_);
    async_context_ = nullptr;
  }
  return info.Env().Undefined();
}

Napi::Value FdWatcher::DoRef(const Napi::CallbackInfo& info) {
  poll_.SetRef(true);
  return info.Env().Undefined();
}

Napi::Value FdWatcher::DoUnref(const Napi::CallbackInfo& info) {
  poll_.SetRef(false);
  return info.Env().Undefined();
}

void FdWatcher::OnPoll(void* arg, int status, int events) {
  FdWatcher* self = static_cast<FdWatcher*>(arg);
  if (self->addon_->tearing_down) {
    return;
  }
  napi_env env = self->env_;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) {
    return;
  }
  if (status < 0) {
    // libuv has stopped the handle.
    self->KeepAlive(false);
  }
  napi_value argv[3], fn, receiver, exception;
  napi_get_boolean(env, status == 0 && (events & (UV_READABLE | UV_DISCONNECT)), &argv[0]);
  napi_get_boolean(env, status == 0 && (events & UV_WRITABLE), &argv[1]);
  napi_create_int32(env, status < 0 ? -status : 0, &argv[2]);
  napi_get_reference_value(env, self->on_event_, &fn);
  receiver = self->Value();
  if (!CallJs(env, self->async_context_, receiver, fn, 3, argv, nullptr, &exception) &&
      exception != nullptr) {
    // As for any event callback that throws.
    napi_fatal_exception(env, exception);
  }
  napi_close_handle_scope(env, scope);
}

}  // namespace vfio_user
