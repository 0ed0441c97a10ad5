// Interrupts: irqTrigger (the hot path, an own function of each object)
// and what the library says about the interrupt mode and each vector.
#include <cerrno>

#ifdef VFIO_USER_EXT
#include <libvfio-user-ext.h>
#endif

#include "args.h"
#include "device_context.h"
#include "errors.h"

namespace vfio_user {

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
  uint32_t type;
  if (!CheckOpen(env, "irqTrigger") || !Uint32Arg(info, 0, "vector", &vector) ||
      !Uint32Arg(info, 1, "type", &type)) {
    return env.Undefined();
  }
  int ret = CallLibrary(env, "vfu_irq_trigger", [&] {
#ifdef VFIO_USER_EXT
    return vfu_ext_irq_trigger(ctx_, static_cast<vfu_dev_irq_type>(type), vector);
#else
    // Upstream signals the type the client installed last, whatever type is asked for.
    return vfu_irq_trigger(ctx_, vector) == 0 ? 1 : -1;
#endif
  });
  return ret < 0 ? env.Undefined() : Napi::Boolean::New(env, ret > 0);
}

Napi::Value DeviceContext::InterruptMode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env, "interruptMode")) {
    return env.Undefined();
  }
#ifdef VFIO_USER_EXT
  return Napi::Number::New(env, vfu_ext_irq_mode(ctx_));
#else
  ThrowErrno(env, ENOTSUP, "interruptMode");
  return env.Undefined();
#endif
}

Napi::Value DeviceContext::IrqVectorState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t type;
  uint32_t vector;
  if (!CheckOpen(env, "irqVectorState") || !Uint32Arg(info, 0, "type", &type) ||
      !Uint32Arg(info, 1, "vector", &vector)) {
    return env.Undefined();
  }
#ifdef VFIO_USER_EXT
  bool masked;
  bool pending;
  if (type >= VFU_DEV_NUM_IRQS ||
      vfu_ext_irq_vector_state(ctx_, static_cast<vfu_dev_irq_type>(type), vector, &masked,
                               &pending) < 0) {
    ThrowErrno(env, EINVAL, "irqVectorState");
    return env.Undefined();
  }
  return Napi::Number::New(env, (masked ? kVectorMasked : 0) | (pending ? kVectorPending : 0));
#else
  ThrowErrno(env, ENOTSUP, "irqVectorState");
  return env.Undefined();
#endif
}

}  // namespace vfio_user
