// What the addon keeps per Node environment (the main thread and each worker
// has its own): its uv loop, the live objects to close when the environment
// goes away, and its uv handles that are not closed yet.
#ifndef VFIO_USER_NATIVE_ADDON_DATA_H
#define VFIO_USER_NATIVE_ADDON_DATA_H

#include <unordered_set>

#include <napi.h>

#include "poll_driver.h"

namespace vfio_user {

class DeviceContext;
class FdWatcher;

struct AddonData {
  explicit AddonData(Napi::Env env);
  ~AddonData();

  napi_env env;
  uv_loop_t* loop = nullptr;
  std::unordered_set<DeviceContext*> contexts;
  std::unordered_set<FdWatcher*> watchers;
  // Heap-allocated so that a handle closed after this object (which
  // teardown is designed never to do) finds it still there.
  HandleCount* handles;
  // Set once the environment is being torn down: no JS may run any more.
  bool tearing_down = false;
  napi_async_cleanup_hook_handle cleanup_hook = nullptr;
};

}  // namespace vfio_user

#endif
