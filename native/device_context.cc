// DeviceContext: the JS-facing object around one vfu_ctx_t, its setup
// methods, and serving it from a uv_poll_t on the library's poll fd.
// The library's callbacks into JS are in device_callbacks.cc.
#include "device_context.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include <linux/pci_regs.h>
#include <sys/mman.h>

#ifdef VFIO_USER_VENDORED
#include "library_internals.h"
#endif

#include "args.h"
#include "errors.h"

namespace vfio_user {

namespace {

// Consecutive poll errors, with nothing served in between, after which a
// device stops polling instead of spinning on a broken fd.
constexpr int kMaxRepeatedPollErrors = 3;

size_t ConfigSizeOfType(int pci_type) {
  return pci_type == VFU_PCI_TYPE_PCI_X_2 || pci_type == VFU_PCI_TYPE_EXPRESS
             ? PCI_CFG_SPACE_EXP_SIZE
             : PCI_CFG_SPACE_SIZE;
}

}  // namespace

const char* const DeviceContext::kHandlerNames[kHandlerCount] = {
    "regionAccess", "reset",  "irqState", "dmaRegister", "dmaUnregister",
    "attach",       "detach", "log",      "error",       "quiesce",
    "migrationTransition", "migrationRead", "migrationWrite",
};

Napi::Function DeviceContext::Define(Napi::Env env) {
  return DefineClass(
      env, "DeviceContext",
      {
          InstanceMethod<&DeviceContext::PciInit>("pciInit"),
          InstanceMethod<&DeviceContext::SetIds>("setIds"),
          InstanceMethod<&DeviceContext::SetClass>("setClass"),
          InstanceMethod<&DeviceContext::SetRevision>("setRevision"),
          InstanceMethod<&DeviceContext::SetupRegion>("setupRegion"),
          InstanceMethod<&DeviceContext::AddCapability>("addCapability"),
          InstanceMethod<&DeviceContext::SetupIrqs>("setupIrqs"),
          InstanceMethod<&DeviceContext::SetupDma>("setupDma"),
          InstanceMethod<&DeviceContext::SetLogLevel>("setLogLevel"),
          InstanceMethod<&DeviceContext::Realize>("realize"),
          InstanceMethod<&DeviceContext::ConfigSpace>("configSpace"),
          InstanceMethod<&DeviceContext::Start>("start"),
          InstanceMethod<&DeviceContext::Close>("close"),
          InstanceMethod<&DeviceContext::MsixVectorMasked>("msixVectorMasked"),
          InstanceMethod<&DeviceContext::MsixPending>("msixPending"),
          InstanceMethod<&DeviceContext::SetupMigration>("setupMigration"),
          InstanceMethod<&DeviceContext::MarkDirty>("markDirty"),
          InstanceMethod<&DeviceContext::MsixTable>("msixTable"),
          InstanceMethod<&DeviceContext::RestoreMsix>("restoreMsix"),
          InstanceMethod<&DeviceContext::DmaTransfer>("dmaTransfer"),
          InstanceMethod<&DeviceContext::DirtyGranule>("dirtyGranule"),
          InstanceAccessor<&DeviceContext::GetAttached>("attached"),
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
      std::string message = std::string("handlers.") + kHandlerNames[h] +
                            " must be a function";
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
    if (!view.IsTypedArray() ||
        view.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
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
  napi_create_string_utf8(env, "vfio-user:DeviceContext", NAPI_AUTO_LENGTH,
                          &resource_name);
  if (napi_async_init(env, handlers, resource_name, &async_context_) != napi_ok) {
    return;
  }

  std::string path = info[0].As<Napi::String>().Utf8Value();
  ctx_ = vfu_create_ctx(VFU_TRANS_SOCK, path.c_str(), LIBVFIO_USER_FLAG_ATTACH_NB,
                        this, VFU_DEV_TYPE_PCI);
  if (ctx_ == nullptr) {
    ThrowErrno(env, errno, "vfu_create_ctx");
    return;
  }
  // irqTrigger as an own property whose function knows this object: a call
  // then costs no napi_unwrap (a private-symbol lookup on the receiver).
  trigger_handle_ = new TriggerHandle{this, 2};
  napi_value trigger;
  if (napi_create_function(env, "irqTrigger", NAPI_AUTO_LENGTH, IrqTriggerEntry,
                           trigger_handle_, &trigger) != napi_ok ||
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

// --------------------------------------------------------------- library calls

// Every library call that may call a handler goes between Enter() and
// Leave(): a close() from inside a handler waits until the library returns,
// and the handlers' exceptions are reported once it has.
void DeviceContext::Enter() { in_library_++; }

bool DeviceContext::Leave(bool from_js) {
  in_library_--;
  if (in_library_ == 0 && close_requested_) {
    Destroy();
  }
  return ReportErrors(from_js);
}

Napi::Value DeviceContext::PciInit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int type;
  if (!CheckOpen(env, "pciInit") || !IntArg(info, 0, "type", 0, INT32_MAX, &type)) {
    return env.Undefined();
  }
  Enter();
  int ret = vfu_pci_init(ctx_, static_cast<vfu_pci_type_t>(type),
                         PCI_HEADER_TYPE_NORMAL, 0);
  int err = errno;
  if (Leave(true) && ret < 0) {
    ThrowErrno(env, err, "vfu_pci_init");
  } else if (ret == 0) {
    config_size_ = ConfigSizeOfType(type);
  }
  return env.Undefined();
}

vfu_pci_config_space_t* DeviceContext::RequireConfigSpace(Napi::Env env,
                                                          const char* syscall) {
  vfu_pci_config_space_t* config = vfu_pci_get_config_space(ctx_);
  if (config == nullptr) {
    // The library would write through a null pointer.
    ThrowErrno(env, EINVAL, syscall);
  }
  return config;
}

Napi::Value DeviceContext::SetIds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int vendor, device, sub_vendor, sub_device;
  if (!CheckOpen(env, "setIds") ||
      !IntArg(info, 0, "vendor", 0, UINT16_MAX, &vendor) ||
      !IntArg(info, 1, "device", 0, UINT16_MAX, &device) ||
      !IntArg(info, 2, "subVendor", 0, UINT16_MAX, &sub_vendor) ||
      !IntArg(info, 3, "subDevice", 0, UINT16_MAX, &sub_device) ||
      RequireConfigSpace(env, "vfu_pci_set_id") == nullptr) {
    return env.Undefined();
  }
  vfu_pci_set_id(ctx_, vendor, device, sub_vendor, sub_device);
  return env.Undefined();
}

Napi::Value DeviceContext::SetClass(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int base, sub, prog_if;
  if (!CheckOpen(env, "setClass") || !IntArg(info, 0, "base", 0, UINT8_MAX, &base) ||
      !IntArg(info, 1, "sub", 0, UINT8_MAX, &sub) ||
      !IntArg(info, 2, "progIf", 0, UINT8_MAX, &prog_if) ||
      RequireConfigSpace(env, "vfu_pci_set_class") == nullptr) {
    return env.Undefined();
  }
  vfu_pci_set_class(ctx_, base, sub, prog_if);
  return env.Undefined();
}

Napi::Value DeviceContext::SetRevision(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int revision;
  if (!CheckOpen(env, "setRevision") ||
      !IntArg(info, 0, "revision", 0, UINT8_MAX, &revision)) {
    return env.Undefined();
  }
  vfu_pci_config_space_t* config = RequireConfigSpace(env, "setRevision");
  if (config != nullptr) {
    config->hdr.rid = static_cast<uint8_t>(revision);
  }
  return env.Undefined();
}

Napi::Value DeviceContext::SetupRegion(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int index, flags, fd = -1;
  uint64_t size;
  if (!CheckOpen(env, "setupRegion") ||
      !IntArg(info, 0, "index", 0, VFU_PCI_DEV_NUM_REGIONS - 1, &index) ||
      !SizeArg(info, 1, "size", &size) ||
      !IntArg(info, 2, "flags", 0, INT32_MAX, &flags)) {
    return env.Undefined();
  }
  if (!info[3].IsUndefined() && !info[3].IsNull() && !FdArg(info, 3, &fd)) {
    return env.Undefined();
  }
  std::vector<struct iovec> areas;
  if (!info[4].IsUndefined() && !info[4].IsNull()) {
    if (!info[4].IsArray()) {
      ThrowType(env, "mmapAreas must be an array of [offset, size] pairs");
      return env.Undefined();
    }
    Napi::Array list = info[4].As<Napi::Array>();
    for (uint32_t i = 0; i < list.Length(); i++) {
      Napi::Value pair = list.Get(i);
      if (!pair.IsArray() || pair.As<Napi::Array>().Length() != 2) {
        ThrowType(env, "mmapAreas must be an array of [offset, size] pairs");
        return env.Undefined();
      }
      Napi::Value offset = pair.As<Napi::Array>().Get(0u);
      Napi::Value length = pair.As<Napi::Array>().Get(1u);
      if (!offset.IsNumber() || !length.IsNumber() ||
          offset.As<Napi::Number>().DoubleValue() < 0 ||
          length.As<Napi::Number>().DoubleValue() < 0 ||
          offset.As<Napi::Number>().DoubleValue() > kMaxSafeInteger ||
          length.As<Napi::Number>().DoubleValue() > kMaxSafeInteger) {
        ThrowType(env, "mmapAreas entries must be non-negative integers");
        return env.Undefined();
      }
      struct iovec area;
      area.iov_base = reinterpret_cast<void*>(
          static_cast<uintptr_t>(offset.As<Napi::Number>().Int64Value()));
      area.iov_len = static_cast<size_t>(length.As<Napi::Number>().Int64Value());
      areas.push_back(area);
    }
  }
  Enter();
  int ret = vfu_setup_region(ctx_, index, size, kRegionCallbacks[index], flags,
                             areas.empty() ? nullptr : areas.data(),
                             static_cast<uint32_t>(areas.size()), fd, 0);
  int err = errno;
  if (Leave(true) && ret < 0) {
    ThrowErrno(env, err, "vfu_setup_region");
  } else if (ret == 0 && index == VFU_PCI_DEV_CFG_REGION_IDX) {
    config_size_ = size;
  }
  return env.Undefined();
}

Napi::Value DeviceContext::AddCapability(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t pos;
  int flags;
  if (!CheckOpen(env, "addCapability") || !SizeArg(info, 0, "pos", &pos) ||
      !IntArg(info, 1, "flags", 0, INT32_MAX, &flags)) {
    return env.Undefined();
  }
  if (!info[2].IsTypedArray() ||
      info[2].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowType(env, "bytes must be a Uint8Array");
    return env.Undefined();
  }
  // The library reads as many bytes as the capability's type says: give it
  // a zero-filled copy as large as any capability can be.
  Napi::Uint8Array bytes = info[2].As<Napi::Uint8Array>();
  uint8_t data[PCI_CFG_SPACE_EXP_SIZE] = {};
  std::memcpy(data, bytes.Data(), std::min(bytes.ElementLength(), sizeof(data)));
  Enter();
  ssize_t offset = vfu_pci_add_capability(ctx_, pos, flags, data);
  int err = errno;
  if (!Leave(true)) {
    return env.Undefined();
  }
  if (offset < 0) {
    ThrowErrno(env, err, "vfu_pci_add_capability");
    return env.Undefined();
  }
  return Napi::Number::New(env, static_cast<double>(offset));
}

Napi::Value DeviceContext::SetupIrqs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int type;
  uint32_t count;
  if (!CheckOpen(env, "setupIrqs") ||
      !IntArg(info, 0, "type", 0, VFU_DEV_NUM_IRQS - 1, &type) ||
      !Uint32Arg(info, 1, "count", &count)) {
    return env.Undefined();
  }
  Enter();
  int ret = vfu_setup_device_nr_irqs(ctx_, static_cast<vfu_dev_irq_type>(type), count);
  int err = errno;
  const char* syscall = "vfu_setup_device_nr_irqs";
  if (ret == 0 && HasHandler(kIrqState)) {
    ret = vfu_setup_irq_state_callback(ctx_, static_cast<vfu_dev_irq_type>(type),
                                       kIrqStateCallbacks[type]);
    err = errno;
    syscall = "vfu_setup_irq_state_callback";
  }
  if (Leave(true) && ret < 0) {
    ThrowErrno(env, err, syscall);
  }
  return env.Undefined();
}

Napi::Value DeviceContext::SetupDma(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t max_regions;
  if (!CheckOpen(env, "setupDma") || !SizeArg(info, 0, "maxRegions", &max_regions)) {
    return env.Undefined();
  }
  Enter();
  int ret = vfu_setup_device_dma(ctx_, max_regions, DmaRegisterCb, DmaUnregisterCb);
  int err = errno;
  if (Leave(true) && ret < 0) {
    ThrowErrno(env, err, "vfu_setup_device_dma");
  }
  return env.Undefined();
}

Napi::Value DeviceContext::SetLogLevel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int level;
  if (!CheckOpen(env, "setLogLevel") ||
      !IntArg(info, 0, "level", LOG_EMERG, LOG_DEBUG, &level)) {
    return env.Undefined();
  }
  if (vfu_setup_log(ctx_, HasHandler(kLog) ? LogCb : nullptr, level) < 0) {
    ThrowErrno(env, errno, "vfu_setup_log");
  }
  return env.Undefined();
}

Napi::Value DeviceContext::Realize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env, "realize")) {
    return env.Undefined();
  }
  Enter();
  int ret = vfu_realize_ctx(ctx_);
  int err = errno;
  if (!Leave(true)) {
    return env.Undefined();
  }
  if (ret < 0) {
    ThrowErrno(env, err, "vfu_realize_ctx");
  } else {
    realized_ = true;
  }
  return env.Undefined();
}

