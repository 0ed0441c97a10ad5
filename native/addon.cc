// Module initialisation, once per Node environment (main thread, each
// worker): the per-environment data, the exports, and the teardown that
// closes what JS left open.
#include <napi.h>
#include <uv.h>

#include "addon_data.h"
#include "copy_bytes.h"
#include "device_context.h"
#include "fd_watcher.h"
#include "js_call.h"
#include "os_helpers.h"

namespace vfio_user {

AddonData::AddonData(Napi::Env env) : env(env), handles(new HandleCount()) {
  napi_get_uv_event_loop(env, &loop);
}

AddonData::~AddonData() {
  // Teardown waits for every handle to close; should one still be open, its
  // close callback needs the counter, which is then left behind.
  if (handles->open() == 0) {
    delete handles;
  }
}

namespace {

void FinishTeardown(void* arg) {
  AddonData* data = static_cast<AddonData*>(arg);
  napi_async_cleanup_hook_handle hook = data->cleanup_hook;
  data->cleanup_hook = nullptr;
  napi_remove_async_cleanup_hook(hook);
}

// The environment is going away (worker exit, or the main thread's loop
// ended): no more JS. Close every device and watcher, then let Node finish
// once their uv handles are closed; Node runs the loop until then.
void Teardown(napi_async_cleanup_hook_handle hook, void* arg) {
  AddonData* data = static_cast<AddonData*>(arg);
  data->tearing_down = true;
  // Closing detaches the buffers JS was given, which takes handles: a
  // worker's teardown runs with no scope open.
  HandleScope scope(data->env);
  std::vector<DeviceContext*> contexts(data->contexts.begin(), data->contexts.end());
  for (DeviceContext* context : contexts) {
    context->CloseForTeardown();
  }
  std::vector<FdWatcher*> watchers(data->watchers.begin(), data->watchers.end());
  for (FdWatcher* watcher : watchers) {
    watcher->CloseForTeardown();
  }
  data->handles->WhenZero(FinishTeardown, data);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  AddonData* data = new AddonData(env);
  env.SetInstanceData(data);
  if (data->loop == nullptr ||
      napi_add_async_cleanup_hook(env, Teardown, data, &data->cleanup_hook) != napi_ok) {
    Napi::Error::New(env, "vfio_user: cannot set up the addon").ThrowAsJavaScriptException();
    return exports;
  }

  exports.Set("DeviceContext", DeviceContext::Define(env));

  Napi::Object os = CreateOsHelpers(env);
  os.Set("FdWatcher", FdWatcher::Define(env));
  exports.Set("os", os);
  exports.Set("copyBytes", CreateCopyBytes(env));
#ifdef VFIO_USER_EXT
  exports.Set("libraryExtensions", Napi::Boolean::New(env, true));
#else
  exports.Set("libraryExtensions", Napi::Boolean::New(env, false));
#endif
  return exports;
}

}  // namespace

}  // namespace vfio_user

// The module macro needs a plain identifier.
static Napi::Object InitVfioUser(Napi::Env env, Napi::Object exports) {
  return vfio_user::Init(env, exports);
}

NODE_API_MODULE(vfio_user, InitVfioUser)
