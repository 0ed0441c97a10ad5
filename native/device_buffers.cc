// Zero-copy views JS gets of the library's own memory (config space, the
// dirty-logging granule), and detaching every view when the context ends.
#include <cerrno>

#include <linux/pci_regs.h>

#ifdef VFIO_USER_EXT
#include <libvfio-user-ext.h>
#endif

#include "device_context.h"
#include "errors.h"

namespace vfio_user {

Napi::Value DeviceContext::ConfigSpace(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env, "configSpace")) {
    return env.Undefined();
  }
  vfu_pci_config_space_t* config = RequireConfigSpace(env, "vfu_pci_get_config_space");
  if (config == nullptr) {
    return env.Undefined();
  }
#ifdef VFIO_USER_EXT
  size_t size = vfu_ext_config_size(ctx_);
#else
  size_t size = config_size_ != 0 ? config_size_ : PCI_CFG_SPACE_SIZE;
#endif
  napi_value buffer;
  if (config_buffer_ != nullptr && config_data_ == config) {
    napi_get_reference_value(env, config_buffer_, &buffer);
    size_t length = 0;
    if (buffer != nullptr && napi_get_arraybuffer_info(env, buffer, nullptr, &length) == napi_ok &&
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
#ifdef VFIO_USER_EXT
  napi_value buffer;
  if (dirty_granule_buffer_ != nullptr) {
    napi_get_reference_value(env, dirty_granule_buffer_, &buffer);
    return Napi::Value(env, buffer);
  }
  // JS only reads it.
  void* granule = const_cast<uint64_t*>(vfu_ext_dirty_granule(ctx_));
  if (napi_create_external_arraybuffer(env, granule, sizeof(uint64_t), nullptr, nullptr, &buffer) !=
      napi_ok) {
    return env.Undefined();
  }
  napi_create_reference(env, buffer, 1, &dirty_granule_buffer_);
  return Napi::Value(env, buffer);
#else
  return env.Undefined();
#endif
}

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