Napi::Value DeviceContext::ConfigSpace(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env, "configSpace")) {
    return env.Undefined();
  }
  vfu_pci_config_space_t* config = RequireConfigSpace(env, "vfu_pci_get_config_space");
  if (config == nullptr) {
    return env.Undefined();
  }
#ifdef VFIO_USER_VENDORED
  size_t size = vfu_addon_config_size(ctx_);
#else
  size_t size = config_size_ != 0 ? config_size_ : PCI_CFG_SPACE_SIZE;
#endif
  napi_value buffer;
  if (config_buffer_ != nullptr && config_data_ == config) {
    napi_get_reference_value(env, config_buffer_, &buffer);
    size_t length = 0;
    if (buffer != nullptr &&
        napi_get_arraybuffer_info(env, buffer, nullptr, &length) == napi_ok &&
        length == size) {
      return Napi::Value(env, buffer);
    }
  }
  // First call, or the library moved or resized the config space.
  DetachBuffer(&config_buffer_);
  napi_status status =
      napi_create_external_arraybuffer(env, config, size, nullptr, nullptr, &buffer);
  if (status == napi_no_external_buffers_allowed) {
    ThrowErrno(env, ENOTSUP, "napi_create_external_arraybuffer");
    return env.Undefined();
  }
  if (status != napi_ok) {
    return env.Undefined();
  }
  napi_create_reference(env, buffer, 1, &config_buffer_);
  config_data_ = config;
  return Napi::Value(env, buffer);
}

