// FdWatcher: a uv_poll_t on any fd for JS (the client's socket, eventfds):
// onEvent(readable, writable, error) runs on the JS thread.
#ifndef VFIO_USER_NATIVE_FD_WATCHER_H
#define VFIO_USER_NATIVE_FD_WATCHER_H

#include <napi.h>

#include "addon_data.h"
#include "poll_driver.h"

namespace vfio_user {

class FdWatcher : public Napi::ObjectWrap<FdWatcher> {
 public:
  static Napi::Function Define(Napi::Env env);

  explicit FdWatcher(const Napi::CallbackInfo& info);
  ~FdWatcher() override;

  // Stops without calling JS: the environment is going away.
  void CloseForTeardown();

 private:
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value Stop(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value DoRef(const Napi::CallbackInfo& info);
  Napi::Value DoUnref(const Napi::CallbackInfo& info);

  static void OnPoll(void* self, int status, int events);
  // Holds or drops the reference that keeps a watching object alive.
  void KeepAlive(bool keep);

  napi_env env_;
  AddonData* addon_;
  PollDriver poll_;
  int fd_ = -1;
  bool closed_ = false;
  bool kept_alive_ = false;
  Napi::FunctionReference on_event_;
  napi_async_context async_context_ = nullptr;
};

}  // namespace vfio_user

#endif
