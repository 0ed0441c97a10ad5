// Describing a device to the library before realize(): PCI identity,
// regions, capabilities, interrupts, DMA, logging.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include <linux/pci_regs.h>
#include <sys/uio.h>

#include "args.h"
#include "device_context.h"
#include "errors.h"

namespace vfio_user {

namespace {

size_t ConfigSizeOfType(int pci_type) {
  return pci_type == VFU_PCI_TYPE_PCI_X_2 || pci_type == VFU_PCI_TYPE_EXPRESS
             ? PCI_CFG_SPACE_EXP_SIZE
             : PCI_CFG_SPACE_SIZE;
}

}  // namespace

Napi::Value DeviceContext::PciInit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int type;
  if (!CheckOpen(env, "pciInit") || !IntArg(info, 0, "type", 0, INT32_MAX, &type)) {
    return env.Undefined();
  }
  int ret = CallLibrary(env, "vfu_pci_init", [&] {
    return vfu_pci_init(ctx_, static_cast<vfu_pci_type_t>(type), PCI_HEADER_TYPE_NORMAL, 0);
  });
  if (ret == 0) {
    config_size_ = ConfigSizeOfType(type);
  }
  return env.Undefined();
}

vfu_pci_config_space_t* DeviceContext::RequireConfigSpace(Napi::Env env, const char* syscall) {
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
  if (!CheckOpen(env, "setIds") || !IntArg(info, 0, "vendor", 0, UINT16_MAX, &vendor) ||
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
  if (!CheckOpen(env, "setRevision") || !IntArg(info, 0, "revision", 0, UINT8_MAX, &revision)) {
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
      !SizeArg(info, 1, "size", &size) || !IntArg(info, 2, "flags", 0, INT32_MAX, &flags)) {
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
      if (!offset.IsNumber() || !length.IsNumber() || offset.As<Napi::Number>().DoubleValue() < 0 ||
          length.As<Napi::Number>().DoubleValue() < 0 ||
          offset.As<Napi::Number>().DoubleValue() > kMaxSafeInteger ||
          length.As<Napi::Number>().DoubleValue() > kMaxSafeInteger) {
        ThrowType(env, "mmapAreas entries must be non-negative integers");
        return env.Undefined();
      }
      struct iovec area;
      area.iov_base =
          reinterpret_cast<void*>(static_cast<uintptr_t>(offset.As<Napi::Number>().Int64Value()));
      area.iov_len = static_cast<size_t>(length.As<Napi::Number>().Int64Value());
      areas.push_back(area);
    }
  }
  int ret = CallLibrary(env, "vfu_setup_region", [&] {
    return vfu_setup_region(ctx_, index, size, kRegionCallbacks[index], flags,
                            areas.empty() ? nullptr : areas.data(),
                            static_cast<uint32_t>(areas.size()), fd, 0);
  });
  if (ret == 0 && index == VFU_PCI_DEV_CFG_REGION_IDX) {
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
  ssize_t offset = CallLibrary(env, "vfu_pci_add_capability",
                               [&] { return vfu_pci_add_capability(ctx_, pos, flags, data); });
  if (offset < 0) {
    return env.Undefined();
  }
  return Napi::Number::New(env, static_cast<double>(offset));
}

Napi::Value DeviceContext::SetupIrqs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int type;
  uint32_t count;
  if (!CheckOpen(env, "setupIrqs") || !IntArg(info, 0, "type", 0, VFU_DEV_NUM_IRQS - 1, &type) ||
      !Uint32Arg(info, 1, "count", &count)) {
    return env.Undefined();
  }
  vfu_dev_irq_type irq_type = static_cast<vfu_dev_irq_type>(type);
  if (CallLibrary(env, "vfu_setup_device_nr_irqs",
                  [&] { return vfu_setup_device_nr_irqs(ctx_, irq_type, count); }) == 0 &&
      HasHandler(kIrqState)) {
    CallLibrary(env, "vfu_setup_irq_state_callback", [&] {
      return vfu_setup_irq_state_callback(ctx_, irq_type, kIrqStateCallbacks[type]);
    });
  }
  return env.Undefined();
}

Napi::Value DeviceContext::SetupDma(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t max_regions;
  if (!CheckOpen(env, "setupDma") || !SizeArg(info, 0, "maxRegions", &max_regions)) {
    return env.Undefined();
  }
  CallLibrary(env, "vfu_setup_device_dma", [&] {
    return vfu_setup_device_dma(ctx_, max_regions, DmaRegisterCb, DmaUnregisterCb);
  });
  return env.Undefined();
}

Napi::Value DeviceContext::CreateIoeventfd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int region, fd;
  uint64_t offset;
  uint32_t size, flags;
  if (!CheckOpen(env, "createIoeventfd") ||
      !IntArg(info, 0, "region", 0, VFU_PCI_DEV_NUM_REGIONS - 1, &region) ||
      !IntArg(info, 1, "fd", 0, INT32_MAX, &fd) || !SizeArg(info, 2, "offset", &offset) ||
      !Uint32Arg(info, 3, "size", &size) || !Uint32Arg(info, 4, "flags", &flags)) {
    return env.Undefined();
  }
  if (!info[5].IsBigInt()) {
    ThrowType(env, "datamatch must be a bigint");
    return env.Undefined();
  }
  bool lossless;
  uint64_t datamatch = info[5].As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) {
    ThrowType(env, "datamatch must fit in 64 bits");
    return env.Undefined();
  }
  // No shadow ioeventfd: it needs a kernel patch no client here has.
  CallLibrary(env, "vfu_create_ioeventfd", [&] {
    return vfu_create_ioeventfd(ctx_, region, fd, offset, size, flags, datamatch, -1, 0);
  });
  return env.Undefined();
}

Napi::Value DeviceContext::SetLogLevel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int level;
  if (!CheckOpen(env, "setLogLevel") || !IntArg(info, 0, "level", LOG_EMERG, LOG_DEBUG, &level)) {
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
  realized_ = CallLibrary(env, "vfu_realize_ctx", [&] { return vfu_realize_ctx(ctx_); }) == 0;
  return env.Undefined();
}

}  // namespace vfio_user