// The library's dirty-page logging granule as 8 bytes that JS reads for
// free: a device's DMA write skips the addon call that marks pages dirty
// while nobody logs them. Undefined with a system library, which hides it.
Napi::Value DeviceContext::DirtyGranule(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env, "dirtyGranule")) {
    return env.Undefined();
  }
#ifdef VFIO_USER_VENDORED
  napi_value buffer;
  if (dirty_granule_buffer_ != nullptr) {
    napi_get_reference_value(env, dirty_granule_buffer_, &buffer);
    return Napi::Value(env, buffer);
  }
  if (napi_create_external_arraybuffer(env, vfu_addon_dirty_granule(ctx_), sizeof(uint64_t), nullptr, nullptr,
                                       &buffer) != napi_ok) {
    return env.Undefined();
  }
  napi_create_reference(env, buffer, 1, &dirty_granule_buffer_);
  return Napi::Value(env, buffer);
#else
  return env.Undefined();
#endif
}

Napi::Value DeviceContext::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env, "start") || started_) {
    return env.Undefined();
  }
  if (!realized_) {
    ThrowErrno(env, EINVAL, "start (realize() first)");
    return env.Undefined();
  }
  poll_fd_ = vfu_get_poll_fd(ctx_);
  int err = poll_.Watch(poll_fd_, UV_READABLE, true);
  if (err != 0) {
    ThrowErrno(env, -err, "uv_poll_start");
    return env.Undefined();
  }
  started_ = true;
  // Serving keeps the object alive (and the uv handle keeps the loop alive)
  // until close().
  Ref();
  return env.Undefined();
}

