// DeviceContext: the JS-facing object around one vfu_ctx_t: its class,
// construction and end, and the brackets around library calls. By concern:
// device_setup.cc (describing the device), device_buffers.cc (views of the
// library's memory), device_interrupts.cc, device_dma.cc, device_serving.cc
// (the uv_poll_t on the library's poll fd), device_callbacks.cc and
// migration_callbacks.cc (the library's calls into JS).
#include "device_context.h"

#include <cerrno>
#include <string>

#include "errors.h"

namespace vfio_user {

// One row per group of handlers.
// clang-format off
const char* const DeviceContext::kHandlerNames[kHandlerCount] = {
    "regionAccess", "reset", "irqState", "dmaRegister", "dmaUnregister",
    "connect", "disconnect", "log", "error", "quiesce",
    "migrationTransition", "migrationRead", "migrationWrite",
    "slowAccess",
};
// clang-format on

Napi::Function DeviceContext::Define(Napi::Env env) {
  return DefineClass(env, "DeviceContext",
                     {
                         InstanceMethod<&DeviceContext::PciInit>("pciInit"),
                         InstanceMethod<&DeviceContext::SetIds>("setIds"),
                         InstanceMethod<&DeviceContext::SetClass>("setClass"),
                         InstanceMethod<&DeviceContext::SetRevision>("setRevision"),
                         InstanceMethod<&DeviceContext::SetupRegion>("setupRegion"),
                         InstanceMethod<&DeviceContext::AddCapability>("addCapability"),
                         InstanceMethod<&DeviceContext::SetupIrqs>("setupIrqs"),
                         InstanceMethod<&DeviceContext::SetupDma>("setupDma"),
                         InstanceMethod<&DeviceContext::CreateIoeventfd>("createIoeventfd"),
                         InstanceMethod<&DeviceContext::SetLogLevel>("setLogLevel"),
                         InstanceMethod<&DeviceContext::SetSlowAccessMs>("setSlowAccessMs"),
                         InstanceMethod<&DeviceContext::Realize>("realize"),
                         InstanceMethod<&DeviceContext::ConfigSpace>("configSpace"),
                         InstanceMethod<&DeviceContext::Start>("start"),
                         InstanceMethod<&DeviceContext::Close>("close"),
                         InstanceMethod<&DeviceContext::InterruptMode>("interruptMode"),
                         InstanceMethod<&DeviceContext::IrqVectorState>("irqVectorState"),
                         InstanceMethod<&DeviceContext::SetupMigration>("setupMigration"),
                         InstanceMethod<&DeviceContext::MarkDirty>("markDirty"),
                         InstanceMethod<&DeviceContext::MsixTable>("msixTable"),
                         InstanceMethod<&DeviceContext::RestoreMsix>("restoreMsix"),
                         InstanceMethod<&DeviceContext::DmaTransfer>("dmaTransfer"),
                         InstanceMethod<&DeviceContext::DirtyGranule>("dirtyGranule"),
                         InstanceAccessor<&DeviceContext::GetConnected>("connected"),
                     });
}

DeviceContext::DeviceContext(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<DeviceContext>(info),
      env_(info.Env()),
      addon_(info.Env().GetInstanceData<AddonData>()),
      poll_(addon_->loop, addon_->handles, OnPoll, this) {
  Napi::Env env = info.Env();
  addon_->contexts.insert(this);
  if (!info[0].IsString()) {
    ThrowType(env, "socketPath must be a string");
    return;
  }
  if (!info[1].IsObject()) {
    ThrowType(env, "handlers must be an object");
    return;
  }
  if (!info[2].IsArray() || info[2].As<Napi::Array>().Length() < kIoViewBytes + 1) {
    ThrowType(env, "ioViews must be an array of 65 Buffers");
    return;
  }

  Napi::Object handlers = info[1].As<Napi::Object>();
  for (int h = 0; h < kHandlerCount; h++) {
    Napi::Value fn = handlers.Get(kHandlerNames[h]);
    if (env.IsExceptionPending()) {
      return;
    }
    if (fn.IsFunction()) {
      handlers_fn_[h] = Napi::Persistent(fn.As<Napi::Function>());
    } else if (!fn.IsUndefined()) {
      std::string message = std::string("handlers.") + kHandlerNames[h] + " must be a function";
      ThrowType(env, message.c_str());
      return;
    }
  }
  handlers_ = Napi::Persistent(handlers);

  // ioViews[n] is n bytes long, every one over the same memory.
  Napi::Array views = info[2].As<Napi::Array>();
  for (uint32_t n = 0; n <= kIoViewBytes; n++) {
    Napi::Value view = views.Get(n);
    if (env.IsExceptionPending()) {
      return;
    }
    if (!view.IsTypedArray() || view.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
        view.As<Napi::Uint8Array>().ElementLength() != n) {
      ThrowType(env, "ioViews[n] must be a Buffer of n bytes");
      return;
    }
    uint8_t* data = view.As<Napi::Uint8Array>().Data();
    if (n == kIoViewBytes) {
      io_bytes_ = data;
    }
    napi_create_reference(env, view, 1, &io_views_[n]);
  }
  for (uint32_t n = 1; n < kIoViewBytes; n++) {
    if (views.Get(n).As<Napi::Uint8Array>().Data() != io_bytes_) {
      ThrowType(env, "ioViews must all start at the same byte");
      return;
    }
  }

  napi_value resource_name;
  napi_create_string_utf8(env, "vfio-user:DeviceContext", NAPI_AUTO_LENGTH, &resource_name);
  if (napi_async_init(env, handlers, resource_name, &async_context_) != napi_ok) {
    return;
  }

  std::string path = info[0].As<Napi::String>().Utf8Value();
  ctx_ = vfu_create_ctx(VFU_TRANS_SOCK, path.c_str(), LIBVFIO_USER_FLAG_ATTACH_NB, this,
                        VFU_DEV_TYPE_PCI);
  if (ctx_ == nullptr) {
    ThrowErrno(env, errno, "vfu_create_ctx");
    return;
  }
  // irqTrigger as an own property whose function knows this object: a call
  // then costs no napi_unwrap (a private-symbol lookup on the receiver).
  trigger_handle_ = new TriggerHandle{this, 2};
  napi_value trigger;
  if (napi_create_function(env, "irqTrigger", NAPI_AUTO_LENGTH, IrqTriggerEntry, trigger_handle_,
                           &trigger) != napi_ok ||
      napi_add_finalizer(
          env, trigger, trigger_handle_,
          [](napi_env, void* data, void*) {
            ReleaseTriggerHandle(static_cast<TriggerHandle*>(data));
          },
          nullptr, nullptr) != napi_ok) {
    trigger_handle_->owners = 1;  // the function will not release it
    return;
  }
  info.This().As<Napi::Object>().Set("irqTrigger", Napi::Value(env, trigger));
  vfu_setup_device_reset_cb(ctx_, ResetCb);
  if (HasHandler(kQuiesce)) {
    vfu_setup_device_quiesce_cb(ctx_, QuiesceCb);
  }
  if (HasHandler(kLog)) {
    vfu_setup_log(ctx_, LogCb, LOG_INFO);
  }
}

DeviceContext::~DeviceContext() {
  // Finalizers must not run JS; the environment may be going away too.
  js_disabled_ = true;
  if (trigger_handle_ != nullptr) {
    trigger_handle_->context = nullptr;
    ReleaseTriggerHandle(trigger_handle_);
  }
  if (ctx_ != nullptr) {
    poll_.Close();
    vfu_destroy_ctx(ctx_);
    ctx_ = nullptr;
  }
  DetachAllBuffers();
  // vfu_destroy_ctx finished every transfer; nothing is left to release.
  for (napi_ref& ref : io_views_) {
    if (ref != nullptr) {
      napi_delete_reference(env_, ref);
    }
  }
  for (napi_ref ref : errors_) {
    napi_delete_reference(env_, ref);
  }
  if (async_context_ != nullptr) {
    napi_async_destroy(env_, async_context_);
  }
  addon_->contexts.erase(this);
}

void DeviceContext::CloseForTeardown() {
  js_disabled_ = true;
  Destroy();
}

bool DeviceContext::CheckOpen(Napi::Env env, const char* method) {
  if (ctx_ == nullptr || close_requested_) {
    ThrowErrno(env, EBADF, method);
    return false;
  }
  return true;
}

// Every library call that may call a handler goes between Enter() and
// Leave(): a close() from inside a handler waits until the library returns,
// and the handlers' exceptions are reported once it has.
void DeviceContext::Enter() {
  in_library_++;
}

bool DeviceContext::Leave(bool from_js) {
  in_library_--;
  if (in_library_ == 0 && close_requested_) {
    Destroy();
  }
  return ReportErrors(from_js);
}

Napi::Value DeviceContext::Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (ctx_ == nullptr || close_requested_) {
    return env.Undefined();
  }
  if (in_library_ > 0) {
    // Called by a handler: the library is still using the context.
    close_requested_ = true;
    poll_.Stop();
    return env.Undefined();
  }
  Destroy();
  ReportErrors(true);
  return env.Undefined();
}

Napi::Value DeviceContext::GetConnected(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), connected_);
}

void DeviceContext::Destroy() {
  if (ctx_ == nullptr) {
    return;
  }
  // Stopped before the library closes the fds it watches.
  poll_.Close();
  vfu_ctx_t* ctx = ctx_;
  in_library_++;
  vfu_destroy_ctx(ctx);  // the device hears reset(LOST_CONN)
  in_library_--;
  ctx_ = nullptr;
  close_requested_ = false;
  DetachAllBuffers();
  if (connected_) {
    connected_ = false;
    if (CanCallJs() && HasHandler(kDisconnect)) {
      CallHandler(kDisconnect, 0, nullptr, nullptr);
    }
  }
  if (started_) {
    started_ = false;
    Unref();
  }
  // The context is done: async hooks (and jest --detectOpenHandles) see it
  // end now, not when the GC collects the object. Later error reports go
  // out with no async context, which N-API allows.
  if (async_context_ != nullptr) {
    napi_async_destroy(env_, async_context_);
    async_context_ = nullptr;
  }
}

}  // namespace vfio_user