void DeviceContext::ReleaseTriggerHandle(TriggerHandle* handle) {
  if (--handle->owners == 0) {
    delete handle;
  }
}

napi_value DeviceContext::IrqTriggerEntry(napi_env env, napi_callback_info raw) {
  Napi::CallbackInfo info(env, raw);
  DeviceContext* self = static_cast<TriggerHandle*>(info.Data())->context;
  if (self == nullptr) {
    ThrowErrno(info.Env(), EBADF, "irqTrigger");
    return nullptr;
  }
  return self->IrqTrigger(info);
}

Napi::Value DeviceContext::IrqTrigger(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t vector;
  if (!CheckOpen(env, "irqTrigger") || !Uint32Arg(info, 0, "vector", &vector)) {
    return env.Undefined();
  }
  Enter();
  int ret = vfu_irq_trigger(ctx_, vector);
  int err = errno;
  if (Leave(true) && ret < 0) {
    ThrowErrno(env, err, "vfu_irq_trigger");
  }
  return env.Undefined();
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

Napi::Value DeviceContext::GetAttached(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), attached_);
}

Napi::Value DeviceContext::MsixState(const Napi::CallbackInfo& info, bool pending) {
  Napi::Env env = info.Env();
  const char* method = pending ? "msixPending" : "msixVectorMasked";
  uint32_t vector;
  if (!CheckOpen(env, method) || !Uint32Arg(info, 0, "vector", &vector)) {
    return env.Undefined();
  }
#ifdef VFIO_USER_VENDORED
  bool masked, is_pending;
  if (vfu_addon_msix_state(ctx_, vector, &masked, &is_pending) < 0) {
    ThrowErrno(env, EINVAL, method);
    return env.Undefined();
  }
  return Napi::Boolean::New(env, pending ? is_pending : masked);
#else
  // A system library's internals are unknown.
  ThrowErrno(env, ENOTSUP, method);
  return env.Undefined();
#endif
}

Napi::Value DeviceContext::MsixVectorMasked(const Napi::CallbackInfo& info) {
  return MsixState(info, false);
}

Napi::Value DeviceContext::MsixPending(const Napi::CallbackInfo& info) {
  return MsixState(info, true);
}

// ------------------------------------------------------------------------- dma

Napi::Value DeviceContext::DmaTransfer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t iova;
  if (!CheckOpen(env, "dmaTransfer") || !SizeArg(info, 0, "iova", &iova)) {
    return env.Undefined();
  }
  if (!info[1].IsTypedArray() ||
      info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowType(env, "data must be a Uint8Array");
    return env.Undefined();
  }
  if (!info[3].IsFunction()) {
    ThrowType(env, "done must be a function");
    return env.Undefined();
  }
  Napi::Uint8Array data = info[1].As<Napi::Uint8Array>();
  bool is_write = info[2].ToBoolean().Value();
  size_t length = data.ElementLength();
  uint8_t* bytes = data.Data();
#ifdef VFIO_USER_VENDORED
  // Started now, finished from a later vfu_run_ctx (or the context's end):
  // the data and the callback stay referenced until then.
  Transfer* transfer = new Transfer{this, nullptr, nullptr};
  napi_create_reference(env, data, 1, &transfer->data);
  napi_create_reference(env, info[3], 1, &transfer->done);
  Enter();
  int ret = vfu_addon_dma_transfer_start(ctx_, iova, length, bytes, is_write,
                                         DmaTransferDoneCb, transfer);
  if (ret < 0) {
    napi_delete_reference(env, transfer->data);
    napi_delete_reference(env, transfer->done);
    delete transfer;
  }
  if (Leave(true) && ret < 0) {
    ThrowErrno(env, -ret, "vfu_addon_dma_transfer_start");
  }
#else
  // The upstream API only blocks: vfu_sgl_read/vfu_sgl_write wait for the
  // client's reply. The caller gives ranges inside one mapping, which
  // vfu_addr_to_sgl describes in one entry.
  std::vector<uint8_t> sg(dma_sg_size());
  dma_sg_t* entry = reinterpret_cast<dma_sg_t*>(sg.data());
  Enter();
  int err = 0;
  int count = vfu_addr_to_sgl(ctx_, reinterpret_cast<vfu_dma_addr_t>(static_cast<uintptr_t>(iova)),
                              length, entry, 1, is_write ? PROT_WRITE : PROT_READ);
  if (count != 1) {
    err = count == -1 ? errno : EINVAL;
  } else if ((is_write ? vfu_sgl_write(ctx_, entry, 1, bytes, 0)
                       : vfu_sgl_read(ctx_, entry, 1, bytes, 0)) < 0) {
    err = errno;
  }
  if (!Leave(true)) {
    return env.Undefined();
  }
  info[3].As<Napi::Function>().Call({Napi::Number::New(env, err)});
#endif
  return env.Undefined();
}

// --------------------------------------------------------------------- serving

void DeviceContext::OnPoll(void* arg, int status, int events) {
  DeviceContext* self = static_cast<DeviceContext*>(arg);
  napi_handle_scope scope;
  if (napi_open_handle_scope(self->env_, &scope) != napi_ok) {
    return;
  }
  self->Serve(status);
  napi_close_handle_scope(self->env_, scope);
}

void DeviceContext::Serve(int status) {
  if (ctx_ == nullptr || close_requested_) {
    return;
  }
  // The poll fd changes at accept, attach failure and disconnect, and the
  // library has closed the old one: the old handle goes at once, before any
  // JS can open a file that reuses the number, and a new handle is made at
  // the end even if the new fd has the old number.
  bool fd_changed = false;
  bool progress = false;
  auto note_fd = [&]() {
    if (DropStaleHandle()) {
      fd_changed = true;
    }
  };

  Enter();
  while (!close_requested_) {
    if (!attached_) {
      int ret = vfu_attach_ctx(ctx_);
      int err = errno;
      note_fd();
      if (ret < 0) {
        if (err != EAGAIN) {
          // The client is gone; keep listening. One that hung up before
          // negotiating (a probe for a stale socket, say) is no error.
          if (err != ENOTCONN && err != ECONNRESET) {
            KeepError(ErrnoError(Napi::Env(env_), err, "vfu_attach_ctx"));
          }
          fd_changed = true;
          progress = true;
        }
        break;
      }
      attached_ = true;
      progress = true;
      if (CanCallJs() && HasHandler(kAttach)) {
        CallHandler(kAttach, 0, nullptr, nullptr);
      }
      continue;
    }
    int ret = vfu_run_ctx(ctx_);
    int err = errno;
    note_fd();
    if (ret >= 0) {
      // It served every request there was (its last receive found nothing,
      // or the client is not taking replies): calling it again would only
      // cost one more recvmsg that fails with EAGAIN. The poll fd is level
      // triggered and wakes us for whatever comes next.
      progress = progress || ret > 0;
      break;
    }
    if (err == ENOTCONN) {
      // The library has reset the device and closed the connection; another
      // client may already be waiting.
      attached_ = false;
      fd_changed = true;
      progress = true;
      if (CanCallJs() && HasHandler(kDetach)) {
        CallHandler(kDetach, 0, nullptr, nullptr);
      }
      continue;
    }
    if (err != EAGAIN) {
      KeepError(ErrnoError(Napi::Env(env_), err, "vfu_run_ctx"));
    }
    break;
  }
  Leave(false);
  if (ctx_ == nullptr) {
    return;  // closed by a handler
  }

  if (status < 0 && !progress) {
    if (++repeated_poll_errors_ >= kMaxRepeatedPollErrors) {
      poll_.Stop();
      KeepError(ErrnoError(Napi::Env(env_), -status, "uv_poll (serving stopped)"));
      ReportErrors(false);
      return;
    }
  } else {
    repeated_poll_errors_ = 0;
  }
  Rearm(fd_changed);
}

bool DeviceContext::DropStaleHandle() {
  int fd = vfu_get_poll_fd(ctx_);
  if (fd == poll_fd_) {
    return false;
  }
  poll_fd_ = fd;
  poll_.Close();
  return true;
}

void DeviceContext::Rearm(bool renew) {
  if (poll_.watching() && !renew && poll_.fd() == poll_fd_) {
    return;
  }
  int err = poll_.Watch(poll_fd_, UV_READABLE, renew);
  if (err != 0) {
    KeepError(ErrnoError(Napi::Env(env_), -err, "uv_poll_start"));
    ReportErrors(false);
  }
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
  if (attached_) {
    attached_ = false;
    if (CanCallJs() && HasHandler(kDetach)) {
      CallHandler(kDetach, 0, nullptr, nullptr);
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

// ------------------------------------------------------------------ buffers

void DeviceContext::DetachBuffer(napi_ref* ref) {
  if (*ref == nullptr) {
    return;
  }
  napi_value buffer;
  if (napi_get_reference_value(env_, *ref, &buffer) == napi_ok && buffer != nullptr) {
    napi_detach_arraybuffer(env_, buffer);
  }
  napi_delete_reference(env_, *ref);
  *ref = nullptr;
}

void DeviceContext::DetachAllBuffers() {
  DetachBuffer(&config_buffer_);
  DetachBuffer(&dirty_granule_buffer_);
  config_data_ = nullptr;
  for (auto& entry : dma_buffers_) {
    DetachBuffer(&entry.second);
  }
  dma_buffers_.clear();
}

}  // namespace vfio_user
